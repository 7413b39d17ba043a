"""Transcription jobs through boto3 against the running engine, real S3 and real recognition."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

DICTATION = (
    "The patient has hypertension and type two diabetes. "
    "Start metformin five hundred milligrams twice daily. "
    "Follow up in three months."
)


def start(transcribe, name: str, uri: str, **extra: Any) -> dict[str, Any]:
    request = {
        "MedicalTranscriptionJobName": name,
        "LanguageCode": "en-US",
        "Media": {"MediaFileUri": uri},
        "OutputBucketName": "transcripts",
        "Specialty": "PRIMARYCARE",
        "Type": "DICTATION",
        **extra,
    }
    return transcribe.start_medical_transcription_job(**request)["MedicalTranscriptionJob"]


def refused_settings(transcribe, name: str, settings: dict[str, Any]) -> str:
    """Start a job with ``settings`` the engine must refuse as AWS does; the error message."""
    with pytest.raises(ClientError) as error:
        start(transcribe, name, "s3://inbox/x.wav", Settings=settings)
    assert error.value.response["Error"]["Code"] == "BadRequestException"
    return error.value.response["Error"]["Message"]


def wait(transcribe, name: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = transcribe.get_medical_transcription_job(MedicalTranscriptionJobName=name)
        job = job["MedicalTranscriptionJob"]
        if job["TranscriptionJobStatus"] in ("COMPLETED", "FAILED"):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {name} did not finish in {timeout}s")


def upload(stack, path, key: str) -> str:
    stack.client("s3").upload_file(str(path), "inbox", key)
    return f"s3://inbox/{key}"


def transcript_of(stack, job: dict[str, Any]) -> dict[str, Any]:
    uri = job["Transcript"]["TranscriptFileUri"]
    bucket, _, key = uri.split("/", 3)[3].partition("/")
    return json.loads(stack.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


@pytest.fixture(scope="module")
def completed(stack, dictation):
    """One finished dictation job, shared by the assertions on its transcript."""
    transcribe = stack.client("transcribe")
    uri = upload(stack, dictation(DICTATION, ".mp3"), "notes/visit-1.mp3")
    started = start(transcribe, "visit-1", uri)
    return started, wait(transcribe, "visit-1"), transcribe


def test_job_completes_and_describes_itself_like_aws(completed):
    started, job, _ = completed
    assert started["TranscriptionJobStatus"] in ("QUEUED", "IN_PROGRESS")
    assert job["TranscriptionJobStatus"] == "COMPLETED", job.get("FailureReason")
    assert job["MediaFormat"] == "mp3"
    assert job["MediaSampleRateHertz"] == 16000
    assert job["CreationTime"] <= job["StartTime"] <= job["CompletionTime"]
    assert job["Transcript"]["TranscriptFileUri"].endswith("/transcripts/medical/visit-1.json")


def test_transcript_hears_the_dictation(stack, completed):
    _, job, _ = completed
    document = transcript_of(stack, job)
    assert document["jobName"] == "visit-1" and document["status"] == "COMPLETED"
    text = document["results"]["transcripts"][0]["transcript"].lower()
    for word in ("hypertension", "diabetes", "metformin", "twice daily", "follow up"):
        assert word in text.replace("-", " ")


def test_items_have_aws_shape_timings_and_confidences(stack, completed, dictation):
    _, job, _ = completed
    items = transcript_of(stack, job)["results"]["items"]
    words = [item for item in items if item["type"] == "pronunciation"]
    marks = [item for item in items if item["type"] == "punctuation"]
    assert len(words) >= 15 and marks
    assert all("start_time" not in mark and mark["alternatives"][0]["content"] in ".,?!;:"
               for mark in marks)  # fmt: skip
    starts = [float(item["start_time"]) for item in words]
    assert starts == sorted(starts)
    duration = 12.0  # generous upper bound for this short dictation
    for item in words:
        assert isinstance(item["start_time"], str) and isinstance(item["end_time"], str)
        assert 0 <= float(item["start_time"]) <= float(item["end_time"]) <= duration
        alternative = item["alternatives"][0]
        assert 0.0 <= float(alternative["confidence"]) <= 1.0
        assert alternative["content"].strip() == alternative["content"] != ""


def test_output_key_places_the_transcript_where_aws_does(stack, dictation):
    """AWS's examples: a key without .json is a folder that gets <job>.json; with .json, the file."""
    transcribe, s3 = stack.client("transcribe"), stack.client("s3")
    uri = upload(stack, dictation("Follow up in two weeks."), "notes/output-key.wav")
    expected = {
        "my-first-transcription": (
            "test-files/my-transcript",
            "test-files/my-transcript/my-first-transcription.json",
        ),
        "my-second-transcription": (
            "test-files/my-transcript.json",
            "test-files/my-transcript.json",
        ),
    }
    for name, (requested, _) in expected.items():
        start(transcribe, name, uri, OutputKey=requested)
    for name, (_, key) in expected.items():
        job = wait(transcribe, name)
        assert job["Transcript"]["TranscriptFileUri"].endswith(f"/transcripts/{key}")
        assert transcript_of(stack, job)["jobName"] == name
    assert s3.list_objects_v2(Bucket="transcripts", Prefix="test-files/")["KeyCount"] == 2


