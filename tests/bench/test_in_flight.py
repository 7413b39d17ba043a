"""The jobs-in-flight count the cluster night and the cluster tests hold against the pool."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bench.in_flight import max_in_flight

MIDNIGHT = datetime(2026, 1, 1, tzinfo=UTC)


def job(created: float, completed: float | None) -> dict[str, Any]:
    at = lambda s: MIDNIGHT + timedelta(seconds=s)  # noqa: E731
    return {"CreationTime": at(created), "CompletionTime": at(completed) if completed else None}


def test_overlapping_jobs_count_together_and_a_slot_handed_on_does_not() -> None:
    # Two slots: the third job starts the instant the first ends.
    jobs = [job(0, 10), job(1, 12), job(10, 20), job(12.5, 13)]
    assert max_in_flight(jobs) == 2


def test_one_job_too_many_is_seen() -> None:
    jobs = [job(0, 10), job(1, 12), job(9.99, 20)]
    assert max_in_flight(jobs) == 3


def test_a_job_not_ended_stays_in_flight() -> None:
    assert max_in_flight([job(0, None), job(100, 110), job(200, 210)]) == 2


def test_no_jobs() -> None:
    assert max_in_flight([]) == 0
