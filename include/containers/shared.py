"""The stack's settings and the helpers every part of it shares.

The containers of ``docker-compose.yaml``, the developer's stack and the cluster harness
run the same S3 server, engine and Airflow, so what they must agree on (ports, keys, how
clients and Airflow find the stack, how SeaweedFS is started, when a service is up) is
written once, here. This module ships in the image: it imports nothing of the developer's
tooling, and nothing beyond the standard library.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from botocore.client import BaseClient

REGION = "us-east-1"
#: The services' ports, in containers and in the developer's stack alike (clear of
#: SeaweedFS's own defaults, which take Airflow's 8080).
S3_PORT = 8333
ENGINE_PORT = 8701
AIRFLOW_PORT = 8080


@dataclass(frozen=True)
class Credentials:
    """The one key pair of a stack: its S3 server and its engine accept it."""

    access_key: str
    secret_key: str

    @classmethod
    def load_or_create(cls, path: Path) -> Credentials:
        """The pair kept in ``path`` (owner-only), made on first use: never a fixed key."""
        if path.exists():
            return cls(**json.loads(path.read_text()))
        created = cls("AKID" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(created.__dict__))
        path.chmod(0o600)
        return created


def aws_env(
    s3_url: str, engine_url: str, creds: Credentials, region: str = REGION
) -> dict[str, str]:
    """What any AWS client (boto3, the AWS CLI, Airflow) needs to use the stack instead of AWS."""
    return {
        "AWS_ENDPOINT_URL_S3": s3_url,
        "AWS_ENDPOINT_URL_TRANSCRIBE": engine_url,
        "AWS_ACCESS_KEY_ID": creds.access_key,
        "AWS_SECRET_ACCESS_KEY": creds.secret_key,
        "AWS_DEFAULT_REGION": region,
    }


def airflow_connection(env: Mapping[str, str]) -> str:
    """The Airflow AWS connection (JSON) that sends the DAG to the stack :func:`aws_env` names."""
    return json.dumps(
        {
            "conn_type": "aws",
            "login": env["AWS_ACCESS_KEY_ID"],
            "password": env["AWS_SECRET_ACCESS_KEY"],
            "extra": {
                "region_name": env["AWS_DEFAULT_REGION"],
                "service_config": {
                    "s3": {"endpoint_url": env["AWS_ENDPOINT_URL_S3"]},
                    "transcribe": {"endpoint_url": env["AWS_ENDPOINT_URL_TRANSCRIBE"]},
                },
                "config_kwargs": {"s3": {"addressing_style": "path"}},
            },
        }
    )


def pool_command(name: str, slots: str) -> list[str]:
    """``airflow pools set`` for the pool that bounds jobs in flight.

    Deferred tasks hold their slot: a job waiting for its transcript is still in flight.
    A start holds two slots, so a smaller pool would never start a job.
    """
    if int(slots) < 2:
        raise ValueError(f"pool {name} needs at least 2 slots, not {slots}: a start holds two")
    return ["pools", "set", name, slots, "Transcribe Medical jobs in flight", "--include-deferred"]


def write_s3_identities(path: Path, creds: Credentials) -> None:
    """SeaweedFS reads S3 identities only from a file: one identity, owner-only."""
    identities = {
        "identities": [
            {
                "name": "stack",
                "credentials": [{"accessKey": creds.access_key, "secretKey": creds.secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # a file left by an earlier run keeps its mode otherwise
    with os.fdopen(descriptor, "w") as file:
        json.dump(identities, file)


def weed_server(
    data: Path, s3_port: int, identities: Path, *, bind: str, options: Sequence[str] = ()
) -> list[str]:
    """``weed server`` with its S3 gateway on ``s3_port``, keys from ``identities``.

    Master, volume and filer talk over 127.0.0.1; ``bind`` is where clients reach the
    gateway. The Iceberg and Lance catalogs, which the stack does not use, are off.
    """
    # The venv's own binary first: the developer's stack runs without activating it.
    weed = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if weed is None:
        raise RuntimeError("the SeaweedFS binary 'weed' is missing: install requirements.txt")
    return [
        weed, "server", f"-dir={data}", "-ip=127.0.0.1", f"-ip.bind={bind}",
        "-s3", f"-s3.port={s3_port}", f"-s3.config={identities}", "-s3.port.iceberg=0", "-s3.port.lance=0",
        *options,
    ]  # fmt: skip


def http_ok(url: str, timeout: float = 5) -> bool:
    """A health probe: the URL answers 200 (an unreachable one raises ``OSError``)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status == 200


def create_buckets(s3: BaseClient, names: Iterable[str]) -> list[str]:
    """Create those of ``names`` that do not exist yet; returns the ones created."""
    existing = {bucket["Name"] for bucket in s3.list_buckets()["Buckets"]}
    created = [name for name in names if name not in existing]
    for name in created:
        s3.create_bucket(Bucket=name)
    return created
