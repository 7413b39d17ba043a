"""Nightly medical dictation transcription: S3 audio -> Transcribe Medical jobs -> Parquet.

``list_pending`` lists the audio without a transcript; per file (a mapped task group,
``transcribe``, each named by its job) ``start`` starts the job and ``wait``, a deferrable
sensor, waits for it to end; ``flatten`` writes the tables and the run report, and
``check_run`` fails the run if files failed. Jobs in flight are bounded by one pool.

Which service does the work (AWS, or the self-hosted engine) is decided only by the
Airflow connection named in ``MEDICAL_TRANSCRIBE_CONN_ID`` (default ``aws_default``).
A run whose files failed ends failed, naming them; its report is one click away
("Run report" on the flatten and check_run tasks).
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from airflow.providers.common.compat.sdk import AirflowSkipException
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import (
    CronTriggerTimetable,
    Param,
    WeightRule,
    conf,
    dag,
    get_current_context,
    task,
    task_group,
)
from airflow.task.trigger_rule import TriggerRule

# medical_transcribe.listing and .flatten (pandas, pyarrow, PyAV: slow to import) are
# imported in the tasks that use them: every task process parses this file, and the
# thousands of start and wait tasks of a big night need none of it.
from medical_transcribe import alerts
from medical_transcribe.check_run import judge
from medical_transcribe.links import REPORT_URL_KEY, RunReportLink
from medical_transcribe.naming import PHI_SAFE_NAMES
from medical_transcribe.operators import StartMedicalTranscriptionJobOperator
from medical_transcribe.sensors import MedicalTranscriptionJobSensor

DAG_ID = "nightly_medical_transcription"
AWS_CONN_ID = os.environ.get("MEDICAL_TRANSCRIBE_CONN_ID", "aws_default")
#: The pool that bounds jobs in flight (AWS limits concurrent medical jobs): each file's start
#: task holds two slots, then its wait task one. Create it with ``--include-deferred`` so
#: deferred waits hold theirs: see README, "Jobs in flight".
POOL = os.environ.get("MEDICAL_TRANSCRIBE_POOL", "transcribe_medical")
POLL_SECONDS = int(os.environ.get("MEDICAL_TRANSCRIBE_POLL_SECONDS", "30"))
#: Slots a start holds (a wait holds one): the pool needs at least two.
START_POOL_SLOTS = 2
#: Airflow refuses to expand a mapped task past [core] max_map_length, so one run takes at
#: most that many files; a bigger night goes on in follow-up runs (``continue_night``).
MAX_FILES = conf.getint("core", "max_map_length")

#: What a run can be told, in the trigger form of the Airflow UI (README, "The Airflow UI").
PARAMS = {
    "input_bucket": Param(
        "dictations", type="string", title="Input bucket", description="Bucket holding audio"
    ),
    "input_prefix": Param(
        "inbox/", type="string", title="Input prefix", description="Prefix of pending audio"
    ),
    "output_bucket": Param(
        "transcripts",
        type="string",
        title="Output bucket",
        description="Bucket for transcripts, tables and run reports",
    ),
    "table_prefix": Param(
        "tables",
        type="string",
        title="Table prefix",
        description="Prefix of the Parquet tables and run reports",
    ),
    "type": Param(
        "DICTATION",
        enum=["DICTATION", "CONVERSATION"],
        title="Type",
        description="One clinician dictating, or a clinician-patient conversation",
    ),
    "specialty": Param(
        "PRIMARYCARE",
        enum=["PRIMARYCARE"],
        title="Specialty",
        description="Medical specialty (Transcribe Medical accepts PRIMARYCARE)",
    ),
    "vocabulary_name": Param(
        None,
        type=["null", "string"],
        title="Vocabulary name",
        description="A READY medical vocabulary, or empty for none",
    ),
    "channel_identification": Param(
        False,
        type="boolean",
        title="Channel identification",
        description="Transcribe each channel of two-channel audio apart",
    ),
    "show_speaker_labels": Param(
        False,
        type="boolean",
        title="Show speaker labels",
        description="Label who speaks (conversations); not with channel identification",
    ),
    "max_speaker_labels": Param(
        2,
        type="integer",
        minimum=2,
        maximum=30,
        title="Max speaker labels",
        description="Most speakers expected when speaker labels are on (2-30)",
    ),
    "max_alternatives": Param(
        0,
        type="integer",
        minimum=0,
        maximum=10,
        title="Max alternatives",
        description="Alternative transcriptions per segment (2-10), or 0 for none",
    ),
    "identify_phi": Param(
        False,
        type="boolean",
        title="Identify PHI",
        description="Label protected health information (PHI) in the transcripts",
    ),
    "max_files": Param(
        min(500, MAX_FILES),
        type="integer",
        minimum=1,
        maximum=MAX_FILES,
        title="Max files",
        description="Cap on files per run; a follow-up run takes the rest",
    ),
    "max_failed_fraction": Param(
        0.0,
        type="number",
        minimum=0,
        maximum=1,
        title="Max failed fraction",
        description="Share of files that may fail before the run fails (0: any failure)",
    ),
    "dry_run": Param(
        False,
        type="boolean",
        title="Dry run",
        description="List pending audio only; start no job, write no table",
    ),
}

# Per file: start its job (not waiting), then wait for it deferred. The slot a start
# frees stays free until the scheduler next examines the run and defers that file's wait
# (Airflow pools hand nothing over), so a start queued in that gap could push the jobs in
# flight past the pool. Hence one start at a time, holding two slots: the one file it can
# leave in the gap is covered by the second slot, so jobs in flight never exceed the pool
# (README, "Jobs in flight"). Waits only read the job, so retrying or clearing one never
# starts a second; a job that FAILED, or a request AWS refuses, is not retried.
START_AND_WAIT = {
    "aws_conn_id": AWS_CONN_ID,
    "pool": POOL,
    "weight_rule": WeightRule.ABSOLUTE,
    "retries": 2,
    "retry_delay": timedelta(seconds=30),
    "map_index_template": "{{ task.job_name }}",
}


@task
def list_pending(params: dict[str, Any]) -> list[dict[str, Any]]:
    """Refuse bad inputs, then list the audio without a transcript (nothing on a dry run)."""
    from medical_transcribe import listing  # here, not at the top: see the imports

    settings = listing.job_settings(
        params["vocabulary_name"],
        params["channel_identification"],
        params["max_speaker_labels"] if params["show_speaker_labels"] else None,
        params["max_alternatives"],
    )
    listing.check_inputs(
        aws_conn_id=AWS_CONN_ID,
        input_bucket=params["input_bucket"],
        input_prefix=params["input_prefix"],
        output_bucket=params["output_bucket"],
        table_prefix=params["table_prefix"],
        settings=settings,
    )
    pending, skipped = listing.list_pending(
        aws_conn_id=AWS_CONN_ID,
        input_bucket=params["input_bucket"],
        input_prefix=params["input_prefix"],
        output_bucket=params["output_bucket"],
        job_type=params["type"],
        specialty=params["specialty"],
        settings=settings,
        max_files=params["max_files"],
        identify_phi=params["identify_phi"],
    )
    get_current_context()["ti"].xcom_push("skipped", skipped)
    print(f"{len(pending)} file(s) to transcribe; skipped: {skipped}")
    for descriptor in pending:
        source = "" if PHI_SAFE_NAMES else f"{descriptor['media_file_uri']} -> "
        print(f"  {source}{descriptor['job_name']}")
    return [] if params["dry_run"] else pending


@task_group
def transcribe(
    job_name: str,
    media_file_uri: str,
    output_bucket_name: str,
    type: str,
    specialty: str,
    settings: dict[str, Any] | None,
    content_identification_type: str | None,
) -> None:
    """One file: start its job, then wait for it to end (its arguments: a descriptor)."""
    started = StartMedicalTranscriptionJobOperator(
        task_id="start",
        job_name=job_name,
        media_file_uri=media_file_uri,
        output_bucket_name=output_bucket_name,
        type=type,
        specialty=specialty,
        settings=settings,
        content_identification_type=content_identification_type,
        wait_for_completion=False,
        pool_slots=START_POOL_SLOTS,
        max_active_tis_per_dag=1,
        priority_weight=1,
        **START_AND_WAIT,
    )
    # The scheduler defers the wait straight to the triggerer, which reads the job name from
    # the start's XCom: no worker process runs for it until the job ended.
    started >> MedicalTranscriptionJobSensor(
        task_id="wait",
        job_name="{{ ti.xcom_pull(task_ids='transcribe.start', map_indexes=ti.map_index) }}",
        deferrable=True,
        start_from_trigger=True,
        poke_interval=POLL_SECONDS,
        priority_weight=2,
        **START_AND_WAIT,
    )


@task(trigger_rule=TriggerRule.ALL_DONE, multiple_outputs=False)
def flatten(descriptors: list[dict[str, Any]] | None, params: dict[str, Any]) -> dict:
    """Every file's outcome into the tables and the run report, failures included."""
    if descriptors is None:
        # list_pending failed and said why; check_run fails the run for it.
        raise AirflowSkipException("no tables: list_pending did not finish")
    if params["dry_run"]:
        print("dry run: no tables written")
        return {}
    from medical_transcribe.flatten import flatten as write_tables

    context = get_current_context()
    run = context["dag_run"]
    summary = write_tables(
        descriptors,
        aws_conn_id=AWS_CONN_ID,
        output_bucket=params["output_bucket"],
        table_prefix=params["table_prefix"],
        run_id=run.run_id,
        # Runs triggered without a logical date (API, assets) are dated when they ran.
        run_date=(run.logical_date or run.run_after).isoformat(),
        skipped=context["ti"].xcom_pull(task_ids="list_pending", key="skipped"),
    )
    context["ti"].xcom_push(REPORT_URL_KEY, summary["report_url"])
    print(f"tables: {summary['tables']}\nrun report: {summary['report']}")
    return summary


