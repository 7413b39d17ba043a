"""Operator that starts one Amazon Transcribe Medical batch job, idempotently."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException
from botocore.exceptions import ClientError, ParamValidationError

from medical_transcribe.hooks import (
    MedicalTranscriptionJobFailedError,
    TranscribeMedicalHook,
)
from medical_transcribe.naming import job_name_for
from medical_transcribe.triggers import (
    MedicalTranscriptionJobCompletedTrigger,
    job_name_from_event,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

#: Error codes for requests the service refuses as they are: retrying cannot help.
NON_RETRYABLE_ERRORS = frozenset({"BadRequestException", "ValidationException"})


class StartMedicalTranscriptionJobOperator(AwsBaseOperator[TranscribeMedicalHook]):
    """
    Start an Amazon Transcribe Medical batch job for one media file; return its name.

    Without ``job_name`` the name is the one the nightly listing gives the file (the media's
    bucket, key and current ETag, ``type``, ``specialty``, ``settings`` and
    ``content_identification_type``; a hash alone unless ``MEDICAL_TRANSCRIBE_PHI_SAFE_NAMES=0``),
    so a retried or re-run task adopts the job it started before, and the listing counts a
    file transcribed this way as transcribed.

    :param media_file_uri: ``s3://bucket/key`` of the audio. (templated)
    :param output_bucket_name: Bucket for the transcript JSON. (templated)
    :param job_name: MedicalTranscriptionJobName; derived when None. (templated)
    :param type: ``DICTATION`` or ``CONVERSATION``. (templated)
    :param specialty: Medical specialty; AWS accepts ``PRIMARYCARE``. (templated)
    :param language_code: AWS accepts ``en-US``. (templated)
    :param output_key: As AWS reads it: a key ending in ``.json`` is the transcript's own key,
        any other a folder for ``<job>.json``; default ``medical/<job>.json``. (templated)
    :param output_encryption_kms_key_id: KMS key for the transcript. (templated)
    :param kms_encryption_context: KMS encryption context map. (templated)
    :param media_format: ``wav``, ``flac``, ``mp3``, ...; detected when None. (templated)
    :param media_sample_rate_hertz: Sample rate; detected when None. (templated)
    :param settings: ``Settings`` (speaker/channel labels, alternatives, VocabularyName). (templated)
    :param content_identification_type: ``PHI`` to tag protected health information. (templated)
    :param tags: Job tags as a ``{key: value}`` mapping. (templated)
    :param wait_for_completion: Whether to wait for the job to finish. (default: True)
    :param waiter_delay: Seconds between status checks. (default: 30)
    :param waiter_max_attempts: Status checks before giving up. (default: 240)
    :param deferrable: Wait in the triggerer instead of a worker slot; jobs take minutes.
        Only matters when waiting. (default: True)
    :param aws_conn_id: The Airflow connection used for AWS credentials (also for the ETag lookup).
    :param region_name: AWS region_name. If not specified then the default boto3 behaviour is used.
    :param verify: Whether or not to verify SSL certificates.
    :param botocore_config: Configuration dictionary (key-values) for botocore client.
    """

    aws_hook_class = TranscribeMedicalHook
    template_fields: Sequence[str] = aws_template_fields(
        "media_file_uri",
        "output_bucket_name",
        "job_name",
        "type",
        "specialty",
        "language_code",
        "output_key",
        "output_encryption_kms_key_id",
        "kms_encryption_context",
        "media_format",
        "media_sample_rate_hertz",
        "settings",
        "content_identification_type",
        "tags",
    )
    template_fields_renderers: ClassVar[dict] = {
        "settings": "json",
        "tags": "json",
        "kms_encryption_context": "json",
    }

    def __init__(
        self,
        *,
        media_file_uri: str,
        output_bucket_name: str,
        job_name: str | None = None,
        type: str = "DICTATION",
        specialty: str = "PRIMARYCARE",
        language_code: str = "en-US",
        output_key: str | None = None,
        output_encryption_kms_key_id: str | None = None,
        kms_encryption_context: dict[str, str] | None = None,
        media_format: str | None = None,
        media_sample_rate_hertz: int | None = None,
        settings: dict[str, Any] | None = None,
        content_identification_type: str | None = None,
        tags: dict[str, str] | None = None,
        wait_for_completion: bool = True,
        waiter_delay: int = 30,
        waiter_max_attempts: int = 240,
        deferrable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.media_file_uri = media_file_uri
        self.output_bucket_name = output_bucket_name
        self.job_name = job_name
        self.type = type
        self.specialty = specialty
        self.language_code = language_code
        self.output_key = output_key
        self.output_encryption_kms_key_id = output_encryption_kms_key_id
        self.kms_encryption_context = kms_encryption_context
        self.media_format = media_format
        self.media_sample_rate_hertz = media_sample_rate_hertz
        self.settings = settings
        self.content_identification_type = content_identification_type
        self.tags = tags
        self.wait_for_completion = wait_for_completion
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts
        self.deferrable = deferrable

    def execute(self, context: Context) -> str:
        name = self.job_name or self._derive_job_name()
        try:
            job = self.hook.start_job(**self._request(name))
        except ClientError as error:
            # Refused requests (unknown vocabulary, invalid settings) fail the same way on
            # every retry; throttling and quota errors are retried inside the hook.
            if error.response["Error"]["Code"] in NON_RETRYABLE_ERRORS:
                raise AirflowFailException(f"{name} was refused: {error}") from error
            raise
        except ParamValidationError as error:
            raise AirflowFailException(f"{name}: invalid request: {error}") from error
        status = job.get("TranscriptionJobStatus")
        self.log.info("Medical transcription job %s is %s.", name, status)
        if not self.wait_for_completion or status == "COMPLETED":
            return name
        if status == "FAILED":
            raise MedicalTranscriptionJobFailedError(name, job.get("FailureReason"))
        if self.deferrable:
            self.defer(
                trigger=MedicalTranscriptionJobCompletedTrigger(
                    job_name=name,
                    waiter_delay=self.waiter_delay,
                    waiter_max_attempts=self.waiter_max_attempts,
                    aws_conn_id=self.aws_conn_id,
                    region_name=self.region_name,
                    verify=self.verify,
                    botocore_config=self.botocore_config,
                ),
                method_name="execute_complete",
            )
        else:
            self.hook.wait_for_job(name, self.waiter_delay, self.waiter_max_attempts)
        return name

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        name = job_name_from_event(event, self.hook)
        self.log.info("Medical transcription job %s complete.", name)
        return name

    def _derive_job_name(self) -> str:
        s3_hook = S3Hook(
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            config=self.botocore_config,
        )
        bucket, key = s3_hook.parse_s3_url(self.media_file_uri)
        head = s3_hook.head_object(key=key, bucket_name=bucket)
        if head is None:
            raise AirflowException(f"Media {self.media_file_uri} does not exist.")
        return job_name_for(
            bucket,
            key,
            head["ETag"],
            type=self.type,
            specialty=self.specialty,
            settings=self.settings,
            content_identification_type=self.content_identification_type,
        )

    def _request(self, name: str) -> dict[str, Any]:
        request = {
            "MedicalTranscriptionJobName": name,
            "LanguageCode": self.language_code,
            "MediaSampleRateHertz": (
                int(self.media_sample_rate_hertz)
                if self.media_sample_rate_hertz is not None
                else None
            ),
            "MediaFormat": self.media_format,
            "Media": {"MediaFileUri": self.media_file_uri},
            "OutputBucketName": self.output_bucket_name,
            "OutputKey": self.output_key,
            "OutputEncryptionKMSKeyId": self.output_encryption_kms_key_id,
            "KMSEncryptionContext": self.kms_encryption_context,
            "Settings": self.settings,
            "ContentIdentificationType": self.content_identification_type,
            "Specialty": self.specialty,
            "Type": self.type,
            "Tags": [{"Key": k, "Value": v} for k, v in self.tags.items()] if self.tags else None,
        }
        return {k: v for k, v in request.items() if v is not None}
