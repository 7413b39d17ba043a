"""AWS Signature Version 4 verification, by recomputing the signature with botocore's signer."""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from .protocol import ServiceError

SIGNING_NAME = "transcribe"
MAX_CLOCK_SKEW = timedelta(minutes=15)
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<key>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request,\s*SignedHeaders=(?P<headers>[^,\s]+),\s*"
    r"Signature=(?P<signature>[0-9a-f]{64})\s*$"
)


def _refuse(code: str, message: str) -> ServiceError:
    return ServiceError(code, message, status=403)


def verify_signature(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    secrets: Mapping[str, str],
    region: str,
    now: datetime | None = None,
) -> str:
    """Return the caller's access key id if the request is signed by a known key pair.

    ``headers`` must be lower-cased; ``url`` is the URL as the client addressed it.
    """
    authorization = headers.get("authorization")
    if not authorization:
        raise _refuse("MissingAuthenticationTokenException", "Missing Authentication Token")
    parsed = _AUTHORIZATION.match(authorization)
    if parsed is None:
        raise _refuse(
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' "
            "in AWS4-HMAC-SHA256 form.",
        )
    access_key = parsed["key"]
    secret = secrets.get(access_key)
    if secret is None:
        raise _refuse(
            "UnrecognizedClientException", "The security token included in the request is invalid."
        )
    if parsed["service"] != SIGNING_NAME or parsed["region"] != region:
        raise _refuse(
            "InvalidSignatureException",
            f"Credential should be scoped to a valid region ('{region}') "
            f"and service ('{SIGNING_NAME}').",
        )
    stamp = headers.get("x-amz-date", "")
    try:
        signed_at = datetime.strptime(stamp, SIGV4_TIMESTAMP).replace(tzinfo=UTC)
    except ValueError:
        raise _refuse(
            "IncompleteSignatureException", "X-Amz-Date header is missing or malformed."
        ) from None
    now = now or datetime.now(UTC)
    if abs(now - signed_at) > MAX_CLOCK_SKEW or stamp[:8] != parsed["date"]:
        raise _refuse(
            "InvalidSignatureException",
            f"Signature expired: {stamp} is now earlier than "
            f"{(now - MAX_CLOCK_SKEW).strftime(SIGV4_TIMESTAMP)} "
            f"({now.strftime(SIGV4_TIMESTAMP)} - 15 min.)",
        )
    signed = parsed["headers"].split(";")
    if "host" not in signed or any(name not in headers for name in signed):
        raise _refuse("InvalidSignatureException", "Signed headers must include host and exist.")
    request = AWSRequest(
        method=method, url=url, headers={name: headers[name] for name in signed}, data=body
    )
    request.context["timestamp"] = stamp
    signer = SigV4Auth(Credentials(access_key, secret), SIGNING_NAME, region)
    expected = signer.signature(
        signer.string_to_sign(request, signer.canonical_request(request)), request
    )
    if not hmac.compare_digest(expected, parsed["signature"]):
        raise _refuse(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method.",
        )
    return access_key
