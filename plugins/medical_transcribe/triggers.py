"""Trigger that waits, in the triggerer, for a medical transcription job to finish."""

from __future__ import annotations

from asyncio import sleep
from collections.abc import AsyncIterator
from typing import Any

from airflow.providers.amazon.aws.triggers.base import AwsBaseWaiterTrigger
from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.providers.common.compat.sdk import AirflowException, conf
from airflow.triggers.base import TriggerEvent

from medical_transcribe.hooks import (
    JOB_COMPLETE_WAITER,
    JOB_STATUS_QUERIES,
    MedicalTranscriptionJobFailedError,
    TranscribeMedicalHook,
)

#: Seconds the scheduler may take, beyond the worker's delay, to read a finished task's event.
SCHEDULER_LAG_SECONDS = 5


def defer_settle_seconds() -> int:
    """
    Seconds after a deferral until the scheduler has surely read that the task's process ended.

    Airflow's task supervisor notices the deferred process's exit up to ``[workers]
    min_heartbeat_interval`` late, and the scheduler reads the executor's event on a later
    loop. A task resumed before then is failed by that stale event and retried
    (apache/airflow#72716, open in Airflow 3.3.2).
    """
    return conf.getint("workers", "min_heartbeat_interval", fallback=5) + SCHEDULER_LAG_SECONDS


class MedicalTranscriptionJobCompletedTrigger(AwsBaseWaiterTrigger):
    """
    Fire when a medical transcription job is COMPLETED (success) or FAILED (error).

    The error event's ``message`` carries the job's status and FailureReason, because the
    waiter's status queries include them. The first check comes one ``waiter_delay`` after
    the deferral, and no sooner than :func:`defer_settle_seconds`.

    :param job_name: The MedicalTranscriptionJobName.
    :param waiter_delay: Seconds between status checks. (default: 30)
    :param waiter_max_attempts: Status checks before giving up. (default: 240)
    :param aws_conn_id: The Airflow connection used for AWS credentials.
    :param region_name: The AWS region where the job runs.
    :param verify: Whether or not to verify SSL certificates.
    :param botocore_config: Configuration dictionary (key-values) for botocore client.
    """

    aws_hook_class = TranscribeMedicalHook

    def __init__(
        self,
        *,
        job_name: str,
        waiter_delay: int = 30,
        waiter_max_attempts: int = 240,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict | None = None,
    ) -> None:
        super().__init__(
            **self._for_job(job_name),
            waiter_name=JOB_COMPLETE_WAITER,
            status_queries=JOB_STATUS_QUERIES,
            return_key="job_name",
            waiter_delay=waiter_delay,
            waiter_max_attempts=waiter_max_attempts,
            aws_conn_id=aws_conn_id,
            region_name=region_name,
            verify=verify,
            botocore_config=botocore_config,
        )
        self.job_name = job_name

    @staticmethod
    def _for_job(job_name: str) -> dict[str, Any]:
        return {
            "serialized_fields": {"job_name": job_name},
            "waiter_args": {"MedicalTranscriptionJobName": job_name},
            "failure_message": f"Medical transcription job {job_name} failed",
            "status_message": f"Medical transcription job {job_name} status",
            "return_value": job_name,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """
        Wait before the first check, then check as the provider does.

        A task started from the triggerer has its job name rendered only now, in place. A
        sensor that deferred from a worker checked just before, and the provider's waiter
        checks at once: a job done meanwhile would resume the task before the scheduler has
        read its deferral's end, and Airflow would retry it.
        """
        vars(self).update(self._for_job(self.job_name))
        await sleep(max(self.waiter_delay, defer_settle_seconds()))
        async for event in super().run():
            yield event


def job_name_from_event(event: dict[str, Any] | None, hook: TranscribeMedicalHook) -> str:
    """
    Return the job name from the trigger's success event; raise otherwise.

    A job that FAILED raises without retries (a retry cannot change it); anything else, such
    as the waiter giving up on a job still running, raises an error the task may retry.
    """
    validated_event = validate_execute_complete_event(event)
    name = validated_event["job_name"]
    if validated_event["status"] != "success":
        job = hook.get_job(name)
        if job["TranscriptionJobStatus"] == "FAILED":
            raise MedicalTranscriptionJobFailedError(name, job.get("FailureReason"))
        raise AirflowException(
            f"Medical transcription job did not complete: {validated_event['message']}"
        )
    return name
