"""Plugin tests run against moto, which pins AWS's own wire behaviour."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import boto3
import pytest
from moto import mock_aws

REGION = "us-east-1"
MEDIA_BUCKET = "clinic-audio"
OUTPUT_BUCKET = "clinic-transcripts"
MEDIA_KEY = "inbox/2024-05-01/dr smith/visit 01.wav"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and region; no endpoint overrides, so moto sees the requests."""
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL") or name in (
            "AWS_PROFILE",
            "AWS_CONFIG_FILE",
        ):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", '{"conn_type": "aws"}')


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def media(aws: None) -> dict[str, str]:
    """One uploaded dictation and an output bucket; returns bucket, key, uri and ETag."""
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=MEDIA_BUCKET)
    s3.create_bucket(Bucket=OUTPUT_BUCKET)
    etag = s3.put_object(Bucket=MEDIA_BUCKET, Key=MEDIA_KEY, Body=b"RIFF fake audio")["ETag"]
    return {
        "bucket": MEDIA_BUCKET,
        "key": MEDIA_KEY,
        "uri": f"s3://{MEDIA_BUCKET}/{MEDIA_KEY}",
        "etag": etag,
        "output_bucket": OUTPUT_BUCKET,
    }


@pytest.fixture
def start_request() -> Callable[..., dict]:
    """Build minimal StartMedicalTranscriptionJob arguments for a job name (and media URI)."""

    def build(name: str, uri: str = f"s3://{MEDIA_BUCKET}/{MEDIA_KEY}") -> dict:
        return {
            "MedicalTranscriptionJobName": name,
            "LanguageCode": "en-US",
            "Media": {"MediaFileUri": uri},
            "OutputBucketName": OUTPUT_BUCKET,
            "Specialty": "PRIMARYCARE",
            "Type": "DICTATION",
        }

    return build
