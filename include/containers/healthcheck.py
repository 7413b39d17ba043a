"""Container healthchecks without curl (the image is python:3.11-slim).

``healthcheck.py URL``: healthy when the URL answers 200.
``healthcheck.py --engine-worker``: healthy when the job store answers and at least one
engine worker process is alive (a worker has no HTTP port to ask).
"""

from __future__ import annotations

import os
import sys

from containers.shared import http_ok


def engine_worker_ok() -> bool:
    import psutil
    import sqlalchemy as sa

    with sa.create_engine(os.environ["MEDSCRIBE_DATABASE_URL"]).connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    # `python -m medscribe worker` supervises worker processes it starts with
    # multiprocessing's spawn method, and replaces any that die.
    supervisors = [
        process
        for process in psutil.process_iter(["cmdline"])
        if process.info["cmdline"] and process.info["cmdline"][1:4] == ["-m", "medscribe", "worker"]
    ]
    return any(
        "--multiprocessing-fork" in child.cmdline() and child.status() != psutil.STATUS_ZOMBIE
        for supervisor in supervisors
        for child in supervisor.children()
    )


def main(argv: list[str]) -> int:
    if argv == ["--engine-worker"]:
        healthy = engine_worker_ok()
    elif len(argv) == 1:
        healthy = http_ok(argv[0])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
