"""The night's first step: refuse inputs that cannot work, then find the audio still
waiting for a transcript, as small descriptors the ``transcribe`` group is mapped over.

Only Airflow hooks are used, so the same code runs against AWS or the self-hosted engine;
the Airflow connection decides which.
"""

from __future__ import annotations

import logging
from pathlib import PurePosixPath
from typing import Any

import botocore.session
from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.common.compat.sdk import AirflowFailException
from botocore.exceptions import ClientError
from botocore.validate import ParamValidator

from medical_transcribe import media
from medical_transcribe.hooks import UNKNOWN_NAME_ERRORS, TranscribeMedicalHook
from medical_transcribe.naming import PHI_SAFE_NAMES, job_name_for, key_label

log = logging.getLogger(__name__)

#: File types Transcribe accepts, by extension; other objects need an audio/* content type.
AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".mp3", ".ogg", ".webm", ".amr", ".mp4", ".m4a"})
#: Where a job without OutputKey writes its transcript in the output bucket.
TRANSCRIPT_PREFIX = "medical/"


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


def settings_problems(settings: dict[str, Any]) -> list[str]:
    """
    What AWS would refuse in a Settings combination or range, said before any job starts.

    Ranges and types come from botocore's service model, as the engine's do. The rules
    between members are not in that model; the engine holds its own copy, which Airflow's
    side cannot import (it ships without the engine).
    """
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
        if error.response["Error"]["Code"] in UNKNOWN_NAME_ERRORS:
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
    """Where the job of that name leaves its transcript, when no OutputKey is given."""
    return f"{TRANSCRIPT_PREFIX}{job_name}.json"


def _is_audio(s3: S3Hook, bucket: str, key: str) -> bool:
    if PurePosixPath(key).suffix.lower() in AUDIO_EXTENSIONS:
        return True
    head = s3.head_object(key=key, bucket_name=bucket) or {}
    return str(head.get("ContentType", "")).startswith("audio/")


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
