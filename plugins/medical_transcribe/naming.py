"""Deterministic job names, so a rerun finds the job it already started instead of paying twice."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

# AWS TranscriptionJobName: pattern ^[0-9a-zA-Z._-]+, length 1..200.
MAX_JOB_NAME_LENGTH = 200
_HASH_LENGTH = 16
_DISALLOWED = re.compile(r"[^0-9A-Za-z._-]+")


def slugify(text: str) -> str:
    """Collapse every run of characters AWS names and S3 keys dislike into one ``-``."""
    return _DISALLOWED.sub("-", text).strip("-.")


def job_name_for(
    bucket: str,
    key: str,
    etag: str,
    settings: Mapping[str, Any] | None,
    *,
    phi_safe: bool = False,
) -> str:
    """
    Name the job for one version of one media object under one set of settings.

    The readable part is the tail of the key (the file name matters most); the hash covers
    everything that makes the transcript different, so a re-uploaded file (new ETag) or new
    settings get a new job while a rerun gets the same one. ETags are compared without the
    quotes S3 wraps them in, so names agree whether the ETag came from HEAD or LIST.

    ``phi_safe`` leaves the key out: keys can carry patient identifiers, and job names reach
    logs and the service's job list, so the name is then ``media-<hash>`` alone.
    """
    identity = {
        "bucket": bucket,
        "key": key,
        "etag": etag.strip('"'),
        "settings": dict(settings or {}),
    }
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:_HASH_LENGTH]
    room = MAX_JOB_NAME_LENGTH - _HASH_LENGTH - 1
    readable = "" if phi_safe else slugify(key)[-room:].lstrip("-.")
    readable = readable or "media"
    return f"{readable}-{digest}"


def key_label(bucket: str, key: str, phi_safe: bool) -> str:
    """How a log line names an object: its URI, or with ``phi_safe`` a hash of it."""
    uri = f"s3://{bucket}/{key}"
    return f"object-{hashlib.sha256(uri.encode()).hexdigest()[:_HASH_LENGTH]}" if phi_safe else uri
