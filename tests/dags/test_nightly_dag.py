"""The nightly DAG: its shape, and whole runs with dag.test() on the real local stack."""

from __future__ import annotations

import ast
import importlib
import io
import os
import subprocess
import sys

import pandas as pd
import pendulum
import pytest
from airflow.sdk import WeightRule
from airflow.sdk.definitions.taskgroup import MappedTaskGroup

from containers import shared
from devstack import local_stack
from medical_transcribe import listing
from medical_transcribe.naming import slugify
from medical_transcribe.operators import StartMedicalTranscriptionJobOperator
from medical_transcribe.sensors import MedicalTranscriptionJobSensor

DAG_ID = "nightly_medical_transcription"
NOTES = {
    "inbox/cardiology.wav": "Atrial fibrillation is rate controlled on metoprolol.",
    "inbox/clinic/asthma.flac": "Asthma is well controlled. Continue the albuterol inhaler.",
    "inbox/gout.mp3": "Gout flare in the right big toe for John Smith. Start colchicine today.",
}


@pytest.fixture(scope="module")
def nightly(stack):
    """The DAG module, imported with the stack as its aws_default connection."""
    patch = pytest.MonkeyPatch()
    patch.setenv("AIRFLOW_CONN_AWS_DEFAULT", shared.airflow_connection(stack.env))
    patch.setenv("MEDICAL_TRANSCRIBE_POLL_SECONDS", "1")
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True
    )
    sys.modules.pop("nightly_medical_transcription", None)
    module = importlib.import_module("nightly_medical_transcription")
    yield module.nightly_medical_transcription()
    patch.undo()


