"""Medical vocabularies from S3 phrase files, and a job steered by one; two-channel audio."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from botocore.exceptions import ClientError
from test_jobs import start, transcript_of, upload, wait


def wait_vocabulary(transcribe, name: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        vocabulary = transcribe.get_medical_vocabulary(VocabularyName=name)
        if vocabulary["VocabularyState"] != "PENDING":
            return vocabulary
        time.sleep(0.3)
    raise AssertionError(f"vocabulary {name} stayed PENDING")


def test_vocabulary_lifecycle_and_use(stack, dictation):
    transcribe, s3 = stack.client("transcribe"), stack.client("s3")
    s3.put_object(Bucket="inbox", Key="vocab/cardio.txt", Body=b"zorvexa\natrial-fibrillation\n")
    s3.put_object(Bucket="inbox", Key="vocab/empty.txt", Body=b"\n\n")
    created = transcribe.create_medical_vocabulary(
        VocabularyName="cardio",
        LanguageCode="en-US",
        VocabularyFileUri="s3://inbox/vocab/cardio.txt",
    )
    assert created["VocabularyState"] == "PENDING"
    transcribe.create_medical_vocabulary(
        VocabularyName="empty", LanguageCode="en-US", VocabularyFileUri="s3://inbox/vocab/empty.txt"
    )
    assert wait_vocabulary(transcribe, "cardio")["VocabularyState"] == "READY"
    failed = wait_vocabulary(transcribe, "empty")
    assert failed["VocabularyState"] == "FAILED" and "no phrases" in failed["FailureReason"]
    with pytest.raises(ClientError) as error:
        transcribe.create_medical_vocabulary(
            VocabularyName="cardio",
            LanguageCode="en-US",
            VocabularyFileUri="s3://inbox/vocab/cardio.txt",
        )
    assert error.value.response["Error"]["Code"] == "ConflictException"
    listed = transcribe.list_medical_vocabularies(StateEquals="READY")["Vocabularies"]
    assert [v["VocabularyName"] for v in listed] == ["cardio"]

    # A made-up drug name: heard only when the job's vocabulary names it.
    note = dictation("The new prescription is zorvexa, ten milligrams each morning.")
    uri = upload(stack, note, "vocab/note.wav")
    start(transcribe, "steered", uri, Settings={"VocabularyName": "cardio"})
    start(transcribe, "unsteered", uri)
    job = wait(transcribe, "steered")
    assert job["Settings"]["VocabularyName"] == "cardio"
    steered = transcript_of(stack, job)["results"]["transcripts"][0]["transcript"]
    unsteered = transcript_of(stack, wait(transcribe, "unsteered"))["results"]["transcripts"][0]
    assert "zorvexa" in steered.lower() and "zorvexa" not in unsteered["transcript"].lower()

    transcribe.update_medical_vocabulary(
        VocabularyName="empty",
        LanguageCode="en-US",
        VocabularyFileUri="s3://inbox/vocab/cardio.txt",
    )
    assert wait_vocabulary(transcribe, "empty")["VocabularyState"] == "READY"
    transcribe.delete_medical_vocabulary(VocabularyName="empty")
    with pytest.raises(ClientError) as error:
        transcribe.delete_medical_vocabulary(VocabularyName="empty")
    assert error.value.response["Error"]["Code"] == "NotFoundException"


def test_channel_identification_labels_each_channel(stack, dictation, tmp_path):
    left = dictation("Blood pressure is stable today.")
    right = dictation("I have been taking my medication.")
    stereo = tmp_path / "stereo.wav"
    subprocess.run(["sox", "-M", str(left), str(right), str(stereo)], check=True)
    transcribe = stack.client("transcribe")
    uri = upload(stack, stereo, "visits/stereo.wav")
    start(transcribe, "two-channel", uri, Type="CONVERSATION",
          Settings={"ChannelIdentification": True})  # fmt: skip
    job = wait(transcribe, "two-channel")
    assert job["TranscriptionJobStatus"] == "COMPLETED", job.get("FailureReason")
    results = transcript_of(stack, job)["results"]
    channels = results["channel_labels"]
    assert channels["number_of_channels"] == 2
    by_label = {
        channel["channel_label"]: " ".join(
            i["alternatives"][0]["content"] for i in channel["items"]
        )
        for channel in channels["channels"]
    }
    assert "pressure" in by_label["ch_0"].lower() and "medication" in by_label["ch_1"].lower()
    assert {item["channel_label"] for item in results["items"]} == {"ch_0", "ch_1"}
    assert json.dumps(results).count('"pronunciation"') == 2 * len(
        [i for i in results["items"] if i["type"] == "pronunciation"]
    )
