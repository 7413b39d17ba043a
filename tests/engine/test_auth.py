"""Signature Version 4: only requests signed with a configured key pair get through."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import boto3
import pytest
from botocore.exceptions import ClientError


def client(stack, **overrides):
    settings = {
        "endpoint_url": stack.env["AWS_ENDPOINT_URL_TRANSCRIBE"],
        "aws_access_key_id": stack.env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": stack.env["AWS_SECRET_ACCESS_KEY"],
        "region_name": "us-east-1",
        **overrides,
    }
    return boto3.client("transcribe", **settings)


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"aws_secret_access_key": "not-the-secret"}, "InvalidSignatureException"),
        ({"aws_access_key_id": "AKIDUNKNOWN"}, "UnrecognizedClientException"),
        ({"region_name": "eu-west-1"}, "InvalidSignatureException"),
    ],
)
def test_wrongly_signed_requests_are_refused(stack, overrides, code):
    with pytest.raises(ClientError) as error:
        client(stack, **overrides).list_medical_transcription_jobs()
    assert error.value.response["Error"]["Code"] == code
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_unsigned_request_is_refused_and_does_nothing(stack):
    body = json.dumps(
        {
            "MedicalTranscriptionJobName": "unsigned",
            "LanguageCode": "en-US",
            "Media": {"MediaFileUri": "s3://inbox/x.wav"},
            "OutputBucketName": "transcripts",
            "Specialty": "PRIMARYCARE",
            "Type": "DICTATION",
        }
    ).encode()
    request = urllib.request.Request(
        stack.env["AWS_ENDPOINT_URL_TRANSCRIBE"],
        data=body,
        headers={
            "X-Amz-Target": "Transcribe.StartMedicalTranscriptionJob",
            "Content-Type": "application/x-amz-json-1.1",
        },
    )
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request)
    assert error.value.code == 403
    assert json.loads(error.value.read())["__type"] == "MissingAuthenticationTokenException"
    with pytest.raises(ClientError):
        client(stack).get_medical_transcription_job(MedicalTranscriptionJobName="unsigned")


def test_tampered_body_breaks_the_signature(stack):
    transcribe = client(stack)

    def tamper(request, **_):
        request.body = request.body.replace(b"tampered", b"tampereD")  # same length

    transcribe.meta.events.register("before-send.transcribe.*", tamper)
    with pytest.raises(ClientError) as error:
        transcribe.list_medical_transcription_jobs(JobNameContains="tampered")
    assert error.value.response["Error"]["Code"] == "InvalidSignatureException"


def test_unknown_operation_gets_aws_answer(stack):
    with pytest.raises(ClientError) as error:
        client(stack).list_vocabularies()
    assert error.value.response["Error"]["Code"] == "UnknownOperationException"
