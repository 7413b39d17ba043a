"""Nights on the production shape: Airflow with Celery on PostgreSQL and Redis, engine
workers on their own hosts, each night triggered through Airflow's REST API.

Every night ends with every file transcribed exactly once: one job per file, COMPLETED,
its transcript in S3 and its rows in both tables. The most jobs in flight at once is logged
beside the pool's slots, and held to them on the night without a fault. Most nights suffer
one fault while they run; the outcome of each is appended to ``.local/cluster/faults.jsonl``.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import pytest
import sqlalchemy as sa
from bench.in_flight import max_in_flight
from botocore import exceptions as boto_errors
from botocore.config import Config

from containers import shared
from devstack import local_stack
from devstack.cluster import compose
from devstack.cluster.airflow_api import AirflowAPI
from devstack.cluster.netns import ip
from devstack.cluster.stack import ProcessCluster, source_hash
from medscribe.store import JobStore, jobs

DAG_ID = "nightly_medical_transcription"
NOTES = [
    "Follow up for hypertension. Continue lisinopril ten milligrams daily.",
    "Knee pain for three weeks. Start naproxen and physical therapy.",
    "Cough and fever. Chest clear. Likely viral bronchitis, no antibiotics.",
]
WORKERS = {"airflow-worker-1", "airflow-worker-2"}


@dataclass
class Running:
    cluster: ProcessCluster
    api: AirflowAPI
    s3: Any
    transcribe: Any
    store: JobStore

    def pool(self, **change: Any) -> dict[str, Any]:
        """The transcription pool, after ``change`` (e.g. ``slots=2``) if any."""
        name = self.cluster.settings["MEDICAL_TRANSCRIBE_POOL"]
        path = f"/api/v2/pools/{name}"
        if change:
            return self.api.call("PATCH", path, {"name": name, "include_deferred": True, **change})
        return self.api.call("GET", path)


@pytest.fixture(scope="session")
def running() -> Iterator[Running]:
    cluster = ProcessCluster()
    if cluster.running() and cluster.code() != source_hash():
        cluster.down()  # started from other code: what it does says nothing of this code
    started = not cluster.running()
    if started:
        cluster.up()
    env = cluster.client_env()
    s3 = cluster.client("s3")
    password = cluster.settings["ENGINE_DB_PASSWORD"]
    address = cluster.network.address("postgres")
    store = JobStore(f"postgresql+psycopg2://engine:{password}@{address}:5432/engine")
    yield Running(cluster, AirflowAPI(env), s3, cluster.client("transcribe"), store)
    if started:
        cluster.down()


@pytest.fixture(scope="session")
def audio(dictation) -> list[Path]:
    return [dictation(text) for text in NOTES]


def read_table(s3, prefix: str) -> pd.DataFrame:
    listed = s3.list_objects_v2(Bucket="transcripts", Prefix=prefix).get("Contents", [])
    frames = [
        pd.read_parquet(
            io.BytesIO(s3.get_object(Bucket="transcripts", Key=o["Key"])["Body"].read())
        )
        for o in listed
    ]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def jobs_for(store: JobStore, prefix: str) -> list[Any]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(jobs).where(jobs.c.request.contains(f"/{prefix}/")))
        return [dict(row._mapping) for row in rows]


def postmaster_started(store: JobStore) -> datetime:
    """When the job store's server started, asked over a connection of its own."""
    engine = sa.create_engine(store.engine.url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.select(sa.func.pg_postmaster_start_time())).scalar_one()
    finally:
        engine.dispose()


def wait_for(what: str, check: Callable[[], Any], timeout: float = 300) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.5)
    raise TimeoutError(f"no {what} within {timeout:.0f}s")


