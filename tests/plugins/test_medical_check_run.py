"""The run's own judgement, without Airflow."""

from __future__ import annotations

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from medical_transcribe.check_run import judge

SUMMARY = {
    "files": 4,
    "completed": 3,
    "failed": {"media-1a2b": "The media file could not be decoded."},
    "skipped": {"not_audio": 1, "already_transcribed": 0, "failed_before": 0},
    "report": "s3://out/tables/run_reports/run_date=2026-11-25/r.html",
}


def test_any_failure_fails_the_run_naming_the_file_and_reason(caplog):
    with pytest.raises(AirflowFailException) as raised:
        judge(SUMMARY, 0)
    # The names come first in the message: the UI cuts a long line off at its right edge.
    assert str(raised.value) == "Failed: media-1a2b (1 of 4)"
    # Each on a line of its own in the task log, with its reason and the report.
    assert caplog.messages == [
        "3 transcribed, 1 failed, 1 skipped: more than max_failed_fraction=0",
        "failed media-1a2b: The media file could not be decoded.",
        f"run report: {SUMMARY['report']}",
    ]


def test_max_failed_fraction_tolerates_that_share():
    assert judge(SUMMARY, 0.25) == "3 transcribed, 1 failed, 1 skipped"
    with pytest.raises(AirflowFailException):
        judge(SUMMARY, 0.24)
    assert judge({**SUMMARY, "failed": {}, "completed": 4}, 0).startswith("4 transc")
