"""The nightly pipeline's own steps: find pending audio, and flatten a run's jobs to tables.

Only Airflow hooks are used, so the same code runs against AWS or the self-hosted engine;
the Airflow connection decides which.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from botocore.exceptions import ClientError

from medical_transcribe.hooks import TranscribeMedicalHook
from medical_transcribe.naming import job_name_for
from medical_transcribe.tables import (
    ITEMS_TABLE,
    JOBS_TABLE,
    PHI_TABLE,
    TranscriptTableWriter,
    upload_tables,
)

log = logging.getLogger(__name__)

#: File types Transcribe accepts, by extension; other objects need an audio/* content type.
AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".mp3", ".ogg", ".webm", ".amr", ".mp4", ".m4a"})


def job_settings(vocabulary_name: str | None, channel_identification: bool) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    if vocabulary_name:
        settings["VocabularyName"] = vocabulary_name
    if channel_identification:
        settings["ChannelIdentification"] = True
    return settings


#: Where a job without OutputKey writes its transcript in the output bucket.
TRANSCRIPT_PREFIX = "medical/"


def transcript_key(job_name: str) -> str:
    return f"{TRANSCRIPT_PREFIX}{job_name}.json"


def _is_audio(s3: S3Hook, bucket: str, key: str) -> bool:
    if PurePosixPath(key).suffix.lower() in AUDIO_EXTENSIONS:
        return True
    head = s3.head_object(key=key, bucket_name=bucket) or {}
    return str(head.get("ContentType", "")).startswith("audio/")


def _existing_job(transcribe: TranscribeMedicalHook, name: str) -> dict[str, Any] | None:
    try:
        return transcribe.get_job(name)
    except ClientError as error:
        # AWS answers an unknown job name with BadRequestException.
        if error.response["Error"]["Code"] in ("BadRequestException", "NotFoundException"):
            return None
        raise


def list_pending(
    *,
    aws_conn_id: str | None,
    input_bucket: str,
    input_prefix: str,
    output_bucket: str,
    job_type: str,
    specialty: str,
    settings: dict[str, Any],
    max_files: int,
    identify_phi: bool = False,
) -> list[dict[str, Any]]:
    """Small descriptors, one per audio object still needing a transcript.

    Skipped: non-audio objects, objects whose transcript exists, and objects whose job
    failed on an earlier night (it is in that night's jobs table with its reason). A job
    still running is kept: the start task adopts it instead of starting a duplicate.
    What exists is read with one listing of the transcripts and one of the failed jobs,
    not a call per object: a night of tens of thousands of files would be throttled.
    """
    s3 = S3Hook(aws_conn_id=aws_conn_id)
    transcribed = set(s3.list_keys(bucket_name=output_bucket, prefix=TRANSCRIPT_PREFIX))
    failed = TranscribeMedicalHook(aws_conn_id=aws_conn_id).job_names(status="FAILED")
    content_identification = "PHI" if identify_phi else None
    identity = {"Type": job_type, "Specialty": specialty, **settings}
    if content_identification:
        identity["ContentIdentificationType"] = content_identification
    pending: list[dict[str, Any]] = []
    paginator = s3.get_conn().get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=input_bucket, Prefix=input_prefix):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if key.endswith("/") or not _is_audio(s3, input_bucket, key):
                log.info("skipping %s: not audio", key)
                continue
            name = job_name_for(input_bucket, key, obj["ETag"], identity)
            if transcript_key(name) in transcribed:
                continue
            if name in failed:
                log.info("skipping %s: its job %s failed earlier", key, name)
                continue
            pending.append(
                {
                    "job_name": name,
                    "media_file_uri": f"s3://{input_bucket}/{key}",
                    "output_bucket_name": output_bucket,
                    "type": job_type,
                    "specialty": specialty,
                    "settings": settings or None,
                    "content_identification_type": content_identification,
                }
            )
            if len(pending) >= max_files:
                log.info("stopping at the cap of %d files for this run", max_files)
                return pending
    return pending


def split_transcript_uri(uri: str) -> tuple[str, str]:
    """Bucket and key of a TranscriptFileUri (AWS's path-style https URL, or s3://)."""
    parts = urlsplit(uri)
    if parts.scheme == "s3":
        return parts.netloc, parts.path.lstrip("/")
    bucket, _, key = parts.path.lstrip("/").partition("/")
    return bucket, unquote(key)


def _jobs_with_transcripts(
    descriptors: list[dict[str, Any]], s3: S3Hook, transcribe: TranscribeMedicalHook
) -> Iterator[tuple[dict[str, Any], dict[str, Any] | None]]:
    """One (job, transcript) pair at a time, so memory holds one transcript, not the night."""
    for descriptor in descriptors:
        name = descriptor["job_name"]
        job = _existing_job(transcribe, name) or {
            "MedicalTranscriptionJobName": name,
            "TranscriptionJobStatus": "FAILED",
            "FailureReason": "The job could not be started; see the start_job task log.",
            "Media": {"MediaFileUri": descriptor["media_file_uri"]},
            "Type": descriptor["type"],
            "Specialty": descriptor["specialty"],
        }
        transcript = None
        if job["TranscriptionJobStatus"] == "COMPLETED":
            bucket, key = split_transcript_uri(job["Transcript"]["TranscriptFileUri"])
            transcript = json.loads(s3.read_key(key, bucket_name=bucket))
        yield job, transcript


def flatten(
    descriptors: list[dict[str, Any]],
    *,
    aws_conn_id: str | None,
    output_bucket: str,
    table_prefix: str,
    run_id: str,
    run_date: str,
) -> dict[str, Any]:
    """Write this run's ``transcript_items``, ``transcription_jobs`` and ``phi_entities``
    Parquet to S3."""
    s3 = S3Hook(aws_conn_id=aws_conn_id)
    transcribe = TranscribeMedicalHook(aws_conn_id=aws_conn_id)
    with tempfile.TemporaryDirectory(prefix="transcript-tables-") as folder:
        tables = (ITEMS_TABLE, JOBS_TABLE, PHI_TABLE)
        files = {table: Path(folder) / f"{table}.parquet" for table in tables}
        with TranscriptTableWriter(
            *(files[table] for table in tables), run_id=run_id, run_date=run_date
        ) as writer:
            writer.write_all(_jobs_with_transcripts(descriptors, s3, transcribe))
        counts = writer.row_counts
        uris = upload_tables(
            files,
            bucket=output_bucket,
            run_id=run_id,
            run_date=run_date,
            prefix=table_prefix,
            aws_conn_id=aws_conn_id,
        )
    return {"rows": counts, "tables": uris}
