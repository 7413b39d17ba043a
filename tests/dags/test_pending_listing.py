"""Finding a night's pending audio takes listings, never a call per object."""

from __future__ import annotations

import collections

import botocore.client
import pytest

from containers import shared
from medical_transcribe import listing
from medical_transcribe.hooks import MedicalTranscriptionJobFailedError, TranscribeMedicalHook
from medical_transcribe.naming import job_name_for
from medical_transcribe.operators import StartMedicalTranscriptionJobOperator


@pytest.fixture
def calls(monkeypatch) -> collections.Counter[str]:
    counted: collections.Counter[str] = collections.Counter()
    original = botocore.client.BaseClient._make_api_call

    def counting(self, operation, params):
        counted[operation] += 1
        return original(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counting)
    return counted


def test_pending_skips_transcribed_and_failed_without_per_object_calls(stack, monkeypatch, calls):
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", shared.airflow_connection(stack.env))
    s3, transcribe = stack.client("s3"), stack.client("transcribe")
    for bucket in ("listing-in", "listing-out"):
        s3.create_bucket(Bucket=bucket)
    names = {}
    for index in range(30):
        key = f"night/{index:02d}.wav"
        etag = s3.put_object(Bucket="listing-in", Key=key, Body=b"audio")["ETag"]
        names[key] = job_name_for(
            "listing-in", key, etag, type="DICTATION", specialty="PRIMARYCARE", phi_safe=False
        )
    s3.put_object(Bucket="listing-in", Key="night/notes.txt", Body=b"not audio")
    transcribed = [f"night/{index:02d}.wav" for index in range(10)]
    for key in transcribed:
        s3.put_object(Bucket="listing-out", Key=listing.transcript_key(names[key]), Body=b"{}")
    failed = ["night/10.wav", "night/11.wav"]
    for key in failed:  # audio the engine cannot decode: the job fails
        transcribe.start_medical_transcription_job(
            MedicalTranscriptionJobName=names[key], LanguageCode="en-US",
            Media={"MediaFileUri": f"s3://listing-in/{key}"}, OutputBucketName="listing-out",
            Specialty="PRIMARYCARE", Type="DICTATION",
        )  # fmt: skip
        with pytest.raises(MedicalTranscriptionJobFailedError):
            TranscribeMedicalHook(aws_conn_id="aws_default").wait_for_job(names[key], 1, 120)
    night = {
        "aws_conn_id": "aws_default", "input_bucket": "listing-in", "input_prefix": "night/",
        "output_bucket": "listing-out", "job_type": "DICTATION", "specialty": "PRIMARYCARE",
        "settings": {}, "max_files": 100, "phi_safe": False,
    }  # fmt: skip
    calls.clear()

    pending, skipped = listing.list_pending(**night)

    expected = sorted(set(names) - set(transcribed) - set(failed))
    assert sorted(d["media_file_uri"].removeprefix("s3://listing-in/") for d in pending) == expected
    assert [d["job_name"] for d in pending] == [names[key] for key in expected]
    assert skipped == {
        "not_audio": 1, "already_transcribed": 10, "failed_before": 2, "left_for_next_run": 0
    }  # fmt: skip
    # One listing of the inbox, one of the transcripts, one of the failed jobs; a HEAD only
    # for the object whose name does not say it is audio.
    assert dict(calls) == {"ListObjectsV2": 2, "ListMedicalTranscriptionJobs": 1, "HeadObject": 1}

    # Past the cap, the rest is counted for the next run, which takes it up in order.
    first, skipped = listing.list_pending(**night | {"max_files": 10})
    assert [d["job_name"] for d in first] == [names[key] for key in expected[:10]]
    assert skipped["left_for_next_run"] == len(expected) - 10

    # Deleting a failed job (as the README says) makes its file pending again.
    transcribe.delete_medical_transcription_job(MedicalTranscriptionJobName=names[failed[0]])
    pending, skipped = listing.list_pending(**night)
    assert names[failed[0]] in [d["job_name"] for d in pending]
    assert skipped["failed_before"] == 1


def test_a_file_the_operator_transcribed_alone_counts_as_transcribed(stack, monkeypatch, dictation):
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", shared.airflow_connection(stack.env))
    s3 = stack.client("s3")
    for bucket in ("alone-in", "alone-out"):
        s3.create_bucket(Bucket=bucket)
    s3.upload_file(str(dictation("Blood pressure is well controlled.")), "alone-in", "in/a.wav")
    StartMedicalTranscriptionJobOperator(
        task_id="alone", media_file_uri="s3://alone-in/in/a.wav", output_bucket_name="alone-out",
        content_identification_type="PHI", deferrable=False, waiter_delay=1,
    ).execute({})  # fmt: skip

    pending, skipped = listing.list_pending(
        aws_conn_id="aws_default", input_bucket="alone-in", input_prefix="in/",
        output_bucket="alone-out", job_type="DICTATION", specialty="PRIMARYCARE", settings={},
        max_files=10, identify_phi=True,
    )  # fmt: skip

    assert pending == []
    assert skipped["already_transcribed"] == 1
