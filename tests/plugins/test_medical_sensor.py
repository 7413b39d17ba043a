from __future__ import annotations

from unittest import mock

import pytest
from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    TaskDeferred,
)

from medical_transcribe.hooks import TranscribeMedicalHook
from medical_transcribe.sensors import MedicalTranscriptionJobSensor
from medical_transcribe.triggers import MedicalTranscriptionJobCompletedTrigger


@pytest.fixture
def job(media, start_request) -> str:
    TranscribeMedicalHook().start_job(**start_request("visit-1"))
    return "visit-1"


def sensor(**kwargs) -> MedicalTranscriptionJobSensor:
    return MedicalTranscriptionJobSensor(task_id="wait", job_name="visit-1", **kwargs)


def test_poke_follows_queued_in_progress_completed(job):
    """moto advances the job one state per GetMedicalTranscriptionJob."""
    probe = sensor()
    assert [probe.poke({}), probe.poke({}), probe.poke({})] == [False, False, True]
    assert probe.hook.get_job(job)["TranscriptionJobStatus"] == "COMPLETED"


def test_poke_fails_with_the_failure_reason():
    failed = {
        "TranscriptionJobStatus": "FAILED",
        "FailureReason": "Invalid sample rate for audio file",
    }
    with (
        mock.patch.object(TranscribeMedicalHook, "get_job", return_value=failed),
        pytest.raises(AirflowException, match="visit-1 failed: Invalid sample rate"),
    ):
        sensor().poke({})


def test_deferrable_by_default_and_defers_while_running(job):
    probe = sensor(poke_interval=5, max_retries=9)
    assert probe.deferrable is True
    with pytest.raises(TaskDeferred) as deferred:
        probe.execute({})
    assert isinstance(deferred.value.trigger, MedicalTranscriptionJobCompletedTrigger)
    assert deferred.value.method_name == "execute_complete"
    _, kwargs = deferred.value.trigger.serialize()
    assert (
        kwargs["job_name"],
        kwargs["waiter_delay"],
        kwargs["waiter_max_attempts"],
    ) == (job, 5, 9)


def test_started_from_the_triggerer_with_the_trigger_it_would_defer_to(job):
    """No worker runs before the job ended: the scheduler defers to the same trigger."""
    probe = sensor(poke_interval=5, max_retries=9, start_from_trigger=True)
    args = probe.start_trigger_args
    assert probe.start_from_trigger is True and args is not None
    with pytest.raises(TaskDeferred) as deferred:
        probe.execute({})
    started = MedicalTranscriptionJobCompletedTrigger(**args.trigger_kwargs).serialize()
    assert started == deferred.value.trigger.serialize() == (args.trigger_cls, started[1])
    assert args.next_method == deferred.value.method_name
    assert sensor(deferrable=False, start_from_trigger=True).start_from_trigger is False


def test_does_not_defer_for_a_finished_job():
    done = {"TranscriptionJobStatus": "COMPLETED"}
    with mock.patch.object(TranscribeMedicalHook, "get_job", return_value=done) as get_job:
        sensor().execute({})
    get_job.assert_called_once_with("visit-1")


def test_pokes_in_a_worker_when_not_deferrable(job):
    probe = sensor(deferrable=False, poke_interval=0)
    probe.execute({})
    assert probe.hook.get_job(job)["TranscriptionJobStatus"] == "COMPLETED"


def test_execute_complete_passes_success_and_fails_with_the_reason_without_retries():
    sensor().execute_complete({}, {"status": "success", "job_name": "visit-1"})
    event = {
        "status": "error",
        "job_name": "visit-1",
        "message": "Medical transcription job visit-1 failed: FAILED - Unsupported media format",
    }
    failed = {"TranscriptionJobStatus": "FAILED", "FailureReason": "Unsupported media format"}
    with (
        mock.patch.object(TranscribeMedicalHook, "get_job", return_value=failed),
        pytest.raises(AirflowFailException, match="Unsupported media format"),
    ):
        sensor().execute_complete({}, event)


def test_execute_complete_lets_a_waiter_timeout_be_retried():
    event = {"status": "error", "job_name": "visit-1", "message": "max attempts reached"}
    running = {"TranscriptionJobStatus": "IN_PROGRESS"}
    with (
        mock.patch.object(TranscribeMedicalHook, "get_job", return_value=running),
        pytest.raises(AirflowException, match="max attempts") as raised,
    ):
        sensor().execute_complete({}, event)
    assert not isinstance(raised.value, AirflowFailException)


def test_a_retried_or_cleared_sensor_only_reads_its_job(job):
    calls: list[str] = []
    for _ in range(2):  # the first try, then a retry or a clear: a new task instance each time
        probe = sensor()
        probe.hook.conn.meta.events.register(
            "before-call.transcribe", lambda model, **_: calls.append(model.name)
        )
        with pytest.raises(TaskDeferred):
            probe.execute({})
        probe.execute_complete({}, {"status": "success", "job_name": job})
    assert set(calls) == {"GetMedicalTranscriptionJob"}
    jobs = probe.hook.conn.list_medical_transcription_jobs()["MedicalTranscriptionJobSummaries"]
    assert [j["MedicalTranscriptionJobName"] for j in jobs] == [job]
