"""A worker: claims queued jobs, transcribes their media from S3, writes the transcript back.

The model is loaded once per worker process. While a job runs, a heartbeat renews its
lease; if the process dies the lease runs out and another worker takes the job over.
Logs name jobs and figures, never transcript text.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any

from botocore.exceptions import ClientError

from . import audio, pipeline, s3
from .asr import Recognizer
from .config import EngineConfig
from .store import Job, JobStore, Vocabulary
from .vocabulary import MAX_FILE_BYTES, VocabularyError, default_phrases, parse_phrases

log = logging.getLogger(__name__)

MEDIA_UNREADABLE = (
    "The media file {uri} can't be read. Check that it exists and that the engine may read it."
)
VOCABULARY_UNREADABLE = (
    "The vocabulary file {uri} can't be read. Check that it exists and that the engine may read it."
)


class JobFailed(Exception):
    """The job cannot complete; the message is its FailureReason."""


class Worker:
    def __init__(self, config: EngineConfig, store: JobStore, recognizer: Recognizer) -> None:
        self.config = config
        self.store = store
        self.recognizer = recognizer
        self.s3 = s3.client(config.s3_endpoint_url, config.region)
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def run(self, stop: threading.Event) -> None:
        log.info("worker %s ready", self.id)
        while not stop.is_set():
            for vocabulary in self.store.pending_vocabularies():
                self.settle_vocabulary(vocabulary)
            if not self.run_one():
                stop.wait(self.config.poll_seconds)

    def run_one(self) -> bool:
        """Claim and process one job; False when none was waiting."""
        job = self.store.claim_job(
            self.id, time.time(), self.config.lease_seconds, self.config.max_attempts
        )
        if job is None:
            return False
        stop_heartbeat = threading.Event()
        heartbeat = threading.Thread(target=self._heartbeat, args=(job.name, stop_heartbeat))
        heartbeat.start()
        started = time.monotonic()
        try:
            outcome = self.transcribe(job)
        except JobFailed as failure:
            outcome = {"status": "FAILED", "failure_reason": str(failure)}
        except Exception:
            log.exception("job %s: internal failure", job.name)
            outcome = {"status": "FAILED", "failure_reason": "Internal failure while transcribing."}
        finally:
            stop_heartbeat.set()
            heartbeat.join()
        if self.store.finish_job(job.name, self.id, time.time(), **outcome):
            log.info("job %s %s in %.1fs", job.name, outcome["status"], time.monotonic() - started)
        else:
            log.warning("job %s was taken over or deleted meanwhile; result dropped", job.name)
        return True

    def _heartbeat(self, name: str, stop: threading.Event) -> None:
        interval = self.config.lease_seconds / 3
        while not stop.wait(interval):
            if not self.store.renew_lease(name, self.id, time.time() + self.config.lease_seconds):
                return

    def transcribe(self, job: Job) -> dict[str, Any]:
        request = job.request
        bucket = request["OutputBucketName"]
        key = s3.output_key(job.name, request.get("OutputKey"))
        self._check_output_bucket(bucket)
        media = audio_of(
            self._read(request["Media"]["MediaFileUri"]), request, self.config.max_media_seconds
        )
        own = self._own_phrases(request.get("Settings", {}).get("VocabularyName"))
        phrases = list(dict.fromkeys([*own, *self._shared_phrases()]))
        done = pipeline.transcribe(
            job.name, self.config.account_id, media, request, self.recognizer, phrases, own
        )
        document = done.document
        try:
            self.s3.put_object(
                Bucket=bucket,
                Key=key,
                Body=json.dumps(document).encode(),
                ContentType="application/json",
            )
        except ClientError as exc:
            raise JobFailed(
                f"The transcript couldn't be written to s3://{bucket}/{key}: "
                f"{exc.response['Error'].get('Code', 'error')}."
            ) from exc
        uncovered = document["results"]["uncovered_speech_seconds"]
        log.log(
            logging.WARNING if uncovered else logging.INFO,
            "job %s: %.1fs of audio, %d channel(s), %d items, %.1fs of speech uncovered; %s",
            job.name,
            media.duration,
            len(done.channels),
            len(document["results"]["items"]),
            uncovered,
            ", ".join(f"{stage} {seconds:.1f}s" for stage, seconds in done.seconds.items()),
        )
        return {
            "status": "COMPLETED",
            "media_format": media.media_format,
            "sample_rate": media.sample_rate,
            "transcript_uri": s3.object_url(self.s3, bucket, key),
        }

    def _check_output_bucket(self, bucket: str) -> None:
        """Before any work: some S3 servers would create a mistyped bucket on the first write."""
        try:
            self.s3.head_bucket(Bucket=bucket)
        except ClientError as exc:
            raise JobFailed(
                f"The output bucket {bucket} doesn't exist or the engine can't write to it. "
                "Check OutputBucketName and the bucket's permissions."
            ) from exc

    def _read(self, uri: str) -> bytes:
        """The media's bytes, refused unread when larger than the engine takes."""
        try:
            response = self.s3.get_object(**s3.parse_uri(uri).get_args())
        except ClientError as exc:
            raise JobFailed(MEDIA_UNREADABLE.format(uri=uri)) from exc
        with response["Body"] as body:
            if response["ContentLength"] > self.config.max_media_bytes:
                raise JobFailed(
                    f"The media file is {response['ContentLength']} bytes, larger than the "
                    f"{self.config.max_media_bytes} bytes a job may be. Split it and try again."
                )
            return body.read()

    def _own_phrases(self, vocabulary_name: str | None) -> list[str]:
        """The job's vocabulary: in every window's prompt, first."""
        if not vocabulary_name:
            return []
        vocabulary = self.store.get_vocabulary(vocabulary_name)
        if vocabulary is None or vocabulary.state != "READY":
            raise JobFailed(f"The vocabulary {vocabulary_name} is no longer available.")
        return list(vocabulary.phrases)

    def _shared_phrases(self) -> tuple[str, ...]:
        """The shipped default list, if configured: each window's prompt takes from it the
        phrases that sound like what was heard there."""
        return default_phrases() if self.config.default_vocabulary else ()

    def settle_vocabulary(self, vocabulary: Vocabulary) -> None:
        """Read a pending vocabulary's phrase file: READY with its phrases, or FAILED.

        Whatever goes wrong with one vocabulary fails that vocabulary, never the worker.
        """
        try:
            location = s3.parse_uri(vocabulary.file_uri)
            body = self.s3.get_object(**location.get_args())["Body"]
            with body:  # one byte past the limit is enough to refuse an oversized file
                phrases = parse_phrases(body.read(MAX_FILE_BYTES + 1).decode("utf-8"))
        except VocabularyError as exc:
            values = {"state": "FAILED", "failure_reason": str(exc)}
        except UnicodeDecodeError:
            values = {"state": "FAILED", "failure_reason": "The vocabulary file is not UTF-8 text."}
        except Exception as exc:
            log.warning("vocabulary %s unreadable: %s", vocabulary.name, type(exc).__name__)
            reason = VOCABULARY_UNREADABLE.format(uri=vocabulary.file_uri)
            values = {"state": "FAILED", "failure_reason": reason}
        else:
            values = {"state": "READY", "phrases": json.dumps(phrases), "failure_reason": None}
        self.store.settle_vocabulary(vocabulary, time.time(), **values)
        log.info("vocabulary %s %s", vocabulary.name, values["state"])


def audio_of(data: bytes, request: dict[str, Any], max_seconds: float) -> audio.Media:
    """Decode the media and hold it to what the request declared, as AWS does."""
    split = bool(request.get("Settings", {}).get("ChannelIdentification"))
    try:
        media = audio.load(data, split_channels=split, max_seconds=max_seconds)
    except audio.MediaError as exc:
        raise JobFailed(str(exc)) from exc
    declared_format = request.get("MediaFormat")
    if declared_format and declared_format != media.media_format:
        raise JobFailed(
            f"The media format provided ({declared_format}) does not match the detected "
            f"media format ({media.media_format}). Check the media format and try again."
        )
    declared_rate = request.get("MediaSampleRateHertz")
    if declared_rate and declared_rate != media.sample_rate:
        raise JobFailed(
            f"The specified sample rate ({declared_rate} Hz) doesn't match the sample rate "
            f"detected in your input media file ({media.sample_rate} Hz)."
        )
    if split and media.channels != 2:
        raise JobFailed(
            "Channel identification needs two-channel audio; this file has "
            f"{media.channels} channel(s)."
        )
    return media