@pytest.fixture(scope="module")
def bag():
    """The DAG folder as Airflow's DAG processor parses it."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(local_stack.ROOT / "dags"))


def test_dag_imports_cleanly_with_schedule_and_params(bag):
    assert bag.import_errors == {}
    dag = bag.dags[DAG_ID]
    assert dag.timetable.expression == "0 2 * * *" and dag.timetable.timezone == "UTC"
    assert dag.start_date is None and dag.catchup is False
    assert set(dag.params.keys()) == {
        "input_bucket", "input_prefix", "output_bucket", "table_prefix", "type", "specialty",
        "vocabulary_name", "channel_identification", "show_speaker_labels", "max_speaker_labels",
        "max_alternatives", "identify_phi", "max_files", "max_failed_fraction", "dry_run",
    }  # fmt: skip
    for name in dag.params:
        param = dag.params.get_param(name)
        assert param.schema.get("title") and param.description, name
    assert dag.params.get_param("type").schema["enum"] == ["DICTATION", "CONVERSATION"]
    assert dag.params["max_failed_fraction"] == 0
    assert [t.task_id for t in dag.topological_sort()][:4] == [
        "list_pending", "transcribe.start", "transcribe.wait", "flatten",
    ]  # fmt: skip
    # A night past max_files goes on in a follow-up run once this one has its tables.
    assert dag.get_task("follow_up").upstream_task_ids == {"flatten"}
    assert dag.get_task("continue_night").upstream_task_ids == {"follow_up"}
    assert dag.get_task("continue_night").trigger_dag_id == DAG_ID
    assert dag.get_task("flatten").trigger_rule == "all_done"
    # check_run hears of a failed listing directly, so the run cannot end green.
    assert dag.get_task("check_run").upstream_task_ids == {"flatten", "list_pending"}


def test_per_file_a_start_that_does_not_wait_then_a_deferrable_sensor_both_mapped(bag):
    dag = bag.dags[DAG_ID]
    group = dag.task_group_dict["transcribe"]
    assert isinstance(group, MappedTaskGroup)
    assert group.upstream_task_ids == {"list_pending"}
    start, wait = dag.get_task("transcribe.start"), dag.get_task("transcribe.wait")
    assert isinstance(start, StartMedicalTranscriptionJobOperator)
    assert start.wait_for_completion is False
    assert isinstance(wait, MedicalTranscriptionJobSensor) and wait.deferrable is True
    assert wait.upstream_task_ids == {"transcribe.start"}
    # No worker process until its job ended; the triggerer renders the name start returned.
    assert wait.start_from_trigger is True
    assert wait.start_trigger_args.trigger_kwargs["job_name"] == wait.job_name
    assert "xcom_pull(task_ids='transcribe.start', map_indexes=ti.map_index)" in wait.job_name
    assert dag.get_task("flatten").upstream_task_ids == {"list_pending", "transcribe.wait"}
    for task in (start, wait):
        assert task.get_closest_mapped_task_group() is group, task.task_id
        assert task.map_index_template == "{{ task.job_name }}"
        # Both hold the pool: the start from before its job starts, the wait until it ends.
        assert task.pool == "transcribe_medical"
        assert task.weight_rule == WeightRule.ABSOLUTE
    # One start at a time, holding two slots, a wait one: a start queued before the scheduler
    # has deferred the wait of the one before cannot push the jobs in flight past the pool.
    assert (start.pool_slots, start.max_active_tis_per_dag, wait.pool_slots) == (2, 1, 1)
    # Setting the pool refuses a size no start fits in (its twin check in containers.shared).
    shared.pool_command(start.pool, str(start.pool_slots))
    with pytest.raises(ValueError, match=f"at least {start.pool_slots} slots"):
        shared.pool_command(start.pool, str(start.pool_slots - 1))
    # A wait retried from a worker gets a free slot before another start.
    assert wait.priority_weight > start.priority_weight


@pytest.mark.parametrize("hour", [2, 3, 23])
def test_unpausing_waits_for_the_next_night(bag, monkeypatch, hour):
    # Even an hour after 02:00: the run of a night nobody asked for would transcribe the
    # inbox while its operator meant to start with a dry run.
    from airflow.serialization.decoders import decode_timetable
    from airflow.serialization.encoders import encode_timetable
    from airflow.timetables import trigger
    from airflow.timetables.base import TimeRestriction

    now = pendulum.datetime(2026, 11, 26, hour, 30, tz="UTC")
    monkeypatch.setattr(trigger, "utcnow", lambda: now)
    timetable = decode_timetable(encode_timetable(bag.dags[DAG_ID].timetable))
    first = timetable.next_dagrun_info(
        last_automated_data_interval=None,
        restriction=TimeRestriction(earliest=None, latest=None, catchup=False),
    )
    assert first.run_after == pendulum.datetime(2026, 11, 27, 2, tz="UTC")


def parse_in_a_new_process(preload: str = "") -> list[str]:
    """The modules that importing the DAG file loads, after running ``preload``."""
    folders = [str(local_stack.ROOT / "dags"), str(local_stack.ROOT / "plugins")]
    code = (
        f"import sys; sys.path[:0] = {folders!r}; {preload}\n"
        "before = set(sys.modules); import nightly_medical_transcription\n"
        "print(sorted(set(sys.modules) - before))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return ast.literal_eval(out.stdout.splitlines()[-1])


def test_parsing_the_dag_leaves_the_table_libraries_unloaded():
    # Every task process parses the file; a transcribe task must not pay for pandas & co.
    loaded = {name.split(".")[0] for name in parse_in_a_new_process()}
    assert not loaded & {"pandas", "pyarrow", "av"}


def test_task_processes_import_nothing_looking_for_airflow_plugins():
    # Before running, a task process imports every .py file of the plugins folder that
    # .airflowignore leaves, looking for AirflowPlugin classes; the package declares none.
    code = (
        "import sys; from airflow.sdk.plugins_manager import _get_plugins\n"
        "print(_get_plugins(), sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'medical_transcribe', 'listing', 'flatten', 'report', 'tables', 'pandas'}))"
    )
    env = {**os.environ, "AIRFLOW__CORE__PLUGINS_FOLDER": str(local_stack.ROOT / "plugins")}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
    )
    assert out.stdout.splitlines()[-1] == "([], {}) []"


def test_celery_workers_preload_every_library_the_dag_file_imports():
    # Task processes fork from the worker: what it imported, their parse gets for free.
    preload = (
        "import importlib; from medical_transcribe.celery_config import CELERY_CONFIG\n"
        "for name in CELERY_CONFIG['imports']: importlib.import_module(name)"
    )
    loaded = parse_in_a_new_process(preload)
    assert "medical_transcribe.operators" in loaded
    assert {name.split(".")[0] for name in loaded} <= {
        "airflow", "medical_transcribe", "nightly_medical_transcription", "packaging",
    }  # fmt: skip
    assert not [name for name in loaded if name.startswith("airflow.providers.amazon")]


def read_table(s3, bucket: str, prefix: str) -> pd.DataFrame:
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
    frames = [
        pd.read_parquet(io.BytesIO(s3.get_object(Bucket=bucket, Key=k)["Body"].read()))
        for k in keys
    ]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def states(run) -> dict[str, str]:
    """The state of each task outside the per-file group (whose tasks are mapped)."""
    return {
        ti.task_id: str(ti.state)
        for ti in run.get_task_instances()
        if not ti.task_id.startswith("transcribe.")
    }


def per_file(run, task_id: str) -> dict[str, tuple[str, int]]:
    """Job name (the map index's name) -> state and try number, for one task of the group."""
    return {
        ti.rendered_map_index: (str(ti.state), ti.try_number)
        for ti in run.get_task_instances()
        if ti.task_id == task_id
    }


def test_nightly_run_end_to_end_and_rerun_is_a_no_op(stack, nightly, dictation):
    s3, transcribe = stack.client("s3"), stack.client("transcribe")
    for bucket in ("dictations", "nightly-out"):
        s3.create_bucket(Bucket=bucket)
    suffixes = {".wav": ".wav", ".flac": ".flac", ".mp3": ".mp3"}
    for key, text in NOTES.items():
        path = dictation(text, suffixes[key[key.rindex(".") :]])
        s3.upload_file(str(path), "dictations", key)
    s3.put_object(Bucket="dictations", Key="inbox/broken.wav", Body=b"RIFF....WAVEfmt garbage")
    s3.put_object(
        Bucket="dictations", Key="inbox/readme.txt", Body=b"not audio", ContentType="text/plain"
    )
    # Explicit dry_run: dag.test() keeps the params of an earlier call on the DAG object.
    conf = {
        "input_bucket": "dictations",
        "output_bucket": "nightly-out",
        "identify_phi": True,
        "max_alternatives": 2,
        "dry_run": False,
    }
    jobs_before = transcribe.list_medical_transcription_jobs(MaxResults=100)

    nightly.test(run_conf={**conf, "dry_run": True})
    assert (
        transcribe.list_medical_transcription_jobs(MaxResults=100)[
            "MedicalTranscriptionJobSummaries"
        ]
        == jobs_before["MedicalTranscriptionJobSummaries"]
    )
    assert "Contents" not in s3.list_objects_v2(Bucket="nightly-out")

    run = nightly.test(run_conf=conf)

    # One corrupt file among good ones: complete tables, and the run ends failed.
    assert str(run.state) == "failed"
    assert states(run) == {
        "list_pending": "success", "flatten": "success",
        "check_run": "failed", "follow_up": "skipped", "continue_night": "skipped",
    }  # fmt: skip
    jobs = read_table(s3, "nightly-out", "tables/transcription_jobs/")
    items = read_table(s3, "nightly-out", "tables/transcript_items/")
    assert sorted(jobs.media_uri) == sorted(
        f"s3://dictations/{key}" for key in [*NOTES, "inbox/broken.wav"]
    )
    broken = jobs[jobs.media_uri.str.endswith("broken.wav")].iloc[0]
    assert broken.status == "FAILED" and "could not be decoded" in broken.failure_reason
    assert broken.job_name.startswith("media-")  # PHI-safe: no part of the key
    report_keys = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket="nightly-out", Prefix="tables/run_reports/")["Contents"]
    ]
    assert len(report_keys) == 1 and report_keys[0].endswith(".html")
    page = s3.get_object(Bucket="nightly-out", Key=report_keys[0])
    assert page["ContentType"].startswith("text/html")
    html = page["Body"].read().decode()
    assert "s3://dictations/inbox/broken.wav" in html and "could not be decoded" in html
    assert "3 transcribed" in html and "1 failed" in html and "1 skipped" in html
    done = jobs[jobs.status == "COMPLETED"]
    assert len(done) == 3
    # Per file, named by its job: the start task started it, the wait task saw it end; the
    # FAILED job's wait failed without a retry, and nothing started it again.
    assert per_file(run, "transcribe.start") == dict.fromkeys(jobs.job_name, ("success", 1))
    assert per_file(run, "transcribe.wait") == dict.fromkeys(done.job_name, ("success", 1)) | {
        broken.job_name: ("failed", 1)
    }
    # As the scheduler orders them for a freed pool slot: every wait before every start.
    weights = {
        (ti.task_id, ti.priority_weight)
        for ti in run.get_task_instances()
        if ti.task_id.startswith("transcribe.")
    }
    assert weights == {("transcribe.start", 1), ("transcribe.wait", 2)}
    transcripts = [
        s3.get_object(Bucket="nightly-out", Key=f"medical/{name}.json")["Body"].read()
        for name in done.job_name
    ]
    expected_rows = sum(
        len(pd.read_json(io.BytesIO(t), typ="series")["results"]["items"]) for t in transcripts
    )
    assert len(items) == expected_rows
    assert items.confidence.dtype == "float64" and items.start_time.dtype == "float64"
    assert items[items.item_type == "punctuation"].start_time.isna().all()
    # The audio's own length: longer than the last word ends, and close to it.
    for row in done.itertuples():
        last_word = items[items.job_name == row.job_name].end_time.max()
        assert last_word <= row.media_duration < last_word + 3
    heard = " ".join(items.content).lower()
    assert "atrial fibrillation" in heard and "controlled" in heard
    entities = read_table(s3, "nightly-out", "tables/phi_entities/")
    assert entities.content.tolist() == ["John Smith"]
    entity = entities.iloc[0]
    job_items = items[items.job_name == entity.job_name].set_index("item_index")
    named = job_items.loc[entity.first_item_index : entity.last_item_index]
    assert " ".join(named.content) == "John Smith"
    # max_alternatives reached every job: each segment has its readings, best (rank 1) first.
    described = transcribe.get_medical_transcription_job(
        MedicalTranscriptionJobName=entity.job_name
    )
    assert described["MedicalTranscriptionJob"]["Settings"]["MaxAlternatives"] == 2
    readings = read_table(s3, "nightly-out", "tables/transcript_alternatives/")
    assert set(readings.job_name) == set(done.job_name)
    assert set(readings["rank"]) <= {1, 2} and (readings["rank"] == 2).any()
    best = readings[readings["rank"] == 1].sort_values(["job_name", "segment_index"])
    assert len(best) == readings.groupby(["job_name", "segment_index"]).ngroups
    sources = {o["Key"] for o in s3.list_objects_v2(Bucket="dictations")["Contents"]}
    assert sources == {*NOTES, "inbox/broken.wav", "inbox/readme.txt"}

    before = len(
        transcribe.list_medical_transcription_jobs(MaxResults=100)[
            "MedicalTranscriptionJobSummaries"
        ]
    )
    # A run without a logical date (as the REST API and assets trigger them) still writes
    # its tables, dated when it ran; the broken file is not retried, so this run is green.
    rerun = nightly.test(run_conf=conf, logical_date=None)
    assert rerun.logical_date is None and str(rerun.state) == "success"
    assert any(
        rerun.run_after.date().isoformat() in o["Key"]
        for o in s3.list_objects_v2(Bucket="nightly-out", Prefix="tables/")["Contents"]
        if slugify(rerun.run_id) in o["Key"]
    )
    after = len(
        transcribe.list_medical_transcription_jobs(MaxResults=100)[
            "MedicalTranscriptionJobSummaries"
        ]
    )
    assert after == before


