"""The Transcribe Medical operations: validated requests in, model-shaped results out.

Each public method is one API operation (snake_case of its name); the wire layer
(``api.py``) only decodes, dispatches and encodes.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .config import EngineConfig
from .protocol import bad_request, conflict, limit_exceeded, not_found
from .s3 import output_key, parse_uri
from .store import DuplicateName, Job, JobStore, QueueFull, Vocabulary

DEFAULT_PAGE_SIZE = 5
SUPPORTED_LANGUAGE = "en-US"
#: Requests this engine cannot honour yet: refused by name rather than ignored.
UNSUPPORTED_MEMBERS = (
    "OutputEncryptionKMSKeyId",
    "KMSEncryptionContext",
)

JOB_NOT_FOUND = (
    "The requested job couldn't be found. Check the job name and try your request again."
)
VOCABULARY_NOT_FOUND = (
    "The requested vocabulary couldn't be found. Check the vocabulary name and try again."
)


def _time(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if epoch is not None else None


def _page(params: dict[str, Any]) -> tuple[int, int]:
    token = params.get("NextToken")
    try:
        offset = base64.urlsafe_b64decode(token.encode()).decode() if token else "0"
    except (ValueError, binascii.Error):
        offset = ""
    # Only tokens this engine could have issued: a plain offset the database can hold.
    if not re.fullmatch(r"[0-9]{1,9}", offset):
        raise bad_request("The NextToken is not valid. Use the token a previous call returned.")
    return int(offset), params.get("MaxResults", DEFAULT_PAGE_SIZE)


def _next_token(offset: int, limit: int, rows: list[Any]) -> str | None:
    if len(rows) <= limit:
        return None
    return base64.urlsafe_b64encode(str(offset + limit).encode()).decode()


def _check_pairs(settings: dict[str, Any]) -> None:
    """Settings AWS only takes together, or never together. Alternatives combine with
    every other setting, as AWS documents no exclusion for them."""
    for show, count, meaning in (
        ("ShowSpeakerLabels", "MaxSpeakerLabels", "the most speakers expected (2-30)"),
        ("ShowAlternatives", "MaxAlternatives", "the most readings wanted per segment (2-10)"),
    ):
        if bool(settings.get(show)) != (count in settings):
            raise bad_request(
                f"{show} and {count} go together: set {show} to true "
                f"and {count} to {meaning}, or neither."
            )
    if settings.get("ShowSpeakerLabels") and settings.get("ChannelIdentification"):
        raise bad_request(
            "ShowSpeakerLabels and ChannelIdentification can't be used in the same request. "
            "Choose one of them."
        )


class TranscribeBackend:
    def __init__(
        self, store: JobStore, config: EngineConfig, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock

    # --- jobs -------------------------------------------------------------------------

    def start_medical_transcription_job(self, params: dict[str, Any]) -> dict[str, Any]:
        self._check_supported(params)
        vocabulary_name = params.get("Settings", {}).get("VocabularyName")
        if vocabulary_name:
            vocabulary = self.store.get_vocabulary(vocabulary_name)
            if vocabulary is None:
                raise bad_request(VOCABULARY_NOT_FOUND)
            if vocabulary.state != "READY":
                raise bad_request(
                    f"The vocabulary {vocabulary_name} is {vocabulary.state}; "
                    "only a READY vocabulary can be used."
                )
        name = params["MedicalTranscriptionJobName"]
        limit = self.config.max_active_jobs
        try:
            job = self.store.create_job(name, params, self.clock(), max_active=limit)
        except DuplicateName as exc:
            raise conflict(
                "The requested job name already exists. Use a different job name."
            ) from exc
        except QueueFull as exc:
            raise limit_exceeded(
                f"You have {limit} jobs queued or in progress, the limit of this engine. "
                "Wait for some to finish and try again."
            ) from exc
        return {"MedicalTranscriptionJob": self._describe(job)}

    def _check_supported(self, params: dict[str, Any]) -> None:
        if params["LanguageCode"] != SUPPORTED_LANGUAGE:
            raise bad_request(
                f"The language code {params['LanguageCode']} isn't supported for medical "
                f"transcription. Use {SUPPORTED_LANGUAGE}."
            )
        settings = params.get("Settings", {})
        for member in UNSUPPORTED_MEMBERS:
            if member in params:
                raise bad_request(
                    f"{member} is not supported by this engine. Remove it and try again."
                )
        _check_pairs(settings)
        uri = params["Media"].get("MediaFileUri")
        if not uri:
            raise bad_request("Media.MediaFileUri is required.")
        try:
            parse_uri(uri)
        except ValueError as exc:
            raise bad_request(f"The media file URI {uri} is not a valid S3 URI: {exc}.") from exc
        try:
            output_key(params["MedicalTranscriptionJobName"], params.get("OutputKey"))
        except ValueError as exc:
            raise bad_request(f"The OutputKey can't be used: {exc}.") from exc

    def get_medical_transcription_job(self, params: dict[str, Any]) -> dict[str, Any]:
        job = self.store.get_job(params["MedicalTranscriptionJobName"])
        if job is None:
            raise bad_request(JOB_NOT_FOUND)
        return {"MedicalTranscriptionJob": self._describe(job)}

    def list_medical_transcription_jobs(self, params: dict[str, Any]) -> dict[str, Any]:
        offset, limit = _page(params)
        rows = self.store.list_jobs(
            status=params.get("Status"),
            name_contains=params.get("JobNameContains"),
            offset=offset,
            limit=limit + 1,
        )
        summaries = [self._summary(job) for job in rows[:limit]]
        return {
            "Status": params.get("Status"),
            "NextToken": _next_token(offset, limit, rows),
            "MedicalTranscriptionJobSummaries": summaries,
        }

    def delete_medical_transcription_job(self, params: dict[str, Any]) -> dict[str, Any]:
        if not self.store.delete_job(params["MedicalTranscriptionJobName"]):
            raise bad_request(JOB_NOT_FOUND)
        return {}

    def _describe(self, job: Job) -> dict[str, Any]:
        request = job.request
        return {
            "MedicalTranscriptionJobName": job.name,
            "TranscriptionJobStatus": job.status,
            "LanguageCode": request["LanguageCode"],
            "MediaSampleRateHertz": job.sample_rate,
            "MediaFormat": job.media_format,
            "Media": request["Media"],
            "Transcript": {"TranscriptFileUri": job.transcript_uri} if job.transcript_uri else {},
            "StartTime": _time(job.started_at),
            "CreationTime": _time(job.created_at),
            "CompletionTime": _time(job.completed_at),
            "FailureReason": job.failure_reason,
            "Settings": request.get("Settings"),
            "Specialty": request["Specialty"],
            "Type": request["Type"],
            "Tags": request.get("Tags"),
            "ContentIdentificationType": request.get("ContentIdentificationType"),
        }

    def _summary(self, job: Job) -> dict[str, Any]:
        return {
            "MedicalTranscriptionJobName": job.name,
            "CreationTime": _time(job.created_at),
            "StartTime": _time(job.started_at),
            "CompletionTime": _time(job.completed_at),
            "LanguageCode": job.request["LanguageCode"],
            "TranscriptionJobStatus": job.status,
            "FailureReason": job.failure_reason,
            "OutputLocationType": "CUSTOMER_BUCKET",
            "Specialty": job.request["Specialty"],
            "Type": job.request["Type"],
            "ContentIdentificationType": job.request.get("ContentIdentificationType"),
        }

    # --- vocabularies -----------------------------------------------------------------

    def create_medical_vocabulary(self, params: dict[str, Any]) -> dict[str, Any]:
        self._check_vocabulary_request(params)
        try:
            vocabulary = self.store.create_vocabulary(
                params["VocabularyName"],
                params["LanguageCode"],
                params["VocabularyFileUri"],
                self.clock(),
            )
        except DuplicateName as exc:
            raise conflict(
                "The requested vocabulary name already exists. Use a different vocabulary name."
            ) from exc
        return self._vocabulary(vocabulary, with_reason=True)

    def update_medical_vocabulary(self, params: dict[str, Any]) -> dict[str, Any]:
        self._check_vocabulary_request(params)
        name = params["VocabularyName"]
        updated = self.store.update_vocabulary(
            name,
            language_code=params["LanguageCode"],
            file_uri=params["VocabularyFileUri"],
            state="PENDING",
            failure_reason=None,
            updated_at=self.clock(),
        )
        vocabulary = self.store.get_vocabulary(name)
        if not updated or vocabulary is None:
            raise not_found(VOCABULARY_NOT_FOUND)
        return self._vocabulary(vocabulary, with_reason=False)

    def _check_vocabulary_request(self, params: dict[str, Any]) -> None:
        if params["LanguageCode"] != SUPPORTED_LANGUAGE:
            raise bad_request(f"Medical vocabularies support only {SUPPORTED_LANGUAGE}.")
        try:
            parse_uri(params["VocabularyFileUri"])
        except ValueError as exc:
            raise bad_request(f"VocabularyFileUri must name an S3 object: {exc}.") from exc

    def get_medical_vocabulary(self, params: dict[str, Any]) -> dict[str, Any]:
        vocabulary = self.store.get_vocabulary(params["VocabularyName"])
        if vocabulary is None:
            raise bad_request(VOCABULARY_NOT_FOUND)
        return {
            **self._vocabulary(vocabulary, with_reason=True),
            "DownloadUri": vocabulary.file_uri,
        }

    def list_medical_vocabularies(self, params: dict[str, Any]) -> dict[str, Any]:
        offset, limit = _page(params)
        rows = self.store.list_vocabularies(
            state=params.get("StateEquals"),
            name_contains=params.get("NameContains"),
            offset=offset,
            limit=limit + 1,
        )
        return {
            "Status": params.get("StateEquals"),
            "NextToken": _next_token(offset, limit, rows),
            "Vocabularies": [
                self._vocabulary(vocabulary, with_reason=False) for vocabulary in rows[:limit]
            ],
        }

    def delete_medical_vocabulary(self, params: dict[str, Any]) -> dict[str, Any]:
        if not self.store.delete_vocabulary(params["VocabularyName"]):
            raise not_found(VOCABULARY_NOT_FOUND)
        return {}

    @staticmethod
    def _vocabulary(vocabulary: Vocabulary, *, with_reason: bool) -> dict[str, Any]:
        described = {
            "VocabularyName": vocabulary.name,
            "LanguageCode": vocabulary.language_code,
            "VocabularyState": vocabulary.state,
            "LastModifiedTime": _time(vocabulary.updated_at),
        }
        if with_reason:
            described["FailureReason"] = vocabulary.failure_reason
        return described
