"""A job's identity: one name per version of one file under one set of job options.

The listing and the start operator (also when used alone) name jobs with the same function,
so a rerun, a retried task or a file someone transcribed by hand all find the job already
started, and its transcript, instead of paying twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from typing import Any

# AWS TranscriptionJobName: pattern ^[0-9a-zA-Z._-]+, length 1..200.
MAX_JOB_NAME_LENGTH = 200
_HASH_LENGTH = 16
_DISALLOWED = re.compile(r"[^0-9A-Za-z._-]+")
#: Job names and log lines carry a hash instead of the S3 key (keys can hold patient
#: identifiers); ``MEDICAL_TRANSCRIBE_PHI_SAFE_NAMES=0`` gives readable names instead.
PHI_SAFE_NAMES = os.environ.get("MEDICAL_TRANSCRIBE_PHI_SAFE_NAMES", "1") != "0"


def slugify(text: str) -> str:
    """Collapse every run of characters AWS names and S3 keys dislike into one ``-``."""
    return _DISALLOWED.sub("-", text).strip("-.")


def job_name_for(
    bucket: str,
    key: str,
    etag: str,
    *,
    type: str,
    specialty: str,
    settings: Mapping[str, Any] | None = None,
    content_identification_type: str | None = None,
    phi_safe: bool = PHI_SAFE_NAMES,
) -> str:
    """
    Name the job for one version of one media object under one set of job options.

    The hash covers everything that makes the transcript different, so a re-uploaded file
    (new ETag) or new options get a new job while a rerun gets the same one. ETags are
    compared without the quotes S3 wraps them in, so names agree whether the ETag came from
    HEAD or LIST. The readable part is the tail of the key (the file name matters most);
    ``phi_safe`` leaves it out, as job names reach logs and the service's job list, and the
    name is then ``media-<hash>`` alone.
    """
    options = {"Type": type, "Specialty": specialty, **(settings or {})}
    if content_identification_type:
        options["ContentIdentificationType"] = content_identification_type
    # The options sit under "settings": the listing hashed them so before this function
    # served the operator too, and renaming the member would rename every job done so far.
    identity = {"bucket": bucket, "key": key, "etag": etag.strip('"'), "settings": options}
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:_HASH_LENGTH]
    room = MAX_JOB_NAME_LENGTH - _HASH_LENGTH - 1
    readable = "" if phi_safe else slugify(key)[-room:].lstrip("-.")
    return f"{readable or 'media'}-{digest}"


def key_label(bucket: str, key: str, phi_safe: bool) -> str:
    """How a log line names an object: its URI, or with ``phi_safe`` a hash of it."""
    uri = f"s3://{bucket}/{key}"
    return f"object-{hashlib.sha256(uri.encode()).hexdigest()[:_HASH_LENGTH]}" if phi_safe else uri