def make(command: str) -> subprocess.CompletedProcess:
    """What ``make cluster`` (``up``) or ``make cluster-<command>`` runs, in a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "devstack.cluster", command],
        env={**os.environ, "PYTHONPATH": str(compose.ROOT / "include")},
        capture_output=True, text=True,
    )  # fmt: skip


class Night:
    """One night's files under ``dictations/<name>/``, its run, and the checks at its end."""

    def __init__(self, running: Running, name: str, audio: list[Path], **params: Any) -> None:
        self.running, self.name = running, name
        self.started = time.monotonic()
        self.keys = [f"{name}/{index}-{path.name}" for index, path in enumerate(audio)]
        for key, path in zip(self.keys, audio, strict=True):
            running.s3.upload_file(str(path), "dictations", key)
        self.run_id = running.api.trigger(
            DAG_ID, {"input_prefix": f"{name}/", "table_prefix": f"tables/{name}", **params}
        )
        self.runs: list[dict[str, Any]] = []
        self.outcome: dict[str, Any] = {}

    def task_instances(self, task_id: str, state: str) -> list[dict[str, Any]]:
        instances = self.running.api.task_instances(DAG_ID, self.run_id)
        return [ti for ti in instances if ti["task_id"] == task_id and ti["state"] == state]

    def in_progress_job(self) -> dict[str, Any] | None:
        held = [
            job
            for job in jobs_for(self.running.store, self.name)
            if job["status"] == "IN_PROGRESS" and job["lease_owner"]
        ]
        return held[0] if held else None

    def finish(self, fault: str) -> pd.DataFrame:
        """Wait for the night's runs, then hold them to exactly once; return their task instances."""
        self.runs = self.running.api.wait_night(DAG_ID, self.run_id, timeout=900)
        records = jobs_for(self.running.store, self.name)
        by_file: dict[str, list[dict[str, Any]]] = {}
        for record in records:
            uri = json.loads(record["request"])["Media"]["MediaFileUri"]
            by_file.setdefault(uri.removeprefix("s3://dictations/"), []).append(record)
        completed = {
            key for key in self.keys if [r["status"] for r in by_file.get(key, [])] == ["COMPLETED"]
        }
        duplicated = {key for key in self.keys if len(by_file.get(key, [])) > 1}
        described = [
            self.running.transcribe.get_medical_transcription_job(
                MedicalTranscriptionJobName=record["name"]
            )["MedicalTranscriptionJob"]
            for record in records
        ]
        table = read_table(self.running.s3, f"tables/{self.name}/transcription_jobs/")
        items = read_table(self.running.s3, f"tables/{self.name}/transcript_items/")
        outcome = {
            "fault": fault,
            "files": len(self.keys),
            "transcribed_once": len(completed - duplicated),
            "lost": len(set(self.keys) - set(by_file)),
            "duplicated": len(duplicated),
            "runs": [run["state"] for run in self.runs],
            "max_in_flight": max_in_flight(described),
            "pool_slots": self.running.pool()["slots"],
            "seconds": round(time.monotonic() - self.started, 1),
        }
        self.outcome = outcome
        with (self.running.cluster.state / "faults.jsonl").open("a") as log:
            log.write(json.dumps(outcome) + "\n")
        assert set(outcome["runs"]) == {"success"}, outcome
        assert outcome["transcribed_once"] == len(self.keys), (outcome, records)
        for key in self.keys:
            (record,) = by_file[key]
            bucket, _, path = (
                record["transcript_uri"].split("://", 1)[1].split("/", 1)[1].partition("/")
            )
            transcript = json.loads(
                self.running.s3.get_object(Bucket=bucket, Key=path)["Body"].read()
            )
            assert transcript["results"]["items"], key
        assert sorted(table["status"]) == ["COMPLETED"] * len(self.keys)
        assert set(items["job_name"]) == {by_file[key][0]["name"] for key in self.keys}
        return pd.DataFrame(
            [
                ti
                for run in self.runs
                for ti in self.running.api.task_instances(DAG_ID, run["dag_run_id"])
            ]
        )


def night(running: Running, audio: list[Path], name: str, **params: Any) -> Night:
    return Night(running, f"{name}-{int(time.time())}", audio, **params)


def test_a_night_triggered_through_the_api_runs_on_the_celery_workers(running, audio):
    # Past max_files, the night goes on in a follow-up run the first one triggers; its jobs in
    # flight never exceed a pool of two slots (four files in the first run could make four).
    files = audio * 2
    slots = running.pool()["slots"]
    running.pool(slots=2)
    try:
        tonight = night(running, files, "plain", max_files=4)
        instances = tonight.finish("none (max_files=4: two runs)")
    finally:
        running.pool(slots=slots)
    assert len(tonight.runs) == 2
    assert 1 <= tonight.outcome["max_in_flight"] <= tonight.outcome["pool_slots"] == 2
    for task_id in ("transcribe.start", "transcribe.wait"):
        assert (instances["task_id"] == task_id).sum() == len(files), task_id
    ran = instances[instances["state"] != "skipped"]
    assert set(ran["hostname"]) <= WORKERS, set(ran["hostname"])
    continued = instances[instances["task_id"] == "continue_night"]
    assert list(continued["state"]) == ["success", "skipped"]


