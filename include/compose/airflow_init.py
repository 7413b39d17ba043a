"""One-shot setup of Airflow in docker compose; safe to run again on every ``up``.

Migrates the metadata database, (re)creates the AWS connection that sends the DAG to the
stack's S3 server and engine, sets the pool that bounds jobs in flight, and creates the
buckets the DAG reads and writes by default.
"""

from __future__ import annotations

import os
import subprocess

import boto3
from botocore.config import Config
from local_stack import airflow_connection


def airflow(*args: str, check: bool = True) -> None:
    subprocess.run(["airflow", *args], check=check)


def create_buckets(names: list[str]) -> None:
    # Endpoint, keys and region come from the standard AWS_* variables of this container.
    s3 = boto3.client("s3", config=Config(s3={"addressing_style": "path"}))
    existing = {bucket["Name"] for bucket in s3.list_buckets()["Buckets"]}
    for name in names:
        if name not in existing:
            s3.create_bucket(Bucket=name)
            print(f"created bucket {name}")


def main() -> None:
    airflow("db", "migrate")
    conn_id = os.environ["MEDICAL_TRANSCRIBE_CONN_ID"]
    # Replaced on every run, so keys rotated in .env reach Airflow on the next ``up``.
    airflow("connections", "delete", conn_id, check=False)
    airflow("connections", "add", conn_id, "--conn-json", airflow_connection(os.environ))
    airflow(
        "pools", "set", os.environ["MEDICAL_TRANSCRIBE_POOL"],
        os.environ["MEDICAL_TRANSCRIBE_POOL_SLOTS"], "Transcribe Medical jobs in flight",
    )  # fmt: skip
    create_buckets([name for name in os.environ["STACK_BUCKETS"].split(",") if name])


if __name__ == "__main__":
    main()
