"""S3 addressing: the URIs jobs name, and the client the engine reads and writes with."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import boto3
from botocore.client import BaseClient
from botocore.config import Config


def split_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` or a path-style ``https://host/bucket/key`` -> (bucket, key)."""
    parts = urlsplit(uri)
    if parts.scheme == "s3":
        bucket, key = parts.netloc, parts.path.lstrip("/")
    elif parts.scheme in ("http", "https"):
        bucket, _, key = parts.path.lstrip("/").partition("/")
    else:
        bucket, key = "", ""
    if not bucket or not key:
        raise ValueError(f"not an S3 object URI: {uri}")
    return bucket, unquote(key) if parts.scheme != "s3" else key


def client(endpoint_url: str | None, region: str) -> BaseClient:
    """An S3 client with path-style addressing, which local S3 servers need."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region,
        config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard"}),
    )


def object_url(s3: BaseClient, bucket: str, key: str) -> str:
    """The https (or local http) URL of an object, as AWS reports TranscriptFileUri."""
    return f"{s3.meta.endpoint_url.rstrip('/')}/{bucket}/{key}"