def test_the_cluster_under_test_runs_this_checkouts_code(running):
    assert running.cluster.code() == source_hash()
    edit = (
        compose.ROOT / "include" / "devstack" / "cluster" / "edited-since.txt"
    )  # new, not ignored
    edit.write_text("code the running cluster has not seen\n")
    try:
        assert running.cluster.code() != source_hash()
        refused = make("up")
        assert refused.returncode != 0 and "from other code" in refused.stderr, refused
    finally:
        edit.unlink()


def test_engine_worker_killed_while_holding_a_job(running, audio):
    tonight = night(running, audio, "engine-worker-kill")
    while True:  # a job caught in progress, its holder stopped before it can end the job
        job = wait_for("job in progress", tonight.in_progress_job)
        host, pid, _ = job["lease_owner"].split(":")
        holder = psutil.Process(int(pid))
        assert holder in running.cluster.network.processes(host)
        holder.suspend()
        (now,) = [
            row for row in jobs_for(running.store, tonight.name) if row["name"] == job["name"]
        ]
        if now["status"] == "IN_PROGRESS":
            break
        holder.resume()
    holder.kill()
    holder.wait(30)
    # Dead with the job: nobody renews or takes the lease before it runs out, and a job
    # done would have dropped it.
    (held,) = [row for row in jobs_for(running.store, tonight.name) if row["name"] == job["name"]]
    assert (held["status"], held["lease_owner"]) == ("IN_PROGRESS", job["lease_owner"])
    tonight.finish(f"kill -9 engine worker on {host}")
    taken_over = running.store.get_job(job["name"])
    assert taken_over is not None and taken_over.attempts == 2


@contextmanager
def frozen(running: Running, service: str) -> Iterator[None]:
    """Every process of ``service``'s hosts stopped: a client's connection and request
    wait in the kernel's queues, unanswered, until they run again."""
    leaders = [running.cluster.running()[host] for host in running.cluster.hosts[service]]
    for leader in leaders:
        os.killpg(leader, signal.SIGSTOP)
    try:
        yield
    finally:
        for leader in leaders:
            os.killpg(leader, signal.SIGCONT)


def test_celery_worker_killed_while_starting_jobs(running, audio):
    # A start takes about a second: to be sure of killing one midway, the starts wait for
    # pool slots until the listing (which asks the engine for failed jobs) is done, and then
    # meet an engine API that does not answer.
    slots = running.pool()["slots"]
    running.pool(slots=0)
    try:
        tonight = night(running, audio, "celery-worker-kill")
        wait_for("listing", lambda: tonight.task_instances("list_pending", "success"))
        with frozen(running, "engine-api"):
            running.pool(slots=slots)
            (first, *_) = wait_for(
                "start running", lambda: tonight.task_instances("transcribe.start", "running")
            )
            host = first["hostname"]
            on_host = running.cluster.network.processes(host)
            assert psutil.Process(first["pid"]) in on_host, "the task runs elsewhere"
            # The host dies as a killed container does, the task's own process group included.
            for process in on_host:
                with suppress(psutil.NoSuchProcess):
                    process.kill()
            # Its request reaches the engine only now, after its sender died.
            assert not tonight.task_instances("transcribe.start", "success")
    finally:
        running.pool(slots=slots)
    running.cluster.start("airflow-worker", host)  # as compose's restart policy would
    instances = tonight.finish(f"kill -9 Celery worker {host}")
    killed = instances[
        (instances["task_id"] == "transcribe.start")
        & (instances["map_index"] == first["map_index"])
    ]
    assert killed["try_number"].max() >= 2, "the start the kill hit was not run again"


def test_postgresql_restarted_mid_night(running, audio):
    tonight = night(running, audio, "postgres-restart")
    wait_for("job in progress", tonight.in_progress_job)
    before = postmaster_started(running.store)
    running.cluster.stop("postgres")
    with pytest.raises(sa.exc.OperationalError):
        postmaster_started(running.store)  # a client meets the outage
    running.cluster.start("postgres", "postgres")
    assert postmaster_started(running.store) > before, "the same server runs on"
    tonight.finish("restart PostgreSQL")


def test_engine_api_restarted_while_sensors_wait(running, audio):
    # The engine workers are frozen meanwhile, so the jobs are still queued when the
    # sensors defer and the API restarts under them.
    with frozen(running, "engine-worker"):
        tonight = night(running, audio, "engine-api-restart")
        deferred = lambda: len(tonight.task_instances("transcribe.wait", "deferred")) == len(audio)  # noqa: E731
        wait_for("deferred sensors", deferred)
        running.cluster.stop("engine-api")
        with pytest.raises(OSError):
            shared.http_ok(f"{running.cluster.url('engine-api')}/health")
        time.sleep(5)
        running.cluster.start("engine-api", "engine-api")
        running.cluster.wait_healthy("engine-api")
    instances = tonight.finish("restart engine API while sensors wait")
    waits = instances[instances["task_id"] == "transcribe.wait"]
    assert set(waits["try_number"]) == {1}, "a deferred wait failed and was retried"


