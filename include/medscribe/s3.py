"""S3 addressing: the URIs jobs name, and the client the engine reads and writes with."""

from __future__ import annotations

import re
from typing import Any, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

import boto3
from botocore.client import BaseClient
from botocore.config import Config
from botocore.handlers import VALID_BUCKET

#: ``bucket.s3.amazonaws.com``, ``bucket.s3.us-east-1.amazonaws.com``, ``bucket.s3-us-west-2...``
_VIRTUAL_HOSTED = re.compile(r"(?P<bucket>.+?)\.s3(?:[.-][a-z0-9-]+)*\.amazonaws\.com")
#: S3 keys are at most 1024 bytes of UTF-8.
MAX_KEY_BYTES = 1024


class S3Object(NamedTuple):
    bucket: str
    key: str
    version_id: str | None = None

    def get_args(self) -> dict[str, Any]:
        """The object's arguments for ``get_object`` and ``head_object``."""
        version = {"VersionId": self.version_id} if self.version_id else {}
        return {"Bucket": self.bucket, "Key": self.key, **version}


def parse_uri(uri: str) -> S3Object:
    """An object named as ``s3://bucket/key``, a path-style ``https://host/bucket/key``, or a
    virtual-hosted ``https://bucket.s3.region.amazonaws.com/key``; https forms may carry
    ``?versionId=``. Raises ValueError saying what is wrong.
    """
    version = None
    if uri.startswith("s3://"):
        # An s3:// key is literal: '?', '#' and '%' are part of it.
        bucket, _, key = uri[len("s3://") :].partition("/")
    else:
        parts = urlsplit(uri)
        if parts.scheme not in ("http", "https"):
            raise ValueError("use s3://bucket/key or an https URL of the object")
        path = parts.path.lstrip("/")
        hosted = _VIRTUAL_HOSTED.fullmatch(parts.hostname or "")
        bucket, key = (hosted["bucket"], path) if hosted else path.partition("/")[::2]
        key = unquote(key)
        query = parse_qs(parts.query, keep_blank_values=True)
        if set(query) - {"versionId"} or len(query.get("versionId", [])) > 1:
            raise ValueError("only one ?versionId= may follow the object's key")
        version = query["versionId"][0] if query else None
        if query and not version:
            raise ValueError("versionId is empty")
    if not VALID_BUCKET.match(bucket):
        raise ValueError(f"'{bucket}' is not a valid bucket name")
    if not key:
        raise ValueError("it names no object key")
    return S3Object(bucket, key, version)


def output_key(job_name: str, requested: str | None) -> str:
    """The transcript's key for ``OutputKey``, as AWS documents it.

    A key ending in ``.json`` is the file itself; any other (``my-transcript``,
    ``test-files/my-transcript``, ``folder/``) is a folder that gets ``<job>.json``. S3 has
    no folders to create: the key alone makes them. Raises ValueError for a key that could
    not be written as given.
    """
    if not requested:
        key = f"medical/{job_name}.json"
    elif requested.endswith(".json"):
        key = requested
    else:
        key = f"{requested.removesuffix('/')}/{job_name}.json"
    if any(segment in (".", "..") for segment in key.split("/")):
        raise ValueError("OutputKey must not contain '.' or '..' path segments")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise ValueError(
            f"the transcript's key ({key[:40]}...) would be longer than {MAX_KEY_BYTES} bytes"
        )
    return key


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
