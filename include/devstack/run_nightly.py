"""``make run``: the nightly DAG once, in-process, on the embedded local stack.

Starts the stack if it is not running (and stops it again afterwards), loads the sample
dictations into the inbox, runs the DAG with ``dag.test()`` on Airflow with SQLite, and
prints what happened and where the tables are.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import time

import boto3
import pandas as pd
from botocore.config import Config

from containers.shared import create_buckets
from devstack import local_stack

ROOT = local_stack.ROOT
sys.path[:0] = [str(ROOT / "dags"), str(ROOT / "plugins")]

from medical_transcribe.naming import slugify  # noqa: E402  (plugins/ is on the path now)

SAMPLES = ROOT / "include" / "samples"
INPUT_BUCKET, INPUT_PREFIX, OUTPUT_BUCKET = "dictations", "inbox/", "transcripts"


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def load_samples(s3) -> int:
    create_buckets(s3, [INPUT_BUCKET, OUTPUT_BUCKET])
    samples = sorted(SAMPLES.glob("*.mp3"))
    for path in samples:
        s3.upload_file(str(path), INPUT_BUCKET, INPUT_PREFIX + path.name)
    return len(samples)


def run_dag() -> dict:
    from nightly_medical_transcription import nightly_medical_transcription

    dag = nightly_medical_transcription()
    run = dag.test()
    return {"state": str(run.state), "run_id": run.run_id}


def read_table(s3, key: str) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(s3.get_object(Bucket=OUTPUT_BUCKET, Key=key)["Body"].read()))


def summarize(s3, run_id: str) -> None:
    prefix = "tables/transcription_jobs/"
    keys = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=OUTPUT_BUCKET, Prefix=prefix).get("Contents", [])
    ]
    # The tables of a run are named by the same slug the DAG's upload gives them.
    newest = [k for k in keys if slugify(run_id) in k] or keys
    if not newest:
        say("no tables were written")
        return
    jobs_key = newest[-1]
    items_key = jobs_key.replace("transcription_jobs", "transcript_items")
    jobs, items = read_table(s3, jobs_key), read_table(s3, items_key)
    if jobs.empty:
        say(
            "no new audio: every file in the inbox already has a transcript, so this run was a no-op"
        )
        say("(make down && rm -rf .local starts from scratch)")
        return
    done = jobs[jobs.status == "COMPLETED"]
    say(f"files transcribed this run: {len(done)}, failed: {int((jobs.status == 'FAILED').sum())}")
    columns = ["job_name", "status", "media_duration", "words", "mean_confidence"]
    print(jobs[columns].to_string(index=False))
    say(f"tables: s3://{OUTPUT_BUCKET}/{jobs_key} ({len(jobs)} rows)")
    say(f"        s3://{OUTPUT_BUCKET}/{items_key} ({len(items)} rows)")
    report_key = jobs_key.replace("transcription_jobs", "run_reports").replace(".parquet", ".html")
    say(f"run report: s3://{OUTPUT_BUCKET}/{report_key}")
    if len(done):
        first = done.iloc[0]
        words = items[items.job_name == first.job_name]
        text = " ".join(words.content.head(40)).replace(" .", ".").replace(" ,", ",")
        say(f"first words of {first.media_uri}:\n    {text} ...")


def main() -> None:
    stack = local_stack.LocalStack()
    was_running = bool(stack.running())
    say("starting the local stack (SeaweedFS S3 + transcription engine)" if not was_running
        else "using the running local stack")  # fmt: skip
    env = stack.up()
    os.environ.update(local_stack.airflow_env(env), MEDICAL_TRANSCRIBE_POLL_SECONDS="3")
    s3 = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL_S3"],
        config=Config(s3={"addressing_style": "path"}),
    )
    try:
        count = load_samples(s3)
        say(f"loaded {count} sample dictations into s3://{INPUT_BUCKET}/{INPUT_PREFIX}")
        say("preparing Airflow (SQLite under .local/airflow)")
        subprocess.run(["airflow", "db", "migrate"], check=True, capture_output=True)
        say("running the nightly DAG once (dag.test); job progress follows")
        logging.getLogger("airflow").setLevel(logging.WARNING)
        started = time.monotonic()
        result = run_dag()
        say(
            f"DAG run {result['run_id']} finished {result['state']} in {time.monotonic() - started:.0f}s"
        )
        summarize(s3, result["run_id"])
        say("read the tables with pandas: see README.md, 'Reading the tables'")
        print(json.dumps({"clients": f". {stack.env_file.relative_to(ROOT)}"}))
    finally:
        if not was_running:
            stack.down()
            say("local stack stopped (make up keeps it running)")


if __name__ == "__main__":
    main()
