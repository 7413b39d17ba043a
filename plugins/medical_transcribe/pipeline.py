"""The nightly pipeline's own steps: check the inputs, find pending audio, flatten a run's
jobs to tables and a report, and judge the run.

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

import botocore.session
import pyarrow.parquet as pq
from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.common.compat.sdk import AirflowFailException
from botocore.exceptions import ClientError
from botocore.validate import ParamValidator

from medical_transcribe import media, report
from medical_transcribe.hooks import TranscribeMedicalHook
from medical_transcribe.naming import PHI_SAFE_NAMES, job_name_for, key_label
from medical_transcribe.tables import (
    ALTERNATIVES_TABLE,
    ITEMS_TABLE,
    JOBS_TABLE,
    MEDIA_DURATION,
    PHI_TABLE,
    TranscriptTableWriter,
    table_key,
    upload_tables,
)

log = logging.getLogger(__name__)

#: File types Transcribe accepts, by extension; other objects need an audio/* content type.
AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".mp3", ".ogg", ".webm", ".amr", ".mp4", ".m4a"})


def job_settings(
    vocabulary_name: str | None,
    channel_identification: bool,
    max_speaker_labels: int | None = None,
    max_alternatives: int | None = None,
) -> dict[str, Any]:
    """``Settings`` of a job; ``max_speaker_labels`` turns speaker labels on,
    ``max_alternatives`` alternative transcriptions."""
    settings: dict[str, Any] = {}
    if vocabulary_name:
        settings["VocabularyName"] = vocabulary_name
    if channel_identification:
        settings["ChannelIdentification"] = True
    if max_speaker_labels:
        settings["ShowSpeakerLabels"] = True
        settings["MaxSpeakerLabels"] = max_speaker_labels
    if max_alternatives:
        settings["ShowAlternatives"] = True
        settings["MaxAlternatives"] = max_alternatives
    return settings


#: Where a job without OutputKey writes its transcript in the output bucket.
TRANSCRIPT_PREFIX = "medical/"


def settings_problems(settings: dict[str, Any]) -> list[str]:
    """What AWS would refuse in a Settings combination or range, said before any job starts."""
    shape = (
        botocore.session.get_session()
        .get_service_model("transcribe")
        .shape_for("MedicalTranscriptionSetting")
    )
    report = ParamValidator().validate(settings, shape)
    problems = report.generate_report().splitlines() if report.has_errors() else []
    if settings.get("ChannelIdentification") and settings.get("ShowSpeakerLabels"):
        problems.append("channel identification and speaker labels cannot be used together")
    for show, count in (
        ("ShowSpeakerLabels", "MaxSpeakerLabels"),
        ("ShowAlternatives", "MaxAlternatives"),
    ):
        if bool(settings.get(show)) != (settings.get(count) is not None):
            problems.append(f"{show} and {count} must be set together")
    return problems


def _vocabulary_problem(transcribe: TranscribeMedicalHook, name: str) -> str | None:
    try:
        vocabulary = transcribe.conn.get_medical_vocabulary(VocabularyName=name)
    except ClientError as error:
        if error.response["Error"]["Code"] in ("BadRequestException", "NotFoundException"):
            return f"vocabulary {name!r} does not exist: create it, or clear vocabulary_name"
        raise
    state = vocabulary["VocabularyState"]
    if state != "READY":
        reason = vocabulary.get("FailureReason") or "wait until it is READY"
        return f"vocabulary {name!r} is {state}, not READY: {reason}"
    return None


def _output_problem(s3: S3Hook, bucket: str, table_prefix: str) -> str | None:
    if not s3.check_for_bucket(bucket):
        return f"output bucket {bucket!r} does not exist: create it, or fix output_bucket"
    probe = "/".join(p for p in (table_prefix.strip("/"), ".write-check") if p)
    try:
        s3.get_conn().put_object(Bucket=bucket, Key=probe, Body=b"")
        s3.get_conn().delete_object(Bucket=bucket, Key=probe)
    except ClientError as error:
        return f"cannot write to s3://{bucket}/{probe} ({error.response['Error']['Code']})"
    return None


def check_inputs(
    *,
    aws_conn_id: str | None,
    input_bucket: str,
    input_prefix: str,
    output_bucket: str,
    table_prefix: str,
    settings: dict[str, Any],
) -> None:
    """
    Refuse a run whose inputs cannot work, before any job starts, saying what to fix.

    An empty inbox prefix is refused too: audio is never deleted from it, so a prefix with
    no object at all is a typo far more often than a quiet night.
    """
    s3 = S3Hook(aws_conn_id=aws_conn_id)
    problems = settings_problems(settings)
    if not s3.check_for_bucket(input_bucket):
        problems.append(f"input bucket {input_bucket!r} does not exist: fix input_bucket")
    elif (
        not s3.get_conn()
        .list_objects_v2(Bucket=input_bucket, Prefix=input_prefix, MaxKeys=1)
        .get("KeyCount")
    ):
        problems.append(f"nothing under s3://{input_bucket}/{input_prefix}: fix input_prefix")
    problems.append(_output_problem(s3, output_bucket, table_prefix))
    if settings.get("VocabularyName"):
        transcribe = TranscribeMedicalHook(aws_conn_id=aws_conn_id)
        problems.append(_vocabulary_problem(transcribe, settings["VocabularyName"]))
    problems = [p for p in problems if p]
    if problems:
        raise AirflowFailException("Refusing to start any job: " + "; ".join(problems) + ".")


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
    phi_safe: bool = PHI_SAFE_NAMES,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """
    Small descriptors, one per audio object still needing a transcript, and skip counts.

    Skipped: non-audio objects, objects whose transcript exists, and objects whose job
    failed on an earlier night (it is in that night's jobs table with its reason). A job
    still running is kept: the start task adopts it instead of starting a duplicate.
    Pending audio beyond ``max_files`` is counted as ``left_for_next_run``.
    What exists is read with one listing of the transcripts and one of the failed jobs,
    not a call per object: a night of tens of thousands of files would be throttled.
    With ``phi_safe``, job names and log lines carry a hash instead of the key.
    With channel identification asked for, mono files are refused before any job starts.
    """
    s3 = S3Hook(aws_conn_id=aws_conn_id)
    transcribed = set(s3.list_keys(bucket_name=output_bucket, prefix=TRANSCRIPT_PREFIX))
    failed = TranscribeMedicalHook(aws_conn_id=aws_conn_id).job_names(status="FAILED")
    content_identification = "PHI" if identify_phi else None
    pending: list[dict[str, Any]] = []
    skipped = dict.fromkeys(
        ("not_audio", "already_transcribed", "failed_before", "left_for_next_run"), 0
    )
    mono: list[str] = []
    paginator = s3.get_conn().get_paginator("list_objects_v2")
    for obj in (o for page in paginator.paginate(Bucket=input_bucket, Prefix=input_prefix)
                for o in page.get("Contents", [])):  # fmt: skip
        key = obj["Key"]
        if key.endswith("/") or not _is_audio(s3, input_bucket, key):
            log.info("skipping %s: not audio", key_label(input_bucket, key, phi_safe))
            skipped["not_audio"] += 1
            continue
        name = job_name_for(
            input_bucket, key, obj["ETag"], type=job_type, specialty=specialty,
            settings=settings, content_identification_type=content_identification,
            phi_safe=phi_safe,
        )  # fmt: skip
        if transcript_key(name) in transcribed:
            skipped["already_transcribed"] += 1
            continue
        if name in failed:
            log.info("skipping %s: it failed on an earlier night", name)
            skipped["failed_before"] += 1
            continue
        if len(pending) == max_files:
            skipped["left_for_next_run"] += 1
            continue
        if settings.get("ChannelIdentification"):
            info = media.probe(s3.get_conn(), input_bucket, key)
            if info is not None and info.channels < 2:
                mono.append(name)
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
    if left := skipped["left_for_next_run"]:
        log.info("%d file(s) beyond the cap of %d left for the next run", left, max_files)
    if mono:
        raise AirflowFailException(
            "Refusing to start any job: channel identification needs two-channel audio, and "
            f"these files are mono: {', '.join(mono)}. Turn channel_identification off."
        )
    return pending, skipped


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
    """One (job, transcript) pair at a time, so memory holds one transcript, not the night.

    Neither AWS nor the transcript says how long the audio is, so its length is read from
    the file's own header (a few ranged reads) and added to the job under MEDIA_DURATION.
    """
    for descriptor in descriptors:
        name = descriptor["job_name"]
        job = _existing_job(transcribe, name) or {
            "MedicalTranscriptionJobName": name,
            "TranscriptionJobStatus": "FAILED",
            "FailureReason": "The job could not be started; see its transcribe.start task log.",
            "Media": {"MediaFileUri": descriptor["media_file_uri"]},
            "Type": descriptor["type"],
            "Specialty": descriptor["specialty"],
        }
        info = media.probe(s3.get_conn(), *s3.parse_s3_url(descriptor["media_file_uri"]))
        job = {**job, MEDIA_DURATION: info.duration if info else None}
        transcript = None
        if job["TranscriptionJobStatus"] == "COMPLETED":
            bucket, key = split_transcript_uri(job["Transcript"]["TranscriptFileUri"])
            transcript = json.loads(s3.read_key(key, bucket_name=bucket))
        yield job, transcript


#: How long the links in a run report (and the report's own link) work: SigV4's maximum.
LINK_SECONDS = 7 * 24 * 3600


def flatten(
    descriptors: list[dict[str, Any]],
    *,
    aws_conn_id: str | None,
    output_bucket: str,
    table_prefix: str,
    run_id: str,
    run_date: str,
    skipped: dict[str, int] | None = None,
) -> dict[str, Any]:
    """
    Write this run's ``transcript_items``, ``transcription_jobs``, ``phi_entities`` and
    ``transcript_alternatives`` Parquet and its HTML report to S3; return the run's summary (counts, failures, where
    everything is).
    """
    s3 = S3Hook(aws_conn_id=aws_conn_id)
    transcribe = TranscribeMedicalHook(aws_conn_id=aws_conn_id)

    def link(bucket: str, key: str) -> str:
        params = {"Bucket": bucket, "Key": key}
        return s3.generate_presigned_url("get_object", params, expires_in=LINK_SECONDS) or ""

    with tempfile.TemporaryDirectory(prefix="transcript-tables-") as folder:
        tables = (ITEMS_TABLE, JOBS_TABLE, PHI_TABLE, ALTERNATIVES_TABLE)
        files = {table: Path(folder) / f"{table}.parquet" for table in tables}
        with TranscriptTableWriter(
            *(files[table] for table in tables), run_id=run_id, run_date=run_date
        ) as writer:
            writer.write_all(_jobs_with_transcripts(descriptors, s3, transcribe))
        counts = writer.row_counts
        jobs = pq.read_table(files[JOBS_TABLE]).to_pandas()
        items = pq.read_table(files[ITEMS_TABLE], columns=["item_type", "confidence"])
        uris = upload_tables(
            files,
            bucket=output_bucket,
            run_id=run_id,
            run_date=run_date,
            prefix=table_prefix,
            aws_conn_id=aws_conn_id,
        )
    words = items.to_pandas().query("item_type == 'pronunciation'")["confidence"]
    links = {
        table: link(*s3.parse_s3_url(uri)) for table, uri in uris.items()
    } | {  # transcripts, by job name
        row.job_name: link(*split_transcript_uri(row.transcript_uri))
        for row in jobs.dropna(subset=["transcript_uri"]).itertuples()
    }
    page = report.render(
        jobs, words, run_id=run_id, run_date=run_date, skipped=skipped or {}, links=links
    )
    report_key = table_key(table_prefix, report.REPORTS, run_id, run_date, ".html")
    s3.get_conn().put_object(
        Bucket=output_bucket, Key=report_key, Body=page.encode(), ContentType=report.CONTENT_TYPE
    )
    failed = jobs[jobs.status != "COMPLETED"]
    return {
        "rows": counts,
        "tables": uris,
        "report": f"s3://{output_bucket}/{report_key}",
        "report_url": link(output_bucket, report_key),
        "files": len(jobs),
        "completed": int((jobs.status == "COMPLETED").sum()),
        "failed": {
            row.job_name: row.failure_reason or f"the job is {row.status}"
            for row in failed.itertuples()
        },
        "skipped": skipped or {},
        "audio_minutes": round(float(jobs.media_duration.sum()) / 60, 2),
    }


def judge(summary: dict[str, Any], max_failed_fraction: float) -> str:
    """
    Fail the run when more than ``max_failed_fraction`` of its files failed, naming each
    failed job; otherwise return a one-line account of the run.

    The log gets one short line per failed job with its reason, and the exception leads with
    the names: Airflow's log view does not wrap, and in one long message the names an
    operator looks for would be cut off.
    """
    files, failed = summary.get("files", 0), summary.get("failed", {})
    account = (
        f"{summary.get('completed', 0)} transcribed, {len(failed)} failed, "
        f"{sum(summary.get('skipped', {}).values())} skipped"
    )
    if failed and len(failed) / files > max_failed_fraction:
        log.error("%s: more than max_failed_fraction=%g", account, max_failed_fraction)
        for name, reason in failed.items():
            log.error("failed %s: %s", name, reason)
        log.error("run report: %s", summary["report"])
        raise AirflowFailException(f"Failed: {', '.join(failed)} ({len(failed)} of {files})")
    return account
