"""Jobs outlive the engine: a restart keeps them, a killed worker's job completes once."""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest
from test_jobs import start, transcript_of, upload, wait

from devstack import local_stack
from medscribe.store import JobStore

LONG_NOTE = " ".join(
    [
        "The patient is a sixty year old woman seen for chronic obstructive pulmonary disease.",
        "She reports more shortness of breath on exertion over the last two weeks.",
        "Lungs show scattered wheezing. Oxygen saturation is ninety four percent on room air.",
        "Continue tiotropium once daily and albuterol as needed.",
        "Start prednisone forty milligrams daily for five days.",
    ]
)


@pytest.fixture
def engine(stack, tmp_path):
    """A second engine of its own (own job store, long lease), sharing the stack's S3."""
    port = local_stack.free_port()
    env = {**stack.env, "AWS_ENDPOINT_URL_TRANSCRIBE": f"http://127.0.0.1:{port}"}
    extra = {"MEDSCRIBE_DATABASE_URL": f"sqlite:///{tmp_path / 'jobs.db'}"}
    processes = []

    def launch(lease: str = "60"):
        process = local_stack.start_engine(
            tmp_path, port, env, workers=1, extra_env={**extra, "MEDSCRIBE_LEASE_SECONDS": lease}
        )
        processes.append(process)
        return process

    yield launch, port, tmp_path / "jobs.db"
    for process in processes:
        local_stack.stop(process.pid)


def client_for(stack, port: int):
    return stack.client("transcribe", endpoint_url=f"http://127.0.0.1:{port}")


def test_restart_keeps_jobs(stack, engine, dictation):
    launch, port, _ = engine
    first = launch()
    transcribe = client_for(stack, port)
    uri = upload(stack, dictation("Follow up in two weeks."), "restart/note.wav")
    start(transcribe, "before-restart", uri)
    assert wait(transcribe, "before-restart")["TranscriptionJobStatus"] == "COMPLETED"
    start(transcribe, "queued-at-stop", "s3://inbox/restart/missing.wav")
    local_stack.stop(first.pid)
    launch()
    kept = wait(transcribe, "before-restart")
    assert kept["TranscriptionJobStatus"] == "COMPLETED"
    assert wait(transcribe, "queued-at-stop")["TranscriptionJobStatus"] == "FAILED"


def test_killed_worker_job_is_taken_over_and_completes_once(stack, engine, dictation):
    launch, port, database = engine
    server = launch(lease="4")
    transcribe = client_for(stack, port)
    uri = upload(stack, dictation(LONG_NOTE), "crash/long.wav")
    start(transcribe, "crash-me", uri)
    deadline = time.monotonic() + 60
    while (
        transcribe.get_medical_transcription_job(MedicalTranscriptionJobName="crash-me")[
            "MedicalTranscriptionJob"
        ]["TranscriptionJobStatus"]
        != "IN_PROGRESS"
    ):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    (worker,) = [
        child
        for child in psutil.Process(server.pid).children()
        if "spawn_main" in " ".join(child.cmdline())
    ]
    os.kill(worker.pid, signal.SIGKILL)
    job = wait(transcribe, "crash-me", timeout=180)
    assert job["TranscriptionJobStatus"] == "COMPLETED", job.get("FailureReason")
    assert "pulmonary" in transcript_of(stack, job)["results"]["transcripts"][0]["transcript"]
    record = JobStore(f"sqlite:///{database}").get_job("crash-me")
    assert record is not None and record.attempts == 2
