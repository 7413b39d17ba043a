"""The "Run report" button on a run's tasks in the Airflow UI."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperatorLink

#: The task that writes the report, and the XCom key it leaves the report's URL under.
REPORT_TASK = "flatten"
REPORT_URL_KEY = "report_url"


class RunReportLink(BaseOperatorLink):
    """Opens the run's HTML report (a signed S3 URL, valid for 7 days)."""

    name = "Run report"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        # Airflow 3 resolves links on the worker when the task ends, with the running
        # task instance as ``ti_key``, and stores the result for the UI.
        return ti_key.xcom_pull(task_ids=REPORT_TASK, key=REPORT_URL_KEY) or ""
