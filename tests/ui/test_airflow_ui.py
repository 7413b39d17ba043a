"""The DAG operated from the Airflow UI in a real browser, as an operator would.

Debian's Chromium, driven by Playwright, against ``airflow standalone`` (API server,
scheduler, dag-processor, triggerer) and the real local stack, all on free loopback ports.
Screenshots of every step land in ``test-artifacts/ui/`` (git-ignored).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
from prerequisites import missing

from containers import shared
from devstack import local_stack
from medical_transcribe.hooks import TranscribeMedicalHook

CHROMIUM = "/usr/bin/chromium"
DAG_ID = "nightly_medical_transcription"
ARTIFACTS = local_stack.ROOT / "test-artifacts" / "ui"
POOL_SLOTS = 3
NOTES = [
    "Hypertension follow up. Blood pressure is controlled on lisinopril ten milligrams.",
    "Type two diabetes. Continue metformin and recheck the hemoglobin A one C.",
    "Knee osteoarthritis. Start physical therapy and use ibuprofen as needed.",
    "Seasonal allergies. Start cetirizine daily and return if symptoms persist.",
]
#: The widget the trigger form must render for each parameter, by the element's CSS.
WIDGETS = {
    "input_bucket": "input.chakra-input:not([type])",
    "input_prefix": "input.chakra-input:not([type])",
    "output_bucket": "input.chakra-input:not([type])",
    "table_prefix": "input.chakra-input:not([type])",
    "type": "input[type=hidden]",
    "specialty": "input[type=hidden]",
    "vocabulary_name": "input.chakra-input:not([type])",
    "channel_identification": "[data-scope=switch] input[type=checkbox]",
    "show_speaker_labels": "[data-scope=switch] input[type=checkbox]",
    "max_speaker_labels": "input[role=spinbutton]",
    "max_alternatives": "input[role=spinbutton]",
    "identify_phi": "[data-scope=switch] input[type=checkbox]",
    "max_files": "input[role=spinbutton]",
    "max_failed_fraction": "input[role=spinbutton]",
    "dry_run": "[data-scope=switch] input[type=checkbox]",
}

pytestmark = pytest.mark.skipif(
    not os.environ.get("MEDSCRIBE_TEST_UI"),
    reason="starts Airflow's servers and a browser (minutes); CI sets MEDSCRIBE_TEST_UI=1",
)


@pytest.fixture(scope="session", autouse=True)
def sync_api() -> ModuleType:
    """Playwright's sync API and Chromium, checked before any server starts."""
    try:
        from playwright import sync_api
    except ImportError:
        missing("Playwright is not installed (requirements-dev.txt)", "MEDSCRIBE_TEST_UI")
    if not Path(CHROMIUM).exists():
        missing(
            f"there is no Chromium at {CHROMIUM} (apt-get install chromium)", "MEDSCRIBE_TEST_UI"
        )
    return sync_api


