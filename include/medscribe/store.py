"""The SQL job store: jobs and vocabularies survive restarts; workers claim jobs with leases.

A worker holds a job by a lease it renews while it works. A job whose lease ran out (its
worker died) is claimed again; only the current lease holder can finish it, so a job is
never completed twice. On PostgreSQL, claims use ``FOR UPDATE SKIP LOCKED`` so workers on
many hosts do not queue behind each other; on SQLite the guarded UPDATE alone decides.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

metadata = sa.MetaData()

jobs = sa.Table(
    "medical_transcription_jobs",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("request", sa.Text, nullable=False),
    sa.Column("media_format", sa.String(8)),
    sa.Column("sample_rate", sa.Integer),
    sa.Column("failure_reason", sa.Text),
    sa.Column("transcript_uri", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False, index=True),
    sa.Column("started_at", sa.Float),
    sa.Column("completed_at", sa.Float),
    sa.Column("lease_owner", sa.String(128)),
    sa.Column("lease_expires", sa.Float),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
)

vocabularies = sa.Table(
    "medical_vocabularies",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("language_code", sa.String(8), nullable=False),
    sa.Column("state", sa.String(8), nullable=False, index=True),
    sa.Column("file_uri", sa.Text, nullable=False),
    sa.Column("phrases", sa.Text),
    sa.Column("failure_reason", sa.Text),
    sa.Column("updated_at", sa.Float, nullable=False),
)


@dataclass(frozen=True)
class Job:
    name: str
    status: str
    request: dict[str, Any]
    media_format: str | None
    sample_rate: int | None
    failure_reason: str | None
    transcript_uri: str | None
    created_at: float
    started_at: float | None
    completed_at: float | None
    attempts: int

    @classmethod
    def from_row(cls, row: sa.RowMapping) -> Job:
        fields = {name: row[name] for name in cls.__dataclass_fields__ if name != "request"}
        return cls(request=json.loads(row["request"]), **fields)


@dataclass(frozen=True)
class Vocabulary:
    name: str
    language_code: str
    state: str
    file_uri: str
    phrases: list[str]
    failure_reason: str | None
    updated_at: float

    @classmethod
    def from_row(cls, row: sa.RowMapping) -> Vocabulary:
        fields = {name: row[name] for name in cls.__dataclass_fields__ if name != "phrases"}
        return cls(phrases=json.loads(row["phrases"] or "[]"), **fields)


class DuplicateName(Exception):
    """A job or vocabulary of that name exists already."""


class QueueFull(Exception):
    """As many jobs as allowed are queued or in progress."""


ACTIVE = ("QUEUED", "IN_PROGRESS")
#: The PostgreSQL advisory lock that serializes conditional inserts (admission to the queue).
ADMISSION_LOCK = 0x6D656473


class JobStore:
    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            # API and workers are separate processes writing one file: wait, don't fail.
            self.engine = sa.create_engine(url, connect_args={"timeout": 30})
            with self.engine.begin() as conn:
                conn.exec_driver_sql("PRAGMA journal_mode=WAL")
        else:
            self.engine = sa.create_engine(url, pool_pre_ping=True)
        metadata.create_all(self.engine)

    # --- jobs -------------------------------------------------------------------------

    def _insert(
        self, table: sa.Table, row: dict[str, Any], admit: sa.ColumnElement | None = None
    ) -> bool:
        """Insert ``row``; with ``admit``, only if that condition holds as it is inserted.

        The condition is checked inside one INSERT ... SELECT, during which SQLite holds its
        write lock; PostgreSQL's READ COMMITTED needs an explicit lock for the same effect.
        """
        statement = table.insert().values(**row)
        if admit is not None:
            values = sa.select(*(sa.literal(v, table.c[k].type) for k, v in row.items()))
            statement = table.insert().from_select(list(row), values.where(admit))
        try:
            with self.engine.begin() as conn:
                if admit is not None and conn.dialect.name == "postgresql":
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(ADMISSION_LOCK)))
                return conn.execute(statement).rowcount == 1
        except IntegrityError as exc:
            raise DuplicateName(row["name"]) from exc

    def _get(self, table: sa.Table, name: str) -> sa.RowMapping | None:
        with self.engine.connect() as conn:
            return conn.execute(table.select().where(table.c.name == name)).mappings().first()

    def _list(
        self,
        table: sa.Table,
        newest: sa.Column,
        state: tuple[sa.Column, str | None],
        name_contains: str | None,
        offset: int,
        limit: int,
    ) -> list[sa.RowMapping]:
        """Newest first, as AWS lists them, filtered by state and a name fragment."""
        query = table.select().order_by(newest.desc(), table.c.name)
        column, value = state
        if value:
            query = query.where(column == value)
        if name_contains:
            query = query.where(table.c.name.contains(name_contains, autoescape=True))
        with self.engine.connect() as conn:
            return list(conn.execute(query.offset(offset).limit(limit)).mappings())

    def create_job(
        self, name: str, request: dict[str, Any], now: float, max_active: int | None = None
    ) -> Job:
        """Queue a job, unless ``max_active`` jobs are queued or in progress already."""
        row = {
            "name": name,
            "status": "QUEUED",
            "request": json.dumps(request),
            "created_at": now,
            "attempts": 0,
            "media_format": request.get("MediaFormat"),
            "sample_rate": request.get("MediaSampleRateHertz"),
        }
        active = sa.select(sa.func.count()).where(jobs.c.status.in_(ACTIVE)).scalar_subquery()
        if not self._insert(jobs, row, None if max_active is None else active < max_active):
            raise QueueFull(name)
        job = self.get_job(name)
        assert job is not None
        return job

    def get_job(self, name: str) -> Job | None:
        row = self._get(jobs, name)
        return Job.from_row(row) if row else None

    def list_jobs(
        self, *, status: str | None, name_contains: str | None, offset: int, limit: int
    ) -> list[Job]:
        rows = self._list(
            jobs, jobs.c.created_at, (jobs.c.status, status), name_contains, offset, limit
        )
        return [Job.from_row(row) for row in rows]

    def delete_job(self, name: str) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(jobs.delete().where(jobs.c.name == name)).rowcount == 1

    def claim_job(
        self, owner: str, now: float, lease_seconds: float, max_attempts: int
    ) -> Job | None:
        """Take the oldest queued job, or one whose worker's lease ran out."""
        claimable = sa.or_(
            jobs.c.status == "QUEUED",
            sa.and_(jobs.c.status == "IN_PROGRESS", jobs.c.lease_expires < now),
        )
        with self.engine.begin() as conn:
            # A job that killed its workers max_attempts times is failed, not retried forever.
            conn.execute(
                jobs.update()
                .where(claimable, jobs.c.status == "IN_PROGRESS", jobs.c.attempts >= max_attempts)
                .values(
                    status="FAILED",
                    completed_at=now,
                    lease_owner=None,
                    failure_reason="Internal failure: the job stopped its worker "
                    f"{max_attempts} times.",
                )
            )
            candidate = conn.execute(
                sa.select(jobs.c.name)
                .where(claimable)
                .order_by(jobs.c.created_at)
                .limit(1)
                .with_for_update(skip_locked=True)
            ).scalar()
            if candidate is None:
                return None
            claimed = conn.execute(
                jobs.update()
                .where(jobs.c.name == candidate, claimable)
                .values(
                    status="IN_PROGRESS",
                    lease_owner=owner,
                    lease_expires=now + lease_seconds,
                    attempts=jobs.c.attempts + 1,
                    started_at=sa.func.coalesce(jobs.c.started_at, now),
                )
            ).rowcount
        return self.get_job(candidate) if claimed == 1 else None

    def renew_lease(self, name: str, owner: str, until: float) -> bool:
        return self._update_held(name, owner, lease_expires=until)

    def finish_job(self, name: str, owner: str, now: float, **fields: Any) -> bool:
        """Record the outcome (``status`` plus fields); False if the lease was lost meanwhile."""
        return self._update_held(
            name, owner, completed_at=now, lease_owner=None, lease_expires=None, **fields
        )

    def _update_held(self, name: str, owner: str, **values: Any) -> bool:
        held = sa.and_(
            jobs.c.name == name, jobs.c.lease_owner == owner, jobs.c.status == "IN_PROGRESS"
        )
        with self.engine.begin() as conn:
            return conn.execute(jobs.update().where(held).values(**values)).rowcount == 1

    # --- vocabularies -----------------------------------------------------------------

    def create_vocabulary(
        self, name: str, language_code: str, file_uri: str, now: float
    ) -> Vocabulary:
        row = {"name": name, "language_code": language_code, "file_uri": file_uri}
        self._insert(vocabularies, {**row, "state": "PENDING", "updated_at": now})
        vocabulary = self.get_vocabulary(name)
        assert vocabulary is not None
        return vocabulary

    def get_vocabulary(self, name: str) -> Vocabulary | None:
        row = self._get(vocabularies, name)
        return Vocabulary.from_row(row) if row else None

    def list_vocabularies(
        self, *, state: str | None, name_contains: str | None, offset: int, limit: int
    ) -> list[Vocabulary]:
        by_state = (vocabularies.c.state, state)
        rows = self._list(
            vocabularies, vocabularies.c.updated_at, by_state, name_contains, offset, limit
        )
        return [Vocabulary.from_row(row) for row in rows]

    def update_vocabulary(self, name: str, **values: Any) -> bool:
        query = vocabularies.update().where(vocabularies.c.name == name).values(**values)
        with self.engine.begin() as conn:
            return conn.execute(query).rowcount == 1

    def delete_vocabulary(self, name: str) -> bool:
        with self.engine.begin() as conn:
            return (
                conn.execute(vocabularies.delete().where(vocabularies.c.name == name)).rowcount == 1
            )

    def pending_vocabularies(self) -> list[Vocabulary]:
        return self.list_vocabularies(state="PENDING", name_contains=None, offset=0, limit=100)

    def settle_vocabulary(self, seen: Vocabulary, now: float, **values: Any) -> bool:
        """Mark a pending vocabulary READY or FAILED, unless it was updated since it was read."""
        query = (
            vocabularies.update()
            .where(
                vocabularies.c.name == seen.name,
                vocabularies.c.state == "PENDING",
                vocabularies.c.updated_at == seen.updated_at,
            )
            .values(updated_at=now, **values)
        )
        with self.engine.begin() as conn:
            return conn.execute(query).rowcount == 1
