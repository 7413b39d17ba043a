"""The night's last data step: read each job's transcript, stream every table to Parquet,
upload the tables and the run's report, and sum the run up for ``check_run``.

The tables themselves are ``tables``'s (pure); this module does the S3 I/O around them.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pyarrow.parquet as pq
from airflow.providers.amazon.aws.hooks.s3 import S3Hook

from medical_transcribe import media, report
from medical_transcribe.hooks import TranscribeMedicalHook
from medical_transcribe.naming import slugify
from medical_transcribe.tables import (
    ITEMS_TABLE,
    JOBS_TABLE,
    MEDIA_DURATION,
    SCHEMAS,
    TranscriptTableWriter,
    as_date,
)


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
        job = transcribe.find_job(name) or {
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


def table_key(prefix: str, table: str, run_id: str, run_date: str, suffix: str = ".parquet") -> str:
    """``<prefix>/<table>/run_date=<date>/<run>.parquet``: one object per table and run,
    Hive-partitioned by date for Athena."""
    partition = f"run_date={as_date(run_date).isoformat()}"
    parts = (prefix.strip("/"), table, partition, f"{slugify(run_id)}{suffix}")
    return "/".join(p for p in parts if p)


def upload_tables(
    s3: S3Hook,
    files: Mapping[str, Path],
    *,
    bucket: str,
    prefix: str,
    run_id: str,
    run_date: str,
) -> dict[str, str]:
    """Upload finished table files; return table -> S3 URI. A rerun of the same run replaces
    its earlier upload instead of adding duplicate rows."""
    uris = {}
    for table, path in files.items():
        key = table_key(prefix, table, run_id, run_date)
        s3.load_file(filename=path, key=key, bucket_name=bucket, replace=True)
        uris[table] = f"s3://{bucket}/{key}"
    return uris


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
    """Write this run's tables (every one of ``tables.SCHEMAS``) and its HTML report to S3;
    return the run's summary: counts, failures with their reasons, where everything is."""
    s3 = S3Hook(aws_conn_id=aws_conn_id)
    transcribe = TranscribeMedicalHook(aws_conn_id=aws_conn_id)

    def link(bucket: str, key: str) -> str:
        params = {"Bucket": bucket, "Key": key}
        return s3.generate_presigned_url("get_object", params, expires_in=LINK_SECONDS) or ""

    with tempfile.TemporaryDirectory(prefix="transcript-tables-") as folder:
        files = {table: Path(folder) / f"{table}.parquet" for table in SCHEMAS}
        with TranscriptTableWriter(files, run_id=run_id, run_date=run_date) as writer:
            writer.write_all(_jobs_with_transcripts(descriptors, s3, transcribe))
        counts = writer.row_counts
        jobs = pq.read_table(files[JOBS_TABLE]).to_pandas()
        items = pq.read_table(files[ITEMS_TABLE], columns=["item_type", "confidence"])
        uris = upload_tables(
            s3, files, bucket=output_bucket, prefix=table_prefix, run_id=run_id, run_date=run_date
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
