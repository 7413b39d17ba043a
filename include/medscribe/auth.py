"""AWS Signature Version 4 verification, by recomputing the signature with botocore's signer."""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
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


#: What a signature must cover: the operation (X-Amz-Target) too, so a captured request
#: cannot be replayed as another operation.
REQUIRED_SIGNED = ("host", "x-amz-date", "x-amz-target")


@dataclass(frozen=True)
class Authorization:
    """A request's credentials, checked as far as its headers allow (the body comes later)."""

    access_key: str
    secret: str
    region: str
    stamp: str
    signed_headers: tuple[str, ...]
    signature: str


def authorize(
    *,
    headers: Mapping[str, str],
    secrets: Mapping[str, str],
    region: str,
    now: datetime | None = None,
) -> Authorization:
    """Check everything but the signature itself, so no stranger's body is ever read.

    ``headers`` must be lower-cased.
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
    signed = tuple(parsed["headers"].split(";"))
    if any(name not in signed for name in REQUIRED_SIGNED) or any(
        name not in headers for name in signed
    ):
        raise _refuse(
            "InvalidSignatureException",
            f"The signed headers must include {', '.join(REQUIRED_SIGNED)}, and each must "
            "be present.",
        )
    return Authorization(access_key, secret, region, stamp, signed, parsed["signature"])


def verify_signature(
    authorization: Authorization,
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
) -> str:
    """Return the caller's access key id if the signature matches the request as received.

    ``url`` is the URL as the client addressed it.
    """
    signed = authorization.signed_headers
    request = AWSRequest(
        method=method, url=url, headers={name: headers[name] for name in signed}, data=body
    )
    request.context["timestamp"] = authorization.stamp
    credentials = Credentials(authorization.access_key, authorization.secret)
    signer = SigV4Auth(credentials, SIGNING_NAME, authorization.region)
    expected = signer.signature(
        signer.string_to_sign(request, signer.canonical_request(request)), request
    )
    if not hmac.compare_digest(expected, authorization.signature):
        raise _refuse(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method.",
        )
    return authorization.access_key