@task
def check_run(summary: dict[str, Any], params: dict[str, Any]) -> str:
    """Fail the run when more files failed than ``max_failed_fraction`` allows."""
    account = judge(summary, params["max_failed_fraction"]) if summary else "dry run"
    print(account)
    return account


@task
def follow_up(summary: dict[str, Any] | None, params: dict[str, Any]) -> dict[str, Any]:
    """This run's params for a follow-up run, when files were left beyond ``max_files``.

    Only a run that transcribed something hands on: a night that cannot make progress
    stops (and fails, naming its files) instead of triggering itself forever.
    """
    left = (summary or {}).get("skipped", {}).get("left_for_next_run", 0)
    if not left:
        raise AirflowSkipException("no files left for a follow-up run")
    if not summary["completed"]:
        raise AirflowSkipException(f"{left} file(s) left, but this run transcribed none")
    print(f"{left} file(s) left beyond max_files: a follow-up run takes them")
    return params


@dag(
    dag_id=DAG_ID,
    # No start_date, and no grace: unpausing waits for the next 02:00 instead of running a
    # missed night at once (trigger by hand to transcribe the backlog now). Airflow's
    # default (run_immediately=False) still runs the last night when unpaused within a
    # tenth of a day after it.
    schedule=CronTriggerTimetable("0 2 * * *", timezone="UTC", run_immediately=timedelta(0)),
    catchup=False,
    max_active_runs=1,
    tags=["transcribe-medical"],
    doc_md=__doc__,
    on_failure_callback=alerts.failure_callbacks(),
    params=PARAMS,
)
def nightly_medical_transcription() -> None:
    pending = list_pending()
    transcribed = transcribe.expand_kwargs(pending)
    summary = flatten(pending)
    verdict = check_run(summary)
    # Queued behind this run (max_active_runs=1), with the same params.
    TriggerDagRunOperator(
        task_id="continue_night",
        trigger_dag_id=DAG_ID,
        conf=follow_up(summary),
        openlineage_inject_parent_info=False,
    )
    transcribed >> summary
    pending >> verdict  # a failed listing fails the run, though flatten then has nothing to do
    for step in (summary, verdict):
        step.operator.operator_extra_links = (RunReportLink(),)


nightly_medical_transcription()
