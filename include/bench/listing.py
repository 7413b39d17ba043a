"""How long finding a night's pending audio takes, and how many API calls it makes.

``python include/bench/listing.py --objects 20000`` starts a throwaway S3 server and engine
on free ports, fills an inbox with that many small audio objects (most already transcribed,
as after earlier nights), then times ``listing.list_pending`` and counts its calls per
operation. Run it against two versions of ``plugins/`` (PYTHONPATH) to compare them.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import botocore.client

from containers import shared
from devstack import local_stack

BUCKET, OUTPUT = "listing", "listing-out"


def count_calls() -> collections.Counter[str]:
    """Count every AWS API call made in this process, by operation name."""
    calls: collections.Counter[str] = collections.Counter()
    original = botocore.client.BaseClient._make_api_call

    def counted(self: Any, operation: str, params: dict[str, Any]) -> Any:
        calls[operation] += 1
        return original(self, operation, params)

    botocore.client.BaseClient._make_api_call = counted  # type: ignore[method-assign]
    return calls


def seed(s3: Any, objects: int, transcribed: float) -> None:
    """``objects`` audio keys; the first ``transcribed`` share get a transcript too."""
    from medical_transcribe.listing import transcript_key
    from medical_transcribe.naming import job_name_for

    def put(index: int) -> None:
        key = f"inbox/{index // 1000:03d}/dictation-{index:06d}.wav"
        etag = s3.put_object(Bucket=BUCKET, Key=key, Body=f"audio {index}".encode())["ETag"]
        if index < objects * transcribed:
            name = job_name_for(BUCKET, key, etag, type="DICTATION", specialty="PRIMARYCARE")
            s3.put_object(Bucket=OUTPUT, Key=transcript_key(name), Body=b"{}")

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(objects)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objects", type=int, default=20000)
    parser.add_argument("--transcribed", type=float, default=0.8)
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="listing-bench-"))
    creds = shared.Credentials.load_or_create(state / "credentials.json")
    s3_port, engine_port = local_stack.free_port(), local_stack.free_port()
    env = local_stack.loopback_env(s3_port, engine_port, creds)
    os.environ.update(local_stack.airflow_env(env, state))
    processes = [
        local_stack.start_s3(state, s3_port, creds),
        local_stack.start_engine(state, engine_port, env, workers=0),
    ]
    try:
        import boto3

        s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL_S3"])
        for bucket in (BUCKET, OUTPUT):
            s3.create_bucket(Bucket=bucket)
        seeded = time.monotonic()
        seed(s3, args.objects, args.transcribed)
        print(f"seeded {args.objects} objects in {time.monotonic() - seeded:.0f}s", file=sys.stderr)
        from medical_transcribe.listing import list_pending

        calls = count_calls()
        started = time.monotonic()
        pending, _ = list_pending(
            aws_conn_id="aws_default", input_bucket=BUCKET, input_prefix="inbox/",
            output_bucket=OUTPUT, job_type="DICTATION", specialty="PRIMARYCARE", settings={},
            max_files=args.objects,
        )  # fmt: skip
        seconds = time.monotonic() - started
        print(
            json.dumps(
                {
                    "objects": args.objects,
                    "pending": len(pending),
                    "seconds": round(seconds, 2),
                    "calls": sum(calls.values()),
                    "calls_by_operation": dict(calls),
                }
            )
        )
    finally:
        for process in processes:
            local_stack.stop(process.pid)


if __name__ == "__main__":
    main()