def test_s3_unreachable_for_30_seconds(running, audio):
    tonight = night(running, audio, "s3-outage")
    wait_for("job in progress", tonight.in_progress_job)
    probe = running.cluster.client(
        "s3", Config(connect_timeout=3, read_timeout=3, retries={"total_max_attempts": 1})
    )
    probe.head_bucket(Bucket="dictations")
    outage = time.monotonic()
    running.cluster.network.set_reachable("s3", False)
    try:
        with pytest.raises((boto_errors.ConnectionError, boto_errors.ReadTimeoutError)):
            probe.head_bucket(Bucket="dictations")
        time.sleep(max(0.0, 30 - (time.monotonic() - outage)))
    finally:
        running.cluster.network.set_reachable("s3", True)
    tonight.finish("S3 unreachable for 30 s")


def network_namespaces(cluster: ProcessCluster) -> set[int]:
    """The identities of the hosts' namespaces, which outlive their names."""
    return {
        Path("/run/netns", cluster.network.namespace(host)).stat().st_ino
        for host in cluster.network.hosts
    }


def processes_in(namespaces: set[int]) -> list[str]:
    found = []
    for process in psutil.process_iter():
        try:
            if Path(f"/proc/{process.pid}/ns/net").stat().st_ino in namespaces:
                found.append(f"{process.pid} {' '.join(process.cmdline())}")
        except (OSError, psutil.NoSuchProcess):  # gone meanwhile
            pass
    return found


def network_left(cluster: ProcessCluster) -> list[str]:
    prefix = cluster.network.prefix
    links = [link["ifname"] for link in json.loads(ip("-j", "link", "show").stdout)]
    namespaces = ip("netns", "list").stdout.split()
    return [name for name in links + namespaces if name.startswith(prefix)]


def leave_behind(cluster: ProcessCluster, host: str) -> psutil.Process:
    """What a host of an earlier cluster leaves when a process of it outlives the rest:
    its namespace, its link, and that process in it."""
    namespace, link = cluster.network.namespace(host), cluster.network.link(host)
    ip("netns", "add", namespace)
    ip("link", "add", link, "type", "veth", "peer", "name", f"{link}p")
    ip("link", "set", f"{link}p", "netns", namespace)
    subprocess.Popen(cluster.network.run_on(host, ["sleep", "600"]), start_new_session=True)
    (left,) = wait_for("a process on the host", lambda: cluster.network.processes(host))
    return left


def test_cluster_down_ends_hosts_whose_main_process_was_killed(running):
    """Docker ends every process of a container whose main process died; so must
    ``make cluster-down``, or the next ``make cluster`` finds its names taken. And
    ``make cluster`` clears what an earlier cluster left."""
    cluster = running.cluster
    namespaces = network_namespaces(cluster)
    main = cluster.running()
    for host in ("engine-worker-1", "airflow-worker-1", "airflow-apiserver"):
        killed = psutil.Process(main[host])
        killed.kill()
        killed.wait(30)
        assert cluster.network.processes(host), f"{host} ran nothing but its main process"
    down = make("down")
    assert down.returncode == 0 and "cluster stopped" in down.stdout, down.stderr
    assert processes_in(namespaces) == []
    assert network_left(cluster) == []
    left = leave_behind(cluster, "engine-worker-2")
    up = make("up")
    assert up.returncode == 0, up.stderr
    assert f"ending what an earlier cluster left: pid {left.pid} " in up.stdout
    left.wait(30)  # it was ended: reaped here, its parent


def test_the_local_stack_between_two_cluster_starts(running):
    """``make up``/``make down`` make all of ``.local`` private; the cluster's PostgreSQL,
    which runs as its own user, must still reach its data when the cluster starts again."""
    running.cluster.down()
    stack = [sys.executable, "-m", "devstack.local_stack"]
    env = {**os.environ, "PYTHONPATH": str(compose.ROOT / "include")}
    was_running = local_stack.LocalStack().running()
    subprocess.run([*stack, "up"], env=env, check=True, capture_output=True)
    if not was_running:
        subprocess.run([*stack, "down"], env=env, check=True, capture_output=True)
    running.cluster.up()
