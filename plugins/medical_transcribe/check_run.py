"""The night's verdict: a run whose files failed ends failed, naming them."""

from __future__ import annotations

import logging
from typing import Any

from airflow.providers.common.compat.sdk import AirflowFailException

log = logging.getLogger(__name__)


def judge(summary: dict[str, Any], max_failed_fraction: float) -> str:
    """
    Fail the run when more than ``max_failed_fraction`` of its files failed, naming each
    failed job; otherwise return a one-line account of the run.

    The log gets one short line per failed job with its reason, and the exception leads with
    the names: Airflow's log view does not wrap, and in one long message the names an
    operator looks for would be cut off.
    """
    files, failed = summary.get("files", 0), summary.get("failed", {})
    account = (
        f"{summary.get('completed', 0)} transcribed, {len(failed)} failed, "
        f"{sum(summary.get('skipped', {}).values())} skipped"
    )
    if failed and len(failed) / files > max_failed_fraction:
        log.error("%s: more than max_failed_fraction=%g", account, max_failed_fraction)
        for name, reason in failed.items():
            log.error("failed %s: %s", name, reason)
        log.error("run report: %s", summary["report"])
        raise AirflowFailException(f"Failed: {', '.join(failed)} ({len(failed)} of {files})")
    return account
