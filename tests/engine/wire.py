"""The engine's API in-process (no worker): signed requests through Starlette's test client."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from starlette.testclient import TestClient

from medscribe.api import create_app
from medscribe.backend import TranscribeBackend
from medscribe.config import EngineConfig
from medscribe.store import ACTIVE, JobStore, jobs

KEY_ID, SECRET = "AKIDWIRETEST", "wire-test-secret"
URL = "http://testserver/"


def active_jobs(store: JobStore) -> int:
    """Jobs queued or in progress: what the store's admission limit counts."""
    query = sa.select(sa.func.count()).select_from(jobs).where(jobs.c.status.in_(ACTIVE))
    with store.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def engine_api(database: str, **settings: Any) -> TestClient:
    config = EngineConfig(database_url=database, access_keys={KEY_ID: SECRET}, **settings)
    return TestClient(create_app(TranscribeBackend(JobStore(database), config)))


def signed_headers(
    operation: str, body: bytes, *, secret: str = SECRET, sign_target: bool = True
) -> dict[str, str]:
    """Headers of a request signed the way botocore signs it (optionally leaving the target out)."""
    target = {"X-Amz-Target": f"Transcribe.{operation}"}
    request = AWSRequest(
        method="POST",
        url=URL,
        data=body,
        headers={"Content-Type": "application/x-amz-json-1.1", **(target if sign_target else {})},
    )
    SigV4Auth(Credentials(KEY_ID, secret), "transcribe", "us-east-1").add_auth(request)
    return {**dict(request.headers.items()), **target}


def call(api: TestClient, operation: str, params: Any = None, *, raw: bytes | None = None):
    """POST one signed operation; ``raw`` sends a body that is not ``params`` as JSON."""
    body = raw if raw is not None else json.dumps(params or {}).encode()
    return api.post(URL, content=body, headers=signed_headers(operation, body))
