"""The job store's claiming rules, on SQLite and on a real PostgreSQL server.

PostgreSQL is Debian's, started here on a free loopback port (``devstack.cluster.postgres``). There
claims take ``FOR UPDATE SKIP LOCKED``: workers on many hosts never take the same job and
never queue behind a job another worker is claiming.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import pytest
import sqlalchemy as sa
from wire import active_jobs

from devstack import local_stack
from devstack.cluster.postgres import Server, own, shut_down
from medscribe.config import EngineConfig
from medscribe.store import DuplicateName, JobStore, QueueFull, jobs
from medscribe.worker import Worker

#: How long a test waits for something that takes a fraction of a second on an idle machine.
CEILING = 120.0


class RunningPostgres:
    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="medscribe-pg-"))
        own(self.folder)
        self.server = Server(self.folder / "data", self.folder / "run", local_stack.free_port())
        self.password = secrets.token_hex(16)
        self.server.initdb("medscribe", self.password)
        self.process: subprocess.Popen | None = None
        self.databases = 0

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.server.command(listen="127.0.0.1"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        local_stack.wait_until(self.ready, "PostgreSQL", 60, self.process)

    def ready(self) -> bool:
        check = ["pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.server.port)]
        return subprocess.run(check).returncode == 0

    def stop(self) -> None:
        assert self.process is not None
        shut_down(self.process.pid)
        self.process.wait()

    def new_database(self) -> str:
        """A URL of an empty database, so each test starts clean."""
        self.databases += 1
        name = f"jobs{self.databases}"
        self.server.psql("medscribe", "postgres", f"CREATE DATABASE {name}")
        return (
            f"postgresql+psycopg2://medscribe:{self.password}@127.0.0.1:{self.server.port}/{name}"
        )


@pytest.fixture(scope="module")
def postgres() -> Iterator[RunningPostgres]:
    running = RunningPostgres()
    running.start()
    yield running
    running.stop()
    shutil.rmtree(running.folder, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path) -> JobStore:
    if request.param == "sqlite":
        return JobStore(f"sqlite:///{tmp_path / 'jobs.db'}")
    return JobStore(request.getfixturevalue("postgres").new_database())


def test_stale_worker_cannot_finish_a_job_taken_over(store):
    store.create_job("once", {"Media": {}}, now=0.0)
    assert store.claim_job("worker-a", now=1.0, lease_seconds=5, max_attempts=3)
    assert store.claim_job("worker-b", now=2.0, lease_seconds=5, max_attempts=3) is None
    assert store.claim_job("worker-b", now=7.0, lease_seconds=5, max_attempts=3)
    assert not store.finish_job("once", "worker-a", 8.0, status="COMPLETED")
    assert store.finish_job("once", "worker-b", 9.0, status="COMPLETED")
    assert not store.finish_job("once", "worker-b", 10.0, status="COMPLETED")
    job = store.get_job("once")
    assert job is not None and job.status == "COMPLETED" and job.completed_at == 9.0
    assert job.attempts == 2


def test_job_that_keeps_killing_workers_fails_instead_of_looping(store):
    store.create_job("poison", {"Media": {}}, now=0.0)
    for attempt in range(2):
        assert store.claim_job(f"w{attempt}", now=10.0 * attempt, lease_seconds=5, max_attempts=2)
    assert store.claim_job("w9", now=100.0, lease_seconds=5, max_attempts=2) is None
    job = store.get_job("poison")
    assert job is not None and job.status == "FAILED" and "2 times" in job.failure_reason


def test_claims_go_oldest_first_and_names_are_unique(store):
    for index, name in enumerate(["b-first", "a-second", "c-third"]):
        store.create_job(name, {"Media": {}}, now=float(index))
    with pytest.raises(DuplicateName):
        store.create_job("a-second", {"Media": {}}, now=9.0)
    claimed = [store.claim_job("w", now=10.0, lease_seconds=5, max_attempts=3) for _ in range(4)]
    assert [job.name if job else None for job in claimed] == [
        "b-first",
        "a-second",
        "c-third",
        None,
    ]
    assert active_jobs(store) == 3


def test_many_workers_claiming_at_once_never_share_a_job(store):
    total = 60
    for index in range(total):
        store.create_job(f"job-{index:03d}", {"Media": {}}, now=float(index))
    taken: dict[str, list[str]] = {}
    lock = threading.Lock()

    def drain(worker: str) -> None:
        while job := store.claim_job(worker, now=time.time(), lease_seconds=60, max_attempts=3):
            with lock:
                taken.setdefault(job.name, []).append(worker)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(drain, [f"worker-{n}" for n in range(8)]))
    assert sorted(taken) == [f"job-{index:03d}" for index in range(total)]
    assert all(len(holders) == 1 for holders in taken.values()), taken


def test_a_job_being_claimed_elsewhere_is_skipped_not_waited_for(postgres):
    """SKIP LOCKED: a row another transaction holds is passed over at once."""
    store = JobStore(postgres.new_database())
    store.create_job("held", {"Media": {}}, now=0.0)
    store.create_job("free", {"Media": {}}, now=1.0)
    with ThreadPoolExecutor(1) as pool, store.engine.connect() as other:
        other.execute(sa.select(jobs.c.name).where(jobs.c.name == "held").with_for_update())
        claim = pool.submit(store.claim_job, "w", now=2.0, lease_seconds=5, max_attempts=3)
        # Waiting behind the lock would never end while the lock is held: the claim must
        # return before it is released, however slowly this machine runs.
        done, _ = wait([claim], timeout=CEILING)
        other.rollback()
    assert done, f"the claim did not return in {CEILING}s while another held a row"
    job = claim.result()
    assert job is not None and job.name == "free"
    assert store.claim_job("w", now=3.0, lease_seconds=5, max_attempts=3).name == "held"


def test_store_reconnects_after_postgresql_restarts(postgres):
    store = JobStore(postgres.new_database())
    store.create_job("before", {"Media": {}}, now=0.0)
    postgres.stop()
    postgres.start()
    store.create_job("after", {"Media": {}}, now=1.0)
    assert {
        job.name for job in store.list_jobs(status=None, name_contains=None, offset=0, limit=9)
    } == {
        "before",
        "after",
    }


def test_active_job_limit_holds_when_starts_race(store):
    barrier = threading.Barrier(20)

    def start(index: int) -> bool:
        barrier.wait()
        try:
            store.create_job(f"race-{index}", {"Media": {}}, now=float(index), max_active=5)
        except QueueFull:
            return False
        return True

    with ThreadPoolExecutor(20) as pool:
        admitted = sum(pool.map(start, range(20)))
    assert admitted == 5 and active_jobs(store) == 5


# --- the worker's lease renewal -------------------------------------------------------------


def lease_of(store: JobStore, name: str) -> tuple[str | None, float | None]:
    query = sa.select(jobs.c.lease_owner, jobs.c.lease_expires).where(jobs.c.name == name)
    with store.engine.connect() as conn:
        owner, expires = conn.execute(query).one()
    return owner, expires


def eventually(condition, what: str) -> None:
    """Wait for ``condition`` with a ceiling that only a hang reaches."""
    deadline = time.monotonic() + CEILING
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {CEILING:.0f}s"
        time.sleep(0.02)


def worker_on(store: JobStore, lease_seconds: float) -> Worker:
    """A worker with a store of its own on the same database, as another process has."""
    url = store.engine.url.render_as_string(hide_password=False)
    return Worker(EngineConfig(lease_seconds=lease_seconds), JobStore(url), recognizer=None)


def held_open(worker: Worker, uri: str) -> tuple[threading.Event, threading.Event]:
    """The worker's jobs run until ``release`` is set (no recognition: the lease is under
    test, not the speech); ``running`` is set once one has started."""
    running, release = threading.Event(), threading.Event()

    def transcribe(job):
        running.set()
        assert release.wait(CEILING)
        return {"status": "COMPLETED", "transcript_uri": uri}

    worker.transcribe = transcribe
    return running, release


def test_a_job_longer_than_its_lease_keeps_it(store):
    store.create_job("long", {"Media": {}}, now=time.time())
    worker = worker_on(store, lease_seconds=0.6)
    running, release = held_open(worker, "s3://out/long.json")
    runner = threading.Thread(target=worker.run_one)
    runner.start()
    try:
        assert running.wait(CEILING)
        owner, first_expiry = lease_of(store, "long")
        assert owner == worker.id
        # The job outlives its first lease twice over, renewed all along...
        eventually(lambda: lease_of(store, "long")[1] >= first_expiry + 1.2, "lease renewed")
        # ...so a worker claiming after the first lease would have run out finds nothing.
        assert store.claim_job("other", first_expiry + 0.6, 60, 3) is None
    finally:
        release.set()
        runner.join()
    job = store.get_job("long")
    assert job.status == "COMPLETED" and job.attempts == 1
    assert job.transcript_uri == "s3://out/long.json"
    assert lease_of(store, "long") == (None, None)


def test_a_stalled_renewal_lets_another_worker_take_over_and_only_one_completes(
    store, monkeypatch, caplog
):
    store.create_job("stuck", {"Media": {}}, now=time.time())
    stale = worker_on(store, lease_seconds=0.5)
    stalled, unstall = threading.Event(), threading.Event()
    renew = stale.store.renew_lease

    def stalled_renewal(*args):
        stalled.set()
        assert unstall.wait(CEILING)
        return renew(*args)

    monkeypatch.setattr(stale.store, "renew_lease", stalled_renewal)
    stale_running, stale_release = held_open(stale, "s3://out/stale.json")
    fresh = worker_on(store, lease_seconds=60)
    fresh_running, fresh_release = held_open(fresh, "s3://out/fresh.json")
    threads = [
        threading.Thread(target=stale.run_one),
        # Polls until the stale lease runs out and the job can be claimed.
        threading.Thread(target=eventually, args=(fresh.run_one, "job taken over")),
    ]
    threads[0].start()
    try:
        assert stale_running.wait(CEILING) and stalled.wait(CEILING)
        threads[1].start()
        assert fresh_running.wait(CEILING)
        assert lease_of(store, "stuck")[0] == fresh.id
        # The stale worker comes back and finishes first: its renewal and result are refused.
        unstall.set()
        stale_release.set()
        threads[0].join()
        job = store.get_job("stuck")
        assert job.status == "IN_PROGRESS" and job.transcript_uri is None
        assert "taken over" in caplog.text
        fresh_release.set()
        threads[1].join()
    finally:
        unstall.set()
        stale_release.set()
        fresh_release.set()
        for thread in threads:
            if thread.ident is not None:  # started
                thread.join()
    job = store.get_job("stuck")
    assert job.status == "COMPLETED" and job.attempts == 2
    assert job.transcript_uri == "s3://out/fresh.json"
