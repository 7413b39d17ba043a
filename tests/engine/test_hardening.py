"""Hostile and careless requests: each test pins one finding of the engine's security review."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from test_jobs import start, upload, wait
from wire import active_jobs, call, engine_api, signed_headers

from medscribe.api import MAX_BODY_BYTES, create_app
from medscribe.backend import TranscribeBackend
from medscribe.config import EngineConfig
from medscribe.protocol import ServiceError
from medscribe.s3 import S3Object, output_key, parse_uri
from medscribe.store import JobStore
from medscribe.worker import Worker

ROOT = Path(__file__).resolve().parents[2]
#: A ceiling for waits that end in well under a second on an idle machine: reached only by a
#: hang, never by a machine shared with other work.
CEILING = 120.0


def job_request(name: str, **extra) -> dict:
    return {
        "MedicalTranscriptionJobName": name,
        "LanguageCode": "en-US",
        "Media": {"MediaFileUri": "s3://inbox/x.wav"},
        "OutputBucketName": "transcripts",
        "Specialty": "PRIMARYCARE",
        "Type": "DICTATION",
        **extra,
    }


@pytest.fixture
def database(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'jobs.db'}"


@pytest.fixture
def api(database):
    with engine_api(database) as client:
        yield client


# 1. One vocabulary must not stop all transcription.
def test_unreadable_vocabulary_fails_itself_not_the_worker(database, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDUNUSED")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "unused")
    store = JobStore(database)
    # Nothing listens on port 9: the S3 call itself fails, not with a ClientError.
    worker = Worker(EngineConfig(s3_endpoint_url="http://127.0.0.1:9"), store, recognizer=None)
    store.create_vocabulary("bad-bucket", "en-US", "s3://bad!bucket/v.txt", now=1.0)
    store.create_vocabulary("no-server", "en-US", "s3://vocabularies/v.txt", now=2.0)
    for vocabulary in store.pending_vocabularies():
        worker.settle_vocabulary(vocabulary)
    for name in ("bad-bucket", "no-server"):
        settled = store.get_vocabulary(name)
        assert settled is not None and settled.state == "FAILED"
        assert "vocabulary file" in settled.failure_reason
        assert "media" not in settled.failure_reason


# 2. No unauthenticated memory use: the body is read only after the headers authenticate.
def asgi_post(app, headers: dict[str, str], chunks: int, chunk: bytes = b"x" * (1 << 20)):
    """Stream ``chunks`` chunks at the app; return (status, chunks it actually read)."""
    read = 0
    sent: list[dict] = []

    async def receive():
        nonlocal read
        read += 1
        return {"type": "http.request", "body": chunk, "more_body": read < chunks}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/", "raw_path": b"/", "query_string": b"", "root_path": "",
        "server": ("testserver", 80), "client": ("127.0.0.1", 5000),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }  # fmt: skip
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], read


def test_body_is_not_read_before_authentication_and_is_capped(database):
    config = EngineConfig(database_url=database, access_keys={"AKIDWIRETEST": "wire-test-secret"})
    app = create_app(TranscribeBackend(JobStore(database), config))
    target = {"host": "testserver", "x-amz-target": "Transcribe.ListMedicalVocabularies"}
    assert asgi_post(app, target, chunks=100) == (403, 0)
    forged = {**signed_headers("ListMedicalVocabularies", b"{}"), "host": "testserver"}
    forged["Authorization"] = forged["Authorization"].replace("AKIDWIRETEST", "AKIDSTRANGER")
    assert asgi_post(app, forged, chunks=100) == (403, 0)
    # A known key may send at most MAX_BODY_BYTES, declared or streamed.
    signed = {**signed_headers("ListMedicalVocabularies", b"{}"), "host": "testserver"}
    assert asgi_post(app, {**signed, "content-length": str(100 << 20)}, chunks=100) == (413, 0)
    status, read = asgi_post(app, {**signed, "content-length": ""}, chunks=100)
    assert status == 413 and read <= MAX_BODY_BYTES // (1 << 20) + 1


# 3. The queue limit holds when many starts race.
def test_queue_limit_holds_under_concurrent_starts(database):
    store = JobStore(database)
    backend = TranscribeBackend(store, EngineConfig(max_active_jobs=5))
    barrier = threading.Barrier(20)

    def start(index: int) -> str:
        barrier.wait()
        try:
            backend.start_medical_transcription_job(job_request(f"race-{index}"))
        except ServiceError as error:
            return error.code
        return "admitted"

    with ThreadPoolExecutor(20) as pool:
        outcomes = list(pool.map(start, range(20)))
    assert outcomes.count("admitted") == 5, outcomes
    assert set(outcomes) == {"admitted", "LimitExceededException"}
    assert active_jobs(store) == 5


# 6. Shutdown never hangs, however many signals arrive.
def catches_sigterm(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    caught = int(re.search(r"SigCgt:\s*([0-9a-f]+)", status)[1], 16)
    return bool(caught & (1 << (signal.SIGTERM - 1)))


def test_worker_command_stops_on_a_burst_of_signals(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "include"), "MEDSCRIBE_ACCESS_KEYS": "A:B"}
    env["MEDSCRIBE_DATABASE_URL"] = f"sqlite:///{tmp_path / 'jobs.db'}"
    command = [sys.executable, "-m", "medscribe", "worker", "--workers", "0"]
    processes = [subprocess.Popen(command, env=env) for _ in range(3)]
    try:
        for process in processes:
            deadline = time.monotonic() + CEILING
            while not catches_sigterm(process.pid):
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.05)
        for process in processes:
            for _ in range(2000):
                if process.poll() is not None:
                    break
                os.kill(process.pid, signal.SIGTERM)
        # Exit 0, or killed by a later SIGTERM once the interpreter has restored the default
        # handler on its way out; never hanging.
        for process in processes:
            assert process.wait(timeout=CEILING) in (0, -signal.SIGTERM)
    finally:
        for process in processes:
            process.kill()


# 7. Forged tokens, deep JSON and booleans are client errors, never 500s.
def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


@pytest.mark.parametrize("operation", ["ListMedicalTranscriptionJobs", "ListMedicalVocabularies"])
@pytest.mark.parametrize("token", [b64(str(2**63)), b64("-1"), b64("1e3"), b64(" 7"), "%%%"])
def test_forged_next_tokens_are_bad_requests(api, operation, token):
    response = call(api, operation, {"NextToken": token})
    assert response.status_code == 400
    assert response.json()["__type"] == "BadRequestException"
    assert "NextToken" in response.json()["Message"]


def test_deeply_nested_json_is_a_serialization_error(api):
    nested = b'{"JobNameContains": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = call(api, "ListMedicalTranscriptionJobs", raw=nested)
    assert response.status_code == 400
    assert response.json()["__type"] == "SerializationException"


@pytest.mark.parametrize("value", [True, 2.0, "3"])
def test_max_results_must_be_an_integer(api, value):
    response = call(api, "ListMedicalTranscriptionJobs", {"MaxResults": value})
    assert response.status_code == 400
    assert "MaxResults" in response.json()["Message"] or "maxResults" in response.json()["Message"]


# 8. The operation is part of what is signed.
def test_unsigned_target_is_refused(api):
    body = b"{}"
    headers = signed_headers("ListMedicalVocabularies", body, sign_target=False)
    response = api.post("http://testserver/", content=body, headers=headers)
    assert response.status_code == 403
    assert response.json()["__type"] == "InvalidSignatureException"
    assert "x-amz-target" in response.json()["Message"]
    assert call(api, "ListMedicalVocabularies", {}).status_code == 200


# 10. Workers starting together on a fresh machine assemble the model once, without failing.
def test_concurrent_first_starts_share_one_model(tmp_path):
    code = (
        "import sys; from pathlib import Path; from medscribe.model import assemble_default_model;"
        "print(assemble_default_model(Path(sys.argv[1])))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "include")}
    cache = tmp_path / "model"
    processes = [
        subprocess.Popen([sys.executable, "-c", code, str(cache)], env=env, stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    errors = [process.communicate(timeout=120)[1].decode() for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], errors
    assert sorted(path.name for path in cache.iterdir() if not path.name.startswith(".")) == [
        "config.json", "model.bin", "tokenizer.json", "vocabulary.txt",
    ]  # fmt: skip


# 5. A mistyped output bucket fails the job; no bucket appears.
def test_missing_output_bucket_fails_the_job_and_creates_nothing(stack, dictation):
    transcribe, s3 = stack.client("transcribe"), stack.client("s3")
    uri = upload(stack, dictation("Follow up in two weeks."), "typo/note.wav")
    start(transcribe, "bucket-typo", uri, OutputBucketName="transcirpts")
    job = wait(transcribe, "bucket-typo")
    assert job["TranscriptionJobStatus"] == "FAILED"
    assert "output bucket transcirpts doesn't exist" in job["FailureReason"]
    with pytest.raises(ClientError) as error:
        s3.head_bucket(Bucket="transcirpts")
    assert error.value.response["Error"]["Code"] in ("404", "NoSuchBucket")


# 9. Media has bounds, and an unusable OutputKey is refused at Start, before any work.
@pytest.mark.parametrize(
    ("limits", "reason"),
    [({"max_media_bytes": 1000}, "larger than the 1000 bytes"),
     ({"max_media_seconds": 1.0}, "longer than the 1 seconds")],
)  # fmt: skip
def test_media_past_the_limits_fails_before_recognition(stack, dictation, database, limits, reason):
    store = JobStore(database)
    uri = upload(stack, dictation("Follow up in two weeks."), "limits/note.wav")
    store.create_job("too-much", job_request("too-much", Media={"MediaFileUri": uri}), now=1.0)
    # No recognizer: the limits must stop the job before recognition would start.
    worker = Worker(EngineConfig(**limits), store, recognizer=None)
    worker.s3 = stack.client("s3")
    assert worker.run_one()
    job = store.get_job("too-much")
    assert job is not None and job.status == "FAILED" and reason in job.failure_reason


@pytest.mark.parametrize(
    ("requested", "fragment"),
    [("../other-clinic/x", "'..'"), ("notes/./x", "'.'"), ("x" * 1020 + "/", "1024 bytes")],
)
def test_unusable_output_key_is_refused_at_start(api, requested, fragment):
    response = call(api, "StartMedicalTranscriptionJob", job_request("k", OutputKey=requested))
    assert response.status_code == 400
    assert fragment in response.json()["Message"]


# AWS's own OutputKey examples: only a key ending in .json names the file itself; any other
# is a folder (created by writing the key) that holds <job>.json.
@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        (None, "medical/my-first-transcription.json"),
        ("my-transcript.json", "my-transcript.json"),
        ("test-files/my-transcript.json", "test-files/my-transcript.json"),
        ("my-transcript", "my-transcript/my-first-transcription.json"),
        ("test-files/my-transcript", "test-files/my-transcript/my-first-transcription.json"),
        ("folder/", "folder/my-first-transcription.json"),
    ],
)
def test_output_key_is_read_as_aws_documents_it(requested, expected):
    assert output_key("my-first-transcription", requested) == expected


# Also: S3 URIs in every form AWS accepts; an illegal bucket name is the client's error.
@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://inbox/a/b.wav", S3Object("inbox", "a/b.wav")),
        ("s3://inbox/visit#1?.wav", S3Object("inbox", "visit#1?.wav")),
        ("https://inbox.s3.amazonaws.com/a/b%20c.wav", S3Object("inbox", "a/b c.wav")),
        ("https://inbox.s3.us-east-1.amazonaws.com/a.wav?versionId=v1", S3Object("inbox", "a.wav", "v1")),
        ("https://my.inbox.s3-us-west-2.amazonaws.com/a.wav", S3Object("my.inbox", "a.wav")),
        ("https://s3.us-east-1.amazonaws.com/inbox/a.wav", S3Object("inbox", "a.wav")),
        ("http://127.0.0.1:8333/inbox/a.wav?versionId=3", S3Object("inbox", "a.wav", "3")),
    ],
)  # fmt: skip
def test_s3_uris_are_read_as_aws_reads_them(uri, expected):
    assert parse_uri(uri) == expected


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        ("StartMedicalTranscriptionJob", job_request("b", Media={"MediaFileUri": "s3://bad!bucket/x.wav"})),
        ("StartMedicalTranscriptionJob", job_request("b", Media={"MediaFileUri": "https://inbox.s3.amazonaws.com/x.wav?acl"})),
        ("CreateMedicalVocabulary", {"VocabularyName": "v", "LanguageCode": "en-US",
                                     "VocabularyFileUri": "s3://bad!bucket/v.txt"}),
    ],
)  # fmt: skip
def test_unusable_s3_uri_is_a_bad_request(api, operation, params):
    response = call(api, operation, params)
    assert response.status_code == 400
    assert response.json()["__type"] == "BadRequestException"
    assert "bad!bucket" in response.json()["Message"] or "versionId" in response.json()["Message"]


def test_access_log_keeps_no_query_strings(stack):
    url = stack.env["AWS_ENDPOINT_URL_TRANSCRIBE"]
    query = "X-Amz-Credential=AKIDLEAKED%2F20260101&X-Amz-Signature=5ec7e75160"
    with urllib.request.urlopen(f"{url}/health?{query}") as response:
        assert response.status == 200
    log = stack.state / "engine.log"
    deadline = time.monotonic() + CEILING
    while "GET /health HTTP" not in log.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert "AKIDLEAKED" not in log.read_text() and "5ec7e75160" not in log.read_text()
