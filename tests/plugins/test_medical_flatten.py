"""Where a run's tables land in S3, without Airflow."""

from __future__ import annotations

import io

import boto3
import pyarrow.parquet as pq
from airflow.providers.amazon.aws.hooks.s3 import S3Hook

from medical_transcribe.flatten import split_transcript_uri, upload_tables
from medical_transcribe.tables import ITEMS_TABLE, JOBS_TABLE, TranscriptTableWriter

RUN = {"run_id": "scheduled__2024-05-01T02:00:00+00:00", "run_date": "2024-05-01"}


def test_upload_tables_puts_one_object_per_table_and_run(aws, tmp_path):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="tables-bucket")
    files = {ITEMS_TABLE: tmp_path / "items.parquet", JOBS_TABLE: tmp_path / "jobs.parquet"}
    with TranscriptTableWriter(files, **RUN):
        pass
    hook = S3Hook(aws_conn_id="aws_default")

    uris = upload_tables(hook, files, bucket="tables-bucket", prefix="tables", **RUN)
    upload_tables(hook, files, bucket="tables-bucket", prefix="tables", **RUN)  # replaces

    key = "tables/transcript_items/run_date=2024-05-01/scheduled__2024-05-01T02-00-00-00-00.parquet"
    assert uris[ITEMS_TABLE] == f"s3://tables-bucket/{key}"
    assert len(s3.list_objects_v2(Bucket="tables-bucket")["Contents"]) == 2
    body = s3.get_object(Bucket="tables-bucket", Key=key)["Body"].read()
    assert pq.read_table(io.BytesIO(body)).schema.names[0] == "run_id"


def test_transcript_uris_of_aws_and_of_the_engine_name_their_object():
    assert split_transcript_uri("s3://out/medical/a.json") == ("out", "medical/a.json")
    https = "https://s3.us-east-1.amazonaws.com/out/medical/a%20b.json"
    assert split_transcript_uri(https) == ("out", "medical/a b.json")