def test_bad_input_is_refused_before_any_job_starts(stack, nightly, dictation):
    s3, transcribe = stack.client("s3"), stack.client("transcribe")
    s3.create_bucket(Bucket="refusals")
    s3.upload_file(str(dictation(NOTES["inbox/gout.mp3"], ".mp3")), "refusals", "inbox/gout.mp3")
    jobs_before = transcribe.list_medical_transcription_jobs(MaxResults=100)
    check = {
        "aws_conn_id": "aws_default", "input_bucket": "refusals", "input_prefix": "inbox/",
        "output_bucket": "refusals", "table_prefix": "tables", "settings": {},
    }  # fmt: skip
    listing.check_inputs(**check)
    for change, says in [
        ({"input_bucket": "no-such-bucket"}, "input bucket 'no-such-bucket' does not exist"),
        ({"input_prefix": "inbx/"}, "nothing under s3://refusals/inbx/"),
        ({"output_bucket": "no-such-out"}, "output bucket 'no-such-out' does not exist"),
        ({"settings": {"VocabularyName": "no-such-list"}}, "'no-such-list' does not exist"),
        (
            {"settings": {"ChannelIdentification": True, "ShowSpeakerLabels": True}},
            "cannot be used together",
        ),
    ]:
        with pytest.raises(Exception, match=says):
            listing.check_inputs(**{**check, **change})

    # channel identification on mono audio is refused before any job starts
    with pytest.raises(Exception, match="mono: media-"):
        listing.list_pending(
            aws_conn_id="aws_default", input_bucket="refusals", input_prefix="inbox/",
            output_bucket="refusals", job_type="DICTATION", specialty="PRIMARYCARE",
            settings={"ChannelIdentification": True}, max_files=10,
        )  # fmt: skip

    # A whole run with a missing bucket: list_pending fails, flatten has nothing to do and
    # says so (no secondary error), and the run ends failed.
    run = nightly.test(run_conf={"input_bucket": "no-such-bucket", "dry_run": False})
    assert str(run.state) == "failed"
    assert states(run) == {
        "list_pending": "failed", "flatten": "skipped",
        "check_run": "upstream_failed", "follow_up": "skipped", "continue_night": "skipped",
    }  # fmt: skip
    assert per_file(run, "transcribe.start") == {None: ("upstream_failed", 0)}
    assert per_file(run, "transcribe.wait") == {None: ("upstream_failed", 0)}
    after = transcribe.list_medical_transcription_jobs(MaxResults=100)
    assert (
        after["MedicalTranscriptionJobSummaries"] == jobs_before["MedicalTranscriptionJobSummaries"]
    )
