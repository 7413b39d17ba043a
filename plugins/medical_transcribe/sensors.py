"""Sensor that waits for a medical transcription job started elsewhere (e.g. a mapped start task)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.sensors.base_aws import AwsBaseSensor
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.triggers.base import StartTriggerArgs

from medical_transcribe.hooks import (
    MedicalTranscriptionJobFailedError,
    TranscribeMedicalHook,
)
from medical_transcribe.triggers import (
    MedicalTranscriptionJobCompletedTrigger,
    job_name_from_event,
)

if TYPE_CHECKING:
    from airflow.sdk import Context


class MedicalTranscriptionJobSensor(AwsBaseSensor[TranscribeMedicalHook]):
    """
    Wait until a medical transcription job is COMPLETED; fail with its FailureReason if FAILED.

    :param job_name: The MedicalTranscriptionJobName. (templated)
    :param deferrable: Wait in the triggerer instead of a worker slot. (default: True)
    :param poke_interval: Seconds between status checks. (default: 30)
    :param max_retries: Status checks in deferrable mode before giving up. (default: 240)
    :param start_from_trigger: Deferrable only: the scheduler defers the task straight to the
        triggerer, so no worker process runs until the job ended; ``job_name`` must then be a
        template (an XComArg cannot reach the triggerer). (default: False)
    :param aws_conn_id: The Airflow connection used for AWS credentials.
    :param region_name: AWS region_name. If not specified then the default boto3 behaviour is used.
    :param verify: Whether or not to verify SSL certificates.
    :param botocore_config: Configuration dictionary (key-values) for botocore client.
    """

    aws_hook_class = TranscribeMedicalHook
    template_fields: Sequence[str] = aws_template_fields("job_name")
    ui_color = "#66c3ff"

    def __init__(
        self,
        *,
        job_name: str,
        deferrable: bool = True,
        poke_interval: float = 30,
        max_retries: int = 240,
        start_from_trigger: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        self.job_name = job_name
        self.deferrable = deferrable
        self.max_retries = max_retries
        if deferrable and start_from_trigger:
            self.start_from_trigger = True
            self.start_trigger_args = StartTriggerArgs(
                trigger_cls=(
                    f"{MedicalTranscriptionJobCompletedTrigger.__module__}."
                    f"{MedicalTranscriptionJobCompletedTrigger.__qualname__}"
                ),
                trigger_kwargs=self._trigger_kwargs(),
                next_method="execute_complete",
                next_kwargs=None,
                timeout=None,
            )

    def execute(self, context: Context) -> None:
        if not self.deferrable:
            super().execute(context=context)
        elif not self.poke(context):
            self.defer(
                trigger=MedicalTranscriptionJobCompletedTrigger(**self._trigger_kwargs()),
                method_name="execute_complete",
            )

    def _trigger_kwargs(self) -> dict[str, Any]:
        return {
            "job_name": self.job_name,
            "waiter_delay": int(self.poke_interval),
            "waiter_max_attempts": self.max_retries,
            "aws_conn_id": self.aws_conn_id,
            "region_name": self.region_name,
            "verify": self.verify,
            "botocore_config": self.botocore_config,
        }

    def poke(self, context: Context) -> bool:
        job = self.hook.get_job(self.job_name)
        status = job["TranscriptionJobStatus"]
        self.log.info("Medical transcription job %s is %s.", self.job_name, status)
        if status == "FAILED":
            raise MedicalTranscriptionJobFailedError(self.job_name, job.get("FailureReason"))
        return status == "COMPLETED"

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> None:
        self.log.info(
            "Medical transcription job %s complete.", job_name_from_event(event, self.hook)
        )
