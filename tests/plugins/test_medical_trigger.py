"""
Run the trigger against moto (and a stubbed FAILED job).

moto answers botocore's HTTP layer, not aiobotocore's, so the async client is replaced by the
sync client whose waiters are wrapped to be awaited. The trigger's wait before its first
check is recorded instead of slept. Everything else (botocore's own waiter for the job, the
provider's async_wait loop, the trigger's events) is real.
"""

from __future__ import annotations

import asyncio
import contextlib
from unittest import mock

import pytest
from botocore.stub import Stubber

from medical_transcribe import triggers
from medical_transcribe.hooks import TranscribeMedicalHook
from medical_transcribe.triggers import MedicalTranscriptionJobCompletedTrigger


class _AwaitableWaiter:
    def __init__(self, waiter) -> None:
        self._waiter = waiter

    async def wait(self, **kwargs) -> None:
        self._waiter.wait(**kwargs)


class _AsyncClient:
    """What the trigger uses of an aiobotocore client: its waiters, to be awaited."""

    def __init__(self, client) -> None:
        self._client = client

    def get_waiter(self, name: str) -> _AwaitableWaiter:
        return _AwaitableWaiter(self._client.get_waiter(name))


@pytest.fixture
def client(aws):
    """The sync client the trigger's hook will use in place of an aiobotocore one."""
    client = TranscribeMedicalHook().conn

    async def get_async_conn(self):
        return contextlib.nullcontext(_AsyncClient(client))

    with mock.patch.object(TranscribeMedicalHook, "get_async_conn", get_async_conn):
        yield client


@pytest.fixture(autouse=True)
def timeline(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, object]]:
    """The trigger's own waits, in order with whatever a test adds (its seconds not slept)."""
    happened: list[tuple[str, object]] = []

    async def sleep(seconds: float) -> None:
        happened.append(("wait", seconds))

    monkeypatch.setattr(triggers, "sleep", sleep)
    return happened


def first_event(trigger: MedicalTranscriptionJobCompletedTrigger) -> dict:
    async def run() -> dict:
        return (await anext(trigger.run())).payload

    return asyncio.run(run())


def test_serializes_for_the_triggerer():
    trigger = MedicalTranscriptionJobCompletedTrigger(
        job_name="visit-1",
        waiter_delay=5,
        waiter_max_attempts=9,
        region_name="us-east-1",
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "medical_transcribe.triggers.MedicalTranscriptionJobCompletedTrigger"
    assert MedicalTranscriptionJobCompletedTrigger(**kwargs).serialize() == (
        classpath,
        kwargs,
    )
    assert kwargs["job_name"] == "visit-1"


def test_success_event_carries_the_job_name(client, media, start_request):
    TranscribeMedicalHook().start_job(**start_request("visit-1"))
    trigger = MedicalTranscriptionJobCompletedTrigger(
        job_name="visit-1", waiter_delay=0, waiter_max_attempts=5
    )
    assert first_event(trigger) == {"status": "success", "job_name": "visit-1"}
    assert (
        client.get_medical_transcription_job(MedicalTranscriptionJobName="visit-1")[
            "MedicalTranscriptionJob"
        ]["TranscriptionJobStatus"]
        == "COMPLETED"
    )


def test_failure_event_carries_the_failure_reason(client):
    reason = "Invalid file size: file size too large"
    trigger = MedicalTranscriptionJobCompletedTrigger(
        job_name="visit-1", waiter_delay=0, waiter_max_attempts=5
    )
    with Stubber(client) as stubber:
        stubber.add_response(
            "get_medical_transcription_job",
            {
                "MedicalTranscriptionJob": {
                    "MedicalTranscriptionJobName": "visit-1",
                    "TranscriptionJobStatus": "FAILED",
                    "FailureReason": reason,
                }
            },
        )
        event = first_event(trigger)
    assert event["status"] == "error"
    assert event["job_name"] == "visit-1"
    assert reason in event["message"]


def test_unknown_job_is_an_error_not_an_endless_wait(client):
    trigger = MedicalTranscriptionJobCompletedTrigger(
        job_name="nope", waiter_delay=0, waiter_max_attempts=5
    )
    event = first_event(trigger)
    assert event["status"] == "error"
    assert "BadRequestException" in event["message"]


@pytest.mark.parametrize("waiter_delay", [0, 1, 60])
def test_first_check_waits_until_the_deferral_has_settled(
    client, media, start_request, timeline, waiter_delay
):
    """The sensor checked just before deferring. An immediate check that found the job done
    would resume the task before the scheduler read its deferral's end (apache/airflow#72716),
    so the first check waits a poll interval, and at least the settling time."""
    TranscribeMedicalHook().start_job(**start_request("visit-1"))
    for _ in range(5):  # moto moves the job on a step per read: done before the trigger runs
        job = client.get_medical_transcription_job(MedicalTranscriptionJobName="visit-1")
        if job["MedicalTranscriptionJob"]["TranscriptionJobStatus"] == "COMPLETED":
            break
    client.meta.events.register(
        "before-call.transcribe.GetMedicalTranscriptionJob",
        lambda **_: timeline.append(("check", "visit-1")),
    )
    trigger = MedicalTranscriptionJobCompletedTrigger(
        job_name="visit-1", waiter_delay=waiter_delay, waiter_max_attempts=5
    )
    assert first_event(trigger)["status"] == "success"
    settle = triggers.defer_settle_seconds()
    assert settle > 5  # beyond the supervisor's 5 s (min_heartbeat_interval) to see the exit
    assert timeline[:2] == [("wait", max(waiter_delay, settle)), ("check", "visit-1")]


def test_waits_for_the_job_its_name_renders_to(client, media, start_request):
    """Started from the triggerer, the trigger is built with the template and rendered in
    place before it runs: it waits for, and names, the rendered job."""
    TranscribeMedicalHook().start_job(**start_request("visit-1"))
    trigger = MedicalTranscriptionJobCompletedTrigger(
        job_name="{{ ti.xcom_pull(task_ids='transcribe.start') }}",
        waiter_delay=0,
        waiter_max_attempts=5,
    )
    trigger.job_name = "visit-1"  # what render_template_fields does to it
    assert first_event(trigger) == {"status": "success", "job_name": "visit-1"}
