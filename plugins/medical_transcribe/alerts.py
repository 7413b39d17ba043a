"""Who hears of a failed night: Airflow's own notifiers, chosen by two settings.

``MEDICAL_TRANSCRIBE_ALERT_EMAIL`` (comma-separated addresses; the SMTP connection
``smtp_default``) and ``MEDICAL_TRANSCRIBE_ALERT_SLACK_CONN_ID`` (a Slack incoming-webhook
connection; needs ``apache-airflow-providers-slack``). The run's failure is logged either way.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

EMAIL = "MEDICAL_TRANSCRIBE_ALERT_EMAIL"
SLACK_CONN_ID = "MEDICAL_TRANSCRIBE_ALERT_SLACK_CONN_ID"
SUBJECT = "Transcription run {{ dag_run.run_id }} failed"
MESSAGE = (
    "Nightly transcription run {{ dag_run.run_id }} of {{ dag.dag_id }} failed: {{ reason }}. "
    "The failed task names the files and reasons; the flatten task links the run report."
)


def log_failure(context: Mapping[str, Any]) -> None:
    log.error("Run %s failed: %s", context["dag_run"].run_id, context.get("reason"))


def failure_callbacks(environ: Mapping[str, str] = os.environ) -> list[Callable[..., Any]]:
    """The DAG's ``on_failure_callback`` list, from the settings present in ``environ``."""
    callbacks: list[Callable[..., Any]] = [log_failure]
    if environ.get(EMAIL):
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        to = [address.strip() for address in environ[EMAIL].split(",")]
        callbacks.append(SmtpNotifier(to=to, subject=SUBJECT, html_content=MESSAGE))
    if environ.get(SLACK_CONN_ID):
        from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

        callbacks.append(
            SlackWebhookNotifier(slack_webhook_conn_id=environ[SLACK_CONN_ID], text=MESSAGE)
        )
    return callbacks