def test_duplicate_name_is_a_conflict(stack, completed):
    _, _, transcribe = completed
    with pytest.raises(ClientError) as error:
        start(transcribe, "visit-1", "s3://inbox/notes/visit-1.mp3")
    assert error.value.response["Error"]["Code"] == "ConflictException"


def test_list_pages_filters_and_delete(stack, completed):
    _, _, transcribe = completed
    for index in range(3):
        start(transcribe, f"listing-{index}", "s3://inbox/does/not/exist.wav")
    first = transcribe.list_medical_transcription_jobs(JobNameContains="listing", MaxResults=2)
    assert len(first["MedicalTranscriptionJobSummaries"]) == 2
    second = transcribe.list_medical_transcription_jobs(
        JobNameContains="listing", MaxResults=2, NextToken=first["NextToken"]
    )
    names = [s["MedicalTranscriptionJobName"] for s in first["MedicalTranscriptionJobSummaries"]]
    names += [s["MedicalTranscriptionJobName"] for s in second["MedicalTranscriptionJobSummaries"]]
    assert sorted(names) == ["listing-0", "listing-1", "listing-2"]
    assert "NextToken" not in second
    done = transcribe.list_medical_transcription_jobs(Status="COMPLETED")
    assert "visit-1" in [
        s["MedicalTranscriptionJobName"] for s in done["MedicalTranscriptionJobSummaries"]
    ]
    transcribe.delete_medical_transcription_job(MedicalTranscriptionJobName="listing-0")
    with pytest.raises(ClientError) as error:
        transcribe.get_medical_transcription_job(MedicalTranscriptionJobName="listing-0")
    assert error.value.response["Error"]["Code"] == "BadRequestException"


@pytest.mark.parametrize(
    ("change", "code", "fragment"),
    [
        ({"MedicalTranscriptionJobName": "has spaces"}, "BadRequestException", "regular expression"),
        ({"Type": "MEETING"}, "BadRequestException", "enum value set"),
        ({"LanguageCode": "fr-FR"}, "BadRequestException", "en-US"),
        ({"ContentIdentificationType": "PII"}, "BadRequestException", "enum value set"),
        ({"Settings": {"VocabularyName": "no-such-list"}}, "BadRequestException", "vocabulary"),
        ({"Media": {"MediaFileUri": "s3://bucket-only"}}, "BadRequestException", "S3 URI"),
        ({"Media": {"MediaFileUri": "ftp://inbox/x.wav"}}, "BadRequestException", "pattern"),
    ],
)  # fmt: skip
def test_bad_requests_are_refused_in_aws_form(stack, change, code, fragment):
    transcribe = stack.client("transcribe")
    request = {
        "MedicalTranscriptionJobName": "refused",
        "Media": {"MediaFileUri": "s3://inbox/x.wav"},
    }
    request.update(change)
    name = request.pop("MedicalTranscriptionJobName")
    uri = request.pop("Media")["MediaFileUri"]
    with pytest.raises(ClientError) as error:
        start(transcribe, name, uri, **request)
    assert error.value.response["Error"]["Code"] == code
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert fragment in error.value.response["Error"]["Message"]
    with pytest.raises(ClientError):
        transcribe.get_medical_transcription_job(MedicalTranscriptionJobName="refused")


def test_unknown_job_is_a_bad_request(stack):
    with pytest.raises(ClientError) as error:
        stack.client("transcribe").get_medical_transcription_job(MedicalTranscriptionJobName="nope")
    assert error.value.response["Error"]["Code"] == "BadRequestException"


def test_bad_media_fails_the_job_with_a_reason(stack, dictation):
    transcribe = stack.client("transcribe")
    s3 = stack.client("s3")
    s3.put_object(Bucket="inbox", Key="bad/corrupt.wav", Body=b"RIFF" + bytes(range(256)) * 20)
    s3.put_object(Bucket="inbox", Key="bad/empty.wav", Body=b"")
    flac = upload(stack, dictation("Short note.", ".flac"), "bad/note.flac")
    cases = {
        "missing": ("s3://inbox/bad/absent.wav", {}, "can't be read"),
        "corrupt": ("s3://inbox/bad/corrupt.wav", {}, "could not be decoded"),
        "empty": ("s3://inbox/bad/empty.wav", {}, "could not be decoded"),
        "format": (flac, {"MediaFormat": "wav"}, "does not match the detected media format"),
        "rate": (flac, {"MediaSampleRateHertz": 44100}, "sample rate"),
    }
    for name, (uri, extra, _) in cases.items():
        start(transcribe, f"bad-{name}", uri, **extra)
    for name, (_, _, reason) in cases.items():
        job = wait(transcribe, f"bad-{name}")
        assert job["TranscriptionJobStatus"] == "FAILED"
        assert reason in job["FailureReason"]
    assert s3.head_object(Bucket="inbox", Key="bad/corrupt.wav")["ContentLength"] > 0