@dataclass
class Airflow:
    url: str
    user: str
    password: str

    def api(self, path: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json", **self._auth()},
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read())

    def _auth(self) -> dict[str, str]:
        if not hasattr(self, "_token"):
            request = urllib.request.Request(
                f"{self.url}/auth/token",
                data=json.dumps({"username": self.user, "password": self.password}).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=60) as response:
                self._token = json.loads(response.read())["access_token"]
        return {"Authorization": f"Bearer {self._token}"}

    def runs(self) -> list[dict]:
        return self.api(f"/api/v2/dags/{DAG_ID}/dagRuns?order_by=-run_after&limit=20")["dag_runs"]

    def wait_for_new_run(self, known: set[str], timeout: float = 600) -> dict:
        """The run started after ``known`` runs, once it has ended."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                new = [r for r in self.runs() if r["dag_run_id"] not in known]
            except OSError:  # a busy API server; ask again
                continue
            if new and new[0]["state"] in ("success", "failed"):
                return new[0]
            time.sleep(1)
        raise AssertionError(f"no run ended within {timeout:.0f}s: {self.runs()[:2]}")

    def retried(self, run: dict, files: int) -> list[str]:
        """Each ``transcribe.start`` and ``transcribe.wait`` of ``run`` (one of each per file)
        that took more than one try, with the end of its earlier tries' logs.

        Each also says whether the scheduler recorded a "state mismatch" for it: the mark of
        Airflow's race (apache/airflow#72716) that fails a resumed deferred task when the
        executor's stale event from its deferral arrives after it was queued again.
        """
        path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances"
        instances = self.api(f"{path}?limit=100")["task_instances"]
        ours = [ti for ti in instances if ti["task_id"].startswith("transcribe.")]
        tasks = sorted(ti["task_id"] for ti in ours)
        assert tasks == ["transcribe.start"] * files + ["transcribe.wait"] * files, tasks
        query = urllib.parse.urlencode(
            {"dag_id": DAG_ID, "run_id": run["dag_run_id"], "event": "state mismatch"}
        )
        mismatches = self.api(f"/api/v2/eventLogs?{query}")["event_logs"]
        found = []
        for ti in ours:
            race = [
                f"try {event['try_number']}: {event['extra']}"
                for event in mismatches
                if (event["task_id"], event["map_index"]) == (ti["task_id"], ti["map_index"])
            ]
            cause = (
                f"the scheduler's state mismatch (apache/airflow#72716): {race}"
                if race
                else "no state mismatch recorded by the scheduler"
            )
            task = f"{path}/{ti['task_id']}"
            for attempt in range(1, ti["try_number"]):
                found.append(
                    f"{ti['task_id']}[{ti['map_index']}] ({ti.get('rendered_map_index')}) "
                    f"try {attempt} of {ti['try_number']}, its log ends: "
                    f"{self.log_end(task, ti['map_index'], attempt)}; {cause}"
                )
        return found

    def log_end(self, task: str, map_index: int, attempt: int) -> list[str] | str:
        """The last lines of a try's log: level, message and any exception, without frames."""
        try:
            log = self.api(f"{task}/logs/{attempt}?map_index={map_index}&full_content=true")
        except urllib.error.HTTPError as error:  # a try the scheduler failed has no history
            return f"not served ({error.code} {error.reason})"
        said = [
            " ".join(
                [line.get("level", ""), str(line.get("event", ""))]
                + [f"{e.get('exc_type')}: {e.get('exc_value')}"
                   for e in line.get("error_detail") or []]
            ).strip()
            for line in log["content"]
            if isinstance(line, dict)
        ]  # fmt: skip
        return said[-12:]


@pytest.fixture(scope="module")
def airflow(stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Airflow]:
    state = tmp_path_factory.mktemp("airflow-ui")
    port = local_stack.free_port()
    extra = {
        # Airflow as `make up` runs it, not in the unit-test mode this session's imports use.
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        local_stack.POOL_SLOTS_SETTING: str(POOL_SLOTS),
        "MEDICAL_TRANSCRIBE_POLL_SECONDS": "1",
    }
    # Generous: on a busy 2-core machine the four Airflow services take minutes to start.
    process = local_stack.start_airflow(state, stack.env, port, extra, timeout=600)
    passwords = state / "airflow" / "simple_auth_manager_passwords.json.generated"
    user, password = next(iter(json.loads(passwords.read_text()).items()))
    running = Airflow(f"http://127.0.0.1:{port}", user, password)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # the dag-processor parses the DAG after start-up
        try:
            running.api(f"/api/v2/dags/{DAG_ID}")
            break
        except OSError:
            time.sleep(2)
    yield running
    local_stack.stop(process.pid)


@pytest.fixture(scope="module")
def browser(sync_api: ModuleType) -> Iterator:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    with sync_api.sync_playwright() as driver:
        chromium = driver.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield chromium
        chromium.close()


