"""One-shot setup of Airflow in docker compose; safe to run again on every ``up``.

Migrates the metadata database, creates the AWS connection that sends the DAG to the
stack's S3 server and engine unless that connection exists already (so one pointed at AWS
is kept), sets the pool that bounds jobs in flight, and creates the buckets the DAG reads
and writes by default.
"""

from __future__ import annotations

import os
import subprocess

import boto3
from botocore.config import Config

from containers.shared import airflow_connection, create_buckets, pool_command


def airflow(*args: str, check: bool = True) -> int:
    return subprocess.run(["airflow", *args], check=check).returncode


def ensure_connection(conn_id: str, conn_json: str) -> bool:
    """Add the connection only when it does not exist; True when it was added."""
    if airflow("connections", "get", conn_id, check=False) == 0:
        print(f"connection {conn_id} exists; left as it is")
        return False
    airflow("connections", "add", conn_id, "--conn-json", conn_json)
    return True


def main() -> None:
    airflow("db", "migrate")
    ensure_connection(os.environ["MEDICAL_TRANSCRIBE_CONN_ID"], airflow_connection(os.environ))
    airflow(
        *pool_command(
            os.environ["MEDICAL_TRANSCRIBE_POOL"], os.environ["MEDICAL_TRANSCRIBE_POOL_SLOTS"]
        )
    )
    # Endpoint, keys and region come from the standard AWS_* variables of this container.
    s3 = boto3.client("s3", config=Config(s3={"addressing_style": "path"}))
    names = [name for name in os.environ["STACK_BUCKETS"].split(",") if name]
    for name in create_buckets(s3, names):
        print(f"created bucket {name}")


if __name__ == "__main__":
    main()
