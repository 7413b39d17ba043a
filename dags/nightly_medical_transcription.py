"""Nightly medical dictation transcription: S3 audio -> Transcribe Medical jobs -> Parquet.

Which service does the work (AWS, or the self-hosted engine) is decided only by the
Airflow connection named in ``MEDICAL_TRANSCRIBE_CONN_ID`` (default ``aws_default``).
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import Param, dag, get_current_context, task
from airflow.task.trigger_rule import TriggerRule

from medical_transcribe import pipeline
from medical_transcribe.operators import StartMedicalTranscriptionJobOperator
from medical_transcribe.sensors import MedicalTranscriptionJobSensor

AWS_CONN_ID = os.environ.get("MEDICAL_TRANSCRIBE_CONN_ID", "aws_default")
#: Bounds the jobs in flight: AWS allows a limited number of concurrent medical jobs.
POOL = os.environ.get("MEDICAL_TRANSCRIBE_POOL", "default_pool")
POLL_SECONDS = int(os.environ.get("MEDICAL_TRANSCRIBE_POLL_SECONDS", "30"))


@dag(
    dag_id="nightly_medical_transcription",
    schedule="0 2 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["transcribe-medical"],
    doc_md=__doc__,
    params={
        "input_bucket": Param("dictations", type="string", description="Bucket holding audio"),
        "input_prefix": Param("inbox/", type="string", description="Prefix of pending audio"),
        "output_bucket": Param("transcripts", type="string", description="Transcripts and tables"),
        "table_prefix": Param("tables", type="string", description="Prefix of the Parquet tables"),
        "type": Param("DICTATION", enum=["DICTATION", "CONVERSATION"]),
        "specialty": Param("PRIMARYCARE", enum=["PRIMARYCARE"]),
        "vocabulary_name": Param(None, type=["null", "string"], description="Medical vocabulary"),
        "channel_identification": Param(False, type="boolean"),
        "identify_phi": Param(
            False, type="boolean", description="Label protected health information (PHI)"
        ),
        "max_files": Param(500, type="integer", minimum=1, description="Cap on files per run"),
        "dry_run": Param(False, type="boolean", description="List pending audio only"),
    },
)
def nightly_medical_transcription() -> None:
    @task
    def list_pending(params: dict[str, Any]) -> list[dict[str, Any]]:
        pending = pipeline.list_pending(
            aws_conn_id=AWS_CONN_ID,
            input_bucket=params["input_bucket"],
            input_prefix=params["input_prefix"],
            output_bucket=params["output_bucket"],
            job_type=params["type"],
            specialty=params["specialty"],
            settings=pipeline.job_settings(
                params["vocabulary_name"], params["channel_identification"]
            ),
            max_files=params["max_files"],
            identify_phi=params["identify_phi"],
        )
        print(f"{len(pending)} file(s) to transcribe")
        for descriptor in pending:
            print(f"  {descriptor['media_file_uri']} -> {descriptor['job_name']}")
        return [] if params["dry_run"] else pending

    pending = list_pending()

    started = StartMedicalTranscriptionJobOperator.partial(
        task_id="start_job",
        aws_conn_id=AWS_CONN_ID,
        wait_for_completion=False,
        pool=POOL,
        retries=2,
    ).expand_kwargs(pending)

    waited = MedicalTranscriptionJobSensor.partial(
        task_id="wait_job",
        aws_conn_id=AWS_CONN_ID,
        poke_interval=POLL_SECONDS,
        pool=POOL,
    ).expand(job_name=started.output)

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def flatten(descriptors: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
        if params["dry_run"]:
            print("dry run: no tables written")
            return {}
        context = get_current_context()
        summary = pipeline.flatten(
            descriptors,
            aws_conn_id=AWS_CONN_ID,
            output_bucket=params["output_bucket"],
            table_prefix=params["table_prefix"],
            run_id=context["run_id"],
            run_date=context["ds"],
        )
        print(f"tables: {summary}")
        return summary

    waited >> flatten(pending)


nightly_medical_transcription()