class JobsInFlight(threading.Thread):
    """Samples how many engine jobs are QUEUED or IN_PROGRESS while a run goes on."""

    def __init__(self, transcribe) -> None:
        super().__init__(daemon=True)
        self.transcribe, self.most, self.done = transcribe, 0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            count = sum(
                len(
                    self.transcribe.list_medical_transcription_jobs(Status=status, MaxResults=100)[
                        "MedicalTranscriptionJobSummaries"
                    ]
                )
                for status in ("QUEUED", "IN_PROGRESS")
            )
            self.most = max(self.most, count)
            time.sleep(0.2)


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def trigger(page, airflow: Airflow, *, dry_run: bool, check_form: bool = False) -> float:
    """Open the trigger form, fill it in, submit; return when it was submitted."""
    page.goto(f"{airflow.url}/dags/{DAG_ID}")
    page.get_by_test_id("trigger-dag-button").click()
    dialog = page.get_by_role("dialog")
    dialog.locator("input[name=element_input_bucket]").wait_for()
    if check_form:
        check_trigger_form(dialog)
        shot(page, "02-trigger-form")
    dialog.locator("input[name=element_input_bucket]").fill("ui-inbox")
    dialog.locator("input[name=element_output_bucket]").fill("ui-out")
    switch = dialog.locator("input[name=element_dry_run]")
    if switch.is_checked() != dry_run:
        dialog.locator('[id="switch:element_dry_run"]').click()
    assert switch.is_checked() == dry_run
    submitted = time.monotonic()
    dialog.get_by_test_id("trigger-dag-submit").click()
    dialog.wait_for(state="hidden")
    return submitted


def check_trigger_form(dialog) -> None:
    """Every param has a label (its title), a description and the widget for its type."""
    from nightly_medical_transcription import nightly_medical_transcription

    params = nightly_medical_transcription().params
    assert set(WIDGETS) == set(params)
    for name, widget in WIDGETS.items():
        field = dialog.locator(f"[data-scope=field][data-part=root]:has([name=element_{name}])")
        assert field.count() == 1, name
        assert field.locator(widget).count() == 1, f"{name}: no {widget}"
        param = params.get_param(name)
        label = field.locator("label[data-part=label]").first.inner_text()
        assert label.strip().rstrip("*").strip() == param.schema["title"], name
        assert field.locator("[data-part=helper-text]").inner_text() == param.description, name
    assert dialog.locator("input[name=element_max_failed_fraction]").input_value() == "0"


#: Whether the first occurrence of a text lies inside the viewport and inside every scrolled
#: or clipped box around it, so that it is on screen rather than cut off (the log view does
#: not wrap, and a long line's end sits past the edge of its box).
ON_SCREEN = """text => {
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node; (node = walker.nextNode()); ) {
    const at = node.data.indexOf(text);
    if (at < 0) continue;
    const range = document.createRange();
    range.setStart(node, at);
    range.setEnd(node, at + text.length);
    const box = range.getBoundingClientRect();
    const inside = (r) => box.left >= r.left && box.right <= r.right
      && box.top >= r.top && box.bottom <= r.bottom;
    if (box.width === 0 || !inside({left: 0, top: 0, right: innerWidth, bottom: innerHeight}))
      return false;
    for (let el = node.parentElement; el; el = el.parentElement) {
      const style = getComputedStyle(el);
      if (style.visibility === "hidden" || style.display === "none") return false;
      if (style.overflowX !== "visible" && !inside(el.getBoundingClientRect())) return false;
    }
    return true;
  }
  return false;
}"""


def on_screen(page, text: str) -> bool:
    return page.evaluate(ON_SCREEN, text)


def open_run(page, airflow: Airflow, run: dict, name: str) -> None:
    page.goto(f"{airflow.url}/dags/{DAG_ID}/runs/{run['dag_run_id']}")
    page.get_by_text(run["state"], exact=False).first.wait_for()
    shot(page, name)


