"""How many of a night's jobs were in flight at once, from the jobs as the service lists them.

The pool bounds the jobs Airflow has handed the service: a file holds its slot from before its
``start`` task creates the job until its ``wait`` task has seen the job end. So a job is in
flight from its ``CreationTime`` (queued already counts: the service has accepted it) to its
``CompletionTime``, an interval inside its slot's; more jobs in flight than slots means some
job ran without one. ``StartTime`` (a worker took it) would leave the queued time out and let a
leak hide behind a busy engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any


def max_in_flight(jobs: Iterable[Mapping[str, Any]]) -> int:
    """The most jobs in flight at once, over jobs shaped as Get/ListMedicalTranscriptionJob(s)
    returns them. A job not ended yet stays in flight; a job ending at the instant another is
    created does not overlap it (a slot handed on)."""
    events: list[tuple[datetime, int]] = []
    for job in jobs:
        events.append((job["CreationTime"], 1))
        if ended := job.get("CompletionTime"):
            events.append((ended, -1))
    in_flight = most = 0
    for _, change in sorted(events):  # at one instant, -1 sorts before +1
        in_flight += change
        most = max(most, in_flight)
    return most
