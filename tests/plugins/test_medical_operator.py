from __future__ import annotations

from unittest import mock

import pytest
from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    TaskDeferred,
)
from botocore.exceptions import ClientError

from medical_transcribe.hooks import (
    MedicalTranscriptionJobFailedError,
    TranscribeMedicalHook,
)
from medical_transcribe.naming import job_name_for
from medical_transcribe.operators import StartMedicalTranscriptionJobOperator
from medical_transcribe.triggers import MedicalTranscriptionJobCompletedTrigger

SETTINGS = {"ShowSpeakerLabels": True, "MaxSpeakerLabels": 2}


def operator(media: dict, **kwargs) -> StartMedicalTranscriptionJobOperator:
    params = {
        "task_id": "start",
        "media_file_uri": media["uri"],
        "output_bucket_name": media["output_bucket"],
        "wait_for_completion": False,
        **kwargs,
    }
    return StartMedicalTranscriptionJobOperator(**params)


def test_derives_the_name_the_listing_gives_the_file(media):
    name = operator(media, settings=SETTINGS, type="CONVERSATION").execute({})
    assert name == job_name_for(
        media["bucket"], media["key"], media["etag"],
        type="CONVERSATION", specialty="PRIMARYCARE", settings=SETTINGS,
    )  # fmt: skip
    assert name.startswith("media-")  # PHI-safe by default, like the listing
    job = TranscribeMedicalHook().get_job(name)
    assert job["Type"] == "CONVERSATION"
    assert job["Specialty"] == "PRIMARYCARE"
    assert job["Media"]["MediaFileUri"] == media["uri"]


def test_rerun_adopts_the_job_instead_of_starting_another(media):
    first = operator(media).execute({})
    second = operator(media).execute({})
    assert first == second
    jobs = TranscribeMedicalHook().conn.list_medical_transcription_jobs()[
        "MedicalTranscriptionJobSummaries"
    ]
    assert len(jobs) == 1


def test_explicit_job_name_wins(media):
    assert operator(media, job_name="night-001").execute({}) == "night-001"


def test_missing_media_fails_clearly(media):
    with pytest.raises(AirflowException, match="does not exist"):
        operator(media, media_file_uri=f"s3://{media['bucket']}/nope.wav").execute({})


def test_sends_every_parameter_in_aws_shape(media):
    op = operator(
        media,
        job_name="night-001",
        output_key="medical/night-001.json",
        output_encryption_kms_key_id="alias/transcripts",
        kms_encryption_context={"clinic": "north"},
        media_format="wav",
        media_sample_rate_hertz="16000",  # rendered templates are strings
        settings=SETTINGS,
        content_identification_type="PHI",
        tags={"clinic": "north"},
    )
    with mock.patch.object(TranscribeMedicalHook, "start_job", return_value={}) as start:
        op.execute({})
    assert start.call_args.kwargs == {
        "MedicalTranscriptionJobName": "night-001",
        "LanguageCode": "en-US",
        "MediaSampleRateHertz": 16000,
        "MediaFormat": "wav",
        "Media": {"MediaFileUri": media["uri"]},
        "OutputBucketName": media["output_bucket"],
        "OutputKey": "medical/night-001.json",
        "OutputEncryptionKMSKeyId": "alias/transcripts",
        "KMSEncryptionContext": {"clinic": "north"},
        "Settings": SETTINGS,
        "ContentIdentificationType": "PHI",
        "Specialty": "PRIMARYCARE",
        "Type": "DICTATION",
        "Tags": [{"Key": "clinic", "Value": "north"}],
    }


def test_parameters_are_templated():
    fields = set(StartMedicalTranscriptionJobOperator.template_fields)
    assert {
        "media_file_uri",
        "job_name",
        "settings",
        "tags",
        "output_bucket_name",
        "type",
    } <= fields


def test_waits_synchronously_when_not_deferrable(media):
    name = operator(media, wait_for_completion=True, deferrable=False, waiter_delay=0).execute({})
    assert TranscribeMedicalHook().get_job(name)["TranscriptionJobStatus"] == "COMPLETED"


def test_defers_by_default_when_waiting(media):
    op = operator(media, wait_for_completion=True, waiter_delay=7, waiter_max_attempts=3)
    assert op.deferrable is True
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, MedicalTranscriptionJobCompletedTrigger)
    assert deferred.value.method_name == "execute_complete"
    _, kwargs = trigger.serialize()
    assert kwargs["job_name"] == job_name_for(
        media["bucket"], media["key"], media["etag"], type="DICTATION", specialty="PRIMARYCARE"
    )
    assert (kwargs["waiter_delay"], kwargs["waiter_max_attempts"]) == (7, 3)


def test_adopted_completed_job_needs_no_deferral(media):
    done = {
        "MedicalTranscriptionJobName": "night-001",
        "TranscriptionJobStatus": "COMPLETED",
    }
    with mock.patch.object(TranscribeMedicalHook, "start_job", return_value=done):
        assert (
            operator(media, job_name="night-001", wait_for_completion=True).execute({})
            == "night-001"
        )


def test_adopted_failed_job_fails_with_its_reason(media):
    failed = {
        "TranscriptionJobStatus": "FAILED",
        "FailureReason": "Unsupported media format",
    }
    op = operator(media, job_name="night-001", wait_for_completion=True)
    with (
        mock.patch.object(TranscribeMedicalHook, "start_job", return_value=failed),
        pytest.raises(MedicalTranscriptionJobFailedError, match="Unsupported media"),
    ):
        op.execute({})


def test_execute_complete_returns_the_job_name(media):
    event = {"status": "success", "job_name": "night-001"}
    assert operator(media).execute_complete({}, event) == "night-001"


def test_execute_complete_fails_with_the_reason_without_retries(media):
    event = {
        "status": "error",
        "job_name": "night-001",
        "message": "failed: FAILED - Unsupported media format",
    }
    failed = {"TranscriptionJobStatus": "FAILED", "FailureReason": "Unsupported media format"}
    with (
        mock.patch.object(TranscribeMedicalHook, "get_job", return_value=failed),
        pytest.raises(AirflowFailException, match="Unsupported media format"),
    ):
        operator(media).execute_complete({}, event)
    with pytest.raises(AirflowException, match="event is None"):
        operator(media).execute_complete({}, None)


def test_a_refused_request_fails_at_once_without_retries(media):
    op = operator(media, job_name="night-002", settings={"VocabularyName": "no-such-list"})
    refused = ClientError(
        {"Error": {"Code": "BadRequestException", "Message": "The vocabulary was not found."}},
        "StartMedicalTranscriptionJob",
    )
    with (
        mock.patch.object(TranscribeMedicalHook, "start_job", side_effect=refused),
        pytest.raises(AirflowFailException, match=r"night-002 was refused.*not found"),
    ):
        op.execute({})
    throttled = ClientError({"Error": {"Code": "ThrottlingException"}}, "StartMedical")
    with (
        mock.patch.object(TranscribeMedicalHook, "start_job", side_effect=throttled),
        pytest.raises(ClientError),
    ):
        op.execute({})
