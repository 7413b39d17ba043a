"""Hook for Amazon Transcribe Medical batch jobs (or any engine speaking its wire protocol)."""

from __future__ import annotations

import logging
from typing import Any

from airflow.providers.amazon.aws.exceptions import WaiterTerminalFailure
from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.providers.amazon.aws.utils.waiter_with_logging import wait
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException
from botocore.config import Config
from botocore.exceptions import ClientError
from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

#: botocore's own MedicalTranscriptionJobCompleted waiter: COMPLETED succeeds, FAILED is terminal.
JOB_COMPLETE_WAITER = "medical_transcription_job_completed"
# JMESPath queries logged while waiting; FailureReason makes a failure explain itself.
JOB_STATUS_QUERIES = [
    "MedicalTranscriptionJob.TranscriptionJobStatus",
    "MedicalTranscriptionJob.FailureReason",
]
#: How the service answers a job or vocabulary name it does not know (AWS says BadRequest).
UNKNOWN_NAME_ERRORS = frozenset({"BadRequestException", "NotFoundException"})
# botocore's standard mode backs off on ThrottlingException; the default legacy mode barely does.
_DEFAULT_RETRIES = {"mode": "standard", "max_attempts": 10}


class MedicalTranscriptionJobFailedError(AirflowFailException):
    """A job reached FAILED; retrying the task cannot change that, so fail without retries."""

    def __init__(self, job_name: str, reason: str | None) -> None:
        super().__init__(
            f"Medical transcription job {job_name} failed: {reason or 'no FailureReason given'}"
        )


def _is_limit_exceeded(error: BaseException) -> bool:
    return (
        isinstance(error, ClientError)
        and error.response["Error"]["Code"] == "LimitExceededException"
    )


class TranscribeMedicalHook(AwsBaseHook):
    """
    Interact with Amazon Transcribe Medical through ``boto3.client("transcribe")``.

    The client retries in botocore's ``standard`` mode unless the connection or ``config`` sets
    another mode. ``LimitExceededException`` (too many concurrent jobs) is not retried by botocore
    in any mode, so :meth:`start_job` backs off on it itself with jittered exponential waits:
    a nightly fan-out of hundreds of mapped tasks would otherwise fail in a burst.

    :param quota_retry_attempts: Attempts to start a job while the service reports
        ``LimitExceededException``.
    :param quota_retry_max_delay: Upper bound in seconds of one wait between those attempts.
    """

    def __init__(
        self,
        *args: Any,
        quota_retry_attempts: int = 8,
        quota_retry_max_delay: float = 120.0,
        **kwargs: Any,
    ) -> None:
        kwargs["client_type"] = "transcribe"
        super().__init__(*args, **kwargs)
        self.quota_retry_attempts = quota_retry_attempts
        self.quota_retry_max_delay = quota_retry_max_delay

    @property
    def config(self) -> Config:
        """Connection/hook botocore config, with retries defaulting to standard mode."""
        config = super().config
        return config.merge(Config(retries={**_DEFAULT_RETRIES, **(config.retries or {})}))

    def start_job(self, **request: Any) -> dict[str, Any]:
        """
        Start a job from StartMedicalTranscriptionJob keyword arguments; return its description.

        A name that already exists means an earlier attempt got this far, so that job is
        adopted rather than started again, unless it transcribes a different file.
        """
        retrying = Retrying(
            retry=retry_if_exception(_is_limit_exceeded),
            wait=wait_random_exponential(multiplier=1, max=self.quota_retry_max_delay),
            stop=stop_after_attempt(self.quota_retry_attempts),
            before_sleep=before_sleep_log(self.log, logging.WARNING),
            reraise=True,
        )
        try:
            response = retrying(self.conn.start_medical_transcription_job, **request)
        except self.conn.exceptions.ConflictException:
            return self._adopt(request)
        return response["MedicalTranscriptionJob"]

    def _adopt(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["MedicalTranscriptionJobName"]
        job = self.get_job(name)
        existing_uri = job.get("Media", {}).get("MediaFileUri")
        if existing_uri != request["Media"]["MediaFileUri"]:
            raise AirflowException(
                f"Job name {name} is taken by a job for {existing_uri}, "
                f"not {request['Media']['MediaFileUri']}."
            )
        self.log.info(
            "Job %s already exists (%s); adopting it.",
            name,
            job.get("TranscriptionJobStatus"),
        )
        return job

    def get_job(self, name: str) -> dict[str, Any]:
        """Return the ``MedicalTranscriptionJob`` description of one job."""
        return self.conn.get_medical_transcription_job(MedicalTranscriptionJobName=name)[
            "MedicalTranscriptionJob"
        ]

    def find_job(self, name: str) -> dict[str, Any] | None:
        """The job's description, or None when the service knows no job of that name."""
        try:
            return self.get_job(name)
        except ClientError as error:
            if error.response["Error"]["Code"] in UNKNOWN_NAME_ERRORS:
                return None
            raise

    def job_names(self, status: str) -> set[str]:
        """Names of every job in ``status``, page by page (ListMedicalTranscriptionJobs)."""
        names: set[str] = set()
        request: dict[str, Any] = {"Status": status, "MaxResults": 100}
        while True:
            page = self.conn.list_medical_transcription_jobs(**request)
            names.update(
                job["MedicalTranscriptionJobName"]
                for job in page["MedicalTranscriptionJobSummaries"]
            )
            if not page.get("NextToken"):
                return names
            request["NextToken"] = page["NextToken"]

    def wait_for_job(self, name: str, waiter_delay: int, waiter_max_attempts: int) -> None:
        """Block until the job completes, logging its status; raise with FailureReason if it fails."""
        try:
            wait(
                waiter=self.get_waiter(JOB_COMPLETE_WAITER),
                waiter_delay=waiter_delay,
                waiter_max_attempts=waiter_max_attempts,
                args={"MedicalTranscriptionJobName": name},
                failure_message=f"Medical transcription job {name} failed",
                status_message=f"Medical transcription job {name} status",
                status_args=JOB_STATUS_QUERIES,
            )
        except WaiterTerminalFailure as error:
            job = error.last_response.get("MedicalTranscriptionJob", {})
            raise MedicalTranscriptionJobFailedError(name, job.get("FailureReason")) from error
