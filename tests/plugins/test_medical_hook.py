from __future__ import annotations

import io
import time
from unittest import mock

import pytest
from airflow.providers.common.compat.sdk import AirflowException
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from medical_transcribe.hooks import (
    JOB_COMPLETE_WAITER,
    MedicalTranscriptionJobFailedError,
    TranscribeMedicalHook,
)


class _Raw(io.BytesIO):
    """The raw body botocore expects from an HTTP response."""

    def stream(self, **kwargs):
        yield self.getvalue()


def limit_exceeded() -> ClientError:
    return ClientError(
        {"Error": {"Code": "LimitExceededException", "Message": "Too many jobs"}},
        "StartMedicalTranscriptionJob",
    )


@pytest.fixture
def hook(aws) -> TranscribeMedicalHook:
    return TranscribeMedicalHook(quota_retry_max_delay=0)


def test_client_retries_in_standard_mode_by_default():
    assert TranscribeMedicalHook().config.retries == {
        "mode": "standard",
        "max_attempts": 10,
    }


def test_explicit_retry_settings_keep_standard_mode():
    hook = TranscribeMedicalHook(config={"retries": {"max_attempts": 3}, "connect_timeout": 5})
    assert hook.config.retries == {"mode": "standard", "max_attempts": 3}
    assert hook.config.connect_timeout == 5


def test_the_waiter_is_botocores_own(hook):
    waiter = hook.get_waiter(JOB_COMPLETE_WAITER)
    assert JOB_COMPLETE_WAITER in hook.conn.waiter_names
    assert waiter.config.operation == "GetMedicalTranscriptionJob"
    assert {(a.expected, a.state) for a in waiter.config.acceptors} == {
        ("COMPLETED", "success"),
        ("FAILED", "failure"),
    }


def test_start_job_starts_it(hook, media, start_request):
    job = hook.start_job(**start_request("visit-1"))
    assert job["MedicalTranscriptionJobName"] == "visit-1"
    assert hook.get_job("visit-1")["Media"]["MediaFileUri"] == media["uri"]


def test_duplicate_name_adopts_existing_job(hook, media, start_request):
    hook.start_job(**start_request("visit-1"))
    adopted = hook.start_job(**start_request("visit-1"))
    assert adopted["MedicalTranscriptionJobName"] == "visit-1"
    assert (
        "TranscriptionJobStatus" in adopted
    )  # a full description, from GetMedicalTranscriptionJob
    listed = hook.conn.list_medical_transcription_jobs()["MedicalTranscriptionJobSummaries"]
    assert [j["MedicalTranscriptionJobName"] for j in listed] == ["visit-1"]


def test_duplicate_name_for_other_media_is_refused(hook, media, start_request):
    hook.start_job(**start_request("visit-1"))
    with pytest.raises(AirflowException, match="taken by a job for"):
        hook.start_job(**start_request("visit-1", uri=f"s3://{media['bucket']}/other.wav"))


def test_limit_exceeded_is_retried_until_it_succeeds(hook, media, start_request):
    real_start = hook.conn.start_medical_transcription_job
    refusals = [limit_exceeded(), limit_exceeded()]

    def start_or_refuse(**request):
        if refusals:
            raise refusals.pop(0)
        return real_start(**request)

    with mock.patch.object(
        hook.conn, "start_medical_transcription_job", side_effect=start_or_refuse
    ) as start:
        job = hook.start_job(**start_request("visit-1"))
    assert start.call_count == 3
    assert job["MedicalTranscriptionJobName"] == "visit-1"
    assert hook.get_job("visit-1")["MedicalTranscriptionJobName"] == "visit-1"


def test_limit_exceeded_gives_up_after_bounded_attempts(aws, start_request):
    hook = TranscribeMedicalHook(quota_retry_attempts=3, quota_retry_max_delay=0)
    with (
        mock.patch.object(
            hook.conn, "start_medical_transcription_job", side_effect=limit_exceeded()
        ) as start,
        pytest.raises(ClientError, match="LimitExceededException"),
    ):
        hook.start_job(**start_request("visit-1"))
    assert start.call_count == 3


def test_other_errors_are_not_retried(hook, start_request):
    with (
        mock.patch.object(
            hook.conn,
            "start_medical_transcription_job",
            side_effect=ClientError(
                {"Error": {"Code": "BadRequestException"}},
                "StartMedicalTranscriptionJob",
            ),
        ) as start,
        pytest.raises(ClientError, match="BadRequestException"),
    ):
        hook.start_job(**start_request("visit-1"))
    assert start.call_count == 1


def test_client_retries_throttling_on_the_wire(hook, media, start_request, monkeypatch):
    """Two throttled responses, then moto: botocore's standard mode retries with backoff."""
    sleeps: list[float] = []
    monkeypatch.setattr(time, "sleep", sleeps.append)
    attempts = []

    def throttle(request, **kwargs):
        attempts.append(request)
        if len(attempts) <= 2:
            body = b'{"__type": "ThrottlingException", "Message": "Rate exceeded"}'
            return AWSResponse(
                request.url,
                400,
                {"Content-Type": "application/x-amz-json-1.1"},
                _Raw(body),
            )
        return None

    hook.conn.meta.events.register_first(
        "before-send.transcribe.StartMedicalTranscriptionJob", throttle
    )
    job = hook.start_job(**start_request("visit-1"))
    assert job["MedicalTranscriptionJobName"] == "visit-1"
    assert len(attempts) == 3
    assert len(sleeps) == 2


def test_waiter_follows_the_job_to_completion(hook, media, start_request):
    hook.start_job(**start_request("visit-1"))
    hook.get_waiter(JOB_COMPLETE_WAITER).wait(
        MedicalTranscriptionJobName="visit-1",
        WaiterConfig={"Delay": 0, "MaxAttempts": 5},
    )
    assert hook.get_job("visit-1")["TranscriptionJobStatus"] == "COMPLETED"


def test_wait_for_job_fails_with_the_failure_reason(hook):
    reason = "The media format provided does not match the detected media format"
    with Stubber(hook.conn) as stubber:
        for status in ("IN_PROGRESS", "FAILED"):
            stubber.add_response(
                "get_medical_transcription_job",
                {
                    "MedicalTranscriptionJob": {
                        "MedicalTranscriptionJobName": "visit-1",
                        "TranscriptionJobStatus": status,
                        **({"FailureReason": reason} if status == "FAILED" else {}),
                    }
                },
            )
        with pytest.raises(MedicalTranscriptionJobFailedError, match=reason):
            hook.wait_for_job("visit-1", waiter_delay=0, waiter_max_attempts=5)
        stubber.assert_no_pending_responses()