def test_operating_the_dag_from_the_ui(stack, airflow, browser, dictation, monkeypatch):
    s3, transcribe = stack.client("s3"), stack.client("transcribe")
    for bucket in ("ui-inbox", "ui-out"):
        s3.create_bucket(Bucket=bucket)
    for index, text in enumerate(NOTES):
        s3.upload_file(str(dictation(text, ".mp3")), "ui-inbox", f"inbox/visit-{index}.mp3")
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(120_000)

    page.goto(f"{airflow.url}/")
    page.locator("input[name=username]").fill(airflow.user)
    page.locator("input[name=password]").fill(airflow.password)
    shot(page, "01-login")
    page.locator("button[type=submit]").click()
    page.wait_for_url(lambda url: "login" not in url)

    # A dry run lists the inbox and starts nothing.
    known = {r["dag_run_id"] for r in airflow.runs()}
    jobs_before = transcribe.list_medical_transcription_jobs(MaxResults=100)
    trigger(page, airflow, dry_run=True, check_form=True)
    run = airflow.wait_for_new_run(known)
    assert run["state"] == "success"
    jobs_after = transcribe.list_medical_transcription_jobs(MaxResults=100)
    assert (
        jobs_after["MedicalTranscriptionJobSummaries"]
        == jobs_before["MedicalTranscriptionJobSummaries"]
    )
    open_run(page, airflow, run, "03-dry-run-success")

    # A real run of four files, its jobs in flight held to the pool's three slots (four if it
    # held nothing): a start holds two, a wait one, so two jobs run at once at most times.
    known.add(run["dag_run_id"])
    in_flight = JobsInFlight(transcribe)
    in_flight.start()
    submitted = trigger(page, airflow, dry_run=False)
    run = airflow.wait_for_new_run(known)
    seconds = time.monotonic() - submitted
    in_flight.done.set()
    in_flight.join()
    assert run["state"] == "success"
    assert airflow.retried(run, len(NOTES)) == []  # an ordinary run needs no retry
    assert 1 <= in_flight.most <= POOL_SLOTS < len(NOTES)
    (ARTIFACTS / "timing.json").write_text(
        json.dumps(
            {
                "files": len(NOTES),
                "trigger_to_result_seconds": round(seconds, 1),
                "pool_slots": POOL_SLOTS,
                "max_jobs_in_flight": in_flight.most,
            }
        )
    )
    open_run(page, airflow, run, "04-real-run-success")
    for step in ("start", "wait"):  # the group's mapped tasks, named by their job
        page.goto(
            f"{airflow.url}/dags/{DAG_ID}/runs/{run['dag_run_id']}/tasks/transcribe.{step}/mapped"
        )
        page.get_by_text("media-").first.wait_for()
        shot(page, f"05-mapped-{step}-tasks-named")

    # A corrupt file makes the run fail; the run and check_run's log name its job on screen.
    s3.put_object(Bucket="ui-inbox", Key="inbox/corrupt.wav", Body=b"RIFF....WAVEfmt garbage")
    known.add(run["dag_run_id"])
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", shared.airflow_connection(stack.env))
    jobs = TranscribeMedicalHook(aws_conn_id="aws_default")
    failed_before = jobs.job_names("FAILED")  # the session's engine is shared with other tests
    trigger(page, airflow, dry_run=False)
    run = airflow.wait_for_new_run(known)
    assert run["state"] == "failed"
    (corrupt,) = jobs.job_names("FAILED") - failed_before
    open_run(page, airflow, run, "06-corrupt-file-run-failed")
    # The failed wait task, by its job name, once the run's task table has loaded.
    page.get_by_text(corrupt).first.wait_for()
    assert on_screen(page, corrupt)
    page.goto(f"{airflow.url}/dags/{DAG_ID}/runs/{run['dag_run_id']}/tasks/check_run")
    page.get_by_text(f"Failed: {corrupt} (1 of 1)").first.wait_for()
    for text in (f"Failed: {corrupt}", f"failed {corrupt}: ", "could not be decoded",
                 "0 transcribed, 1 failed, 4 skipped"):  # fmt: skip
        assert on_screen(page, text), text
    shot(page, "07-check-run-names-the-failed-file")

    # The run report, from the task's "Extra Links" (its Details tab).
    page.goto(f"{airflow.url}/dags/{DAG_ID}/runs/{run['dag_run_id']}/tasks/check_run/details")
    with page.context.expect_page() as opened:
        page.get_by_role("link", name="Run report").first.click()
    report = opened.value
    report.wait_for_load_state()
    html = report.content()
    assert "s3://ui-inbox/inbox/corrupt.wav" in html and "could not be decoded" in html
    assert "1 failed" in html
    shot(report, "08-run-report")
    # The form unpaused the DAG, and that started no run of a missed night.
    assert {r["run_type"] for r in airflow.runs()} == {"manual"}
