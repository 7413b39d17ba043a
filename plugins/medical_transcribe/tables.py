"""
Flatten AWS-shaped medical transcripts into typed tables and stream them to Parquet.

``transcript_items`` has one row per transcript item; ``transcription_jobs`` one row per job,
failures included; ``phi_entities`` one row per PHI entity of a job that asked for them, with
the range of items it covers, so a redaction is a join; ``transcript_alternatives`` one row
per alternative reading of a segment, rank 1 the best. Each table has a fixed Arrow schema, so
column types stay the same for an empty night or a column that happens to be all null, and
DuckDB, Athena and pandas agree. No I/O but the sinks it is given: where they go is the
caller's business.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime
from typing import IO, Any, Self

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

ITEMS_TABLE = "transcript_items"
JOBS_TABLE = "transcription_jobs"
PHI_TABLE = "phi_entities"
ALTERNATIVES_TABLE = "transcript_alternatives"
#: The audio's length in seconds: not in AWS's job description, so whoever reads the file's
#: header adds it to the job under this key. Absent, the length is unknown (null).
MEDIA_DURATION = "MediaDurationSeconds"

_UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")
_COMMON_FIELDS = [
    pa.field("run_id", pa.string()),
    pa.field("run_date", pa.date32()),
    pa.field("job_name", pa.string()),
    pa.field("media_uri", pa.string()),
    pa.field("type", pa.string()),
    pa.field("specialty", pa.string()),
]
ITEMS_SCHEMA = pa.schema(
    [
        *_COMMON_FIELDS,
        pa.field("item_index", pa.int64()),
        pa.field("item_type", pa.string()),
        pa.field("content", pa.string()),
        pa.field("confidence", pa.float64()),
        pa.field("start_time", pa.float64()),
        pa.field("end_time", pa.float64()),
        pa.field("speaker_label", pa.string()),
        pa.field("channel_label", pa.string()),
    ]
)
JOBS_SCHEMA = pa.schema(
    [
        *_COMMON_FIELDS,
        pa.field("status", pa.string()),
        pa.field("failure_reason", pa.string()),
        pa.field("media_duration", pa.float64()),
        pa.field("words", pa.int64()),
        pa.field("mean_confidence", pa.float64()),
        pa.field("min_confidence", pa.float64()),
        pa.field("low_confidence_words", pa.int64()),
        pa.field("uncovered_speech_seconds", pa.float64()),
        pa.field("creation_time", _UTC_TIMESTAMP),
        pa.field("start_time", _UTC_TIMESTAMP),
        pa.field("completion_time", _UTC_TIMESTAMP),
        pa.field("transcript_uri", pa.string()),
    ]
)

PHI_SCHEMA = pa.schema(
    [
        *_COMMON_FIELDS,
        pa.field("entity_index", pa.int64()),
        pa.field("category", pa.string()),
        pa.field("content", pa.string()),
        pa.field("confidence", pa.float64()),
        pa.field("start_time", pa.float64()),
        pa.field("end_time", pa.float64()),
        pa.field("first_item_index", pa.int64()),
        pa.field("last_item_index", pa.int64()),
    ]
)
ALTERNATIVES_SCHEMA = pa.schema(
    [
        *_COMMON_FIELDS,
        pa.field("segment_index", pa.int64()),
        pa.field("rank", pa.int64()),
        pa.field("start_time", pa.float64()),
        pa.field("end_time", pa.float64()),
        pa.field("channel_label", pa.string()),
        pa.field("transcript", pa.string()),
        pa.field("mean_confidence", pa.float64()),
    ]
)
SCHEMAS = {
    ITEMS_TABLE: ITEMS_SCHEMA,
    JOBS_TABLE: JOBS_SCHEMA,
    PHI_TABLE: PHI_SCHEMA,
    ALTERNATIVES_TABLE: ALTERNATIVES_SCHEMA,
}
#: Words below this confidence count as low-confidence in ``transcription_jobs``.
LOW_CONFIDENCE = 0.5
#: Item times are rounded to milliseconds; an entity covers the items inside its times.
_TIME_SLACK = 0.002

Job = Mapping[str, Any]
Transcript = Mapping[str, Any]
Sink = str | os.PathLike[str] | IO[bytes]


def as_date(value: date | datetime | str) -> date:
    return pd.Timestamp(value).date()


def _float(value: Any) -> float | None:
    """AWS writes numbers as strings; absent or empty means unknown."""
    return None if value in (None, "") else float(value)


def _utc(value: Any) -> datetime | None:
    """Accept botocore datetimes or their ISO strings (as they come back from XCom)."""
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    return (
        stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    ).to_pydatetime()


def _items_with_channel(
    results: Mapping[str, Any],
) -> Iterator[tuple[Mapping[str, Any], str | None]]:
    """
    Yield every item once, with its channel label.

    With ChannelIdentification the per-channel lists under ``channel_labels`` hold every item;
    AWS nests them as ``{"channels": [...]}``, a bare list is accepted too.
    """
    channels = results.get("channel_labels") or []
    if isinstance(channels, Mapping):
        channels = channels.get("channels") or []
    if not channels:
        for item in results.get("items") or []:
            yield item, item.get("channel_label")
        return
    for channel in channels:
        for item in channel.get("items") or []:
            yield item, item.get("channel_label", channel.get("channel_label"))


def _speakers_by_start(results: Mapping[str, Any]) -> dict[str, str]:
    """Older output puts speakers only in ``speaker_labels.segments``, keyed by item start time."""
    segments = (results.get("speaker_labels") or {}).get("segments") or []
    return {
        item["start_time"]: item["speaker_label"]
        for segment in segments
        for item in segment.get("items") or []
        if "start_time" in item and "speaker_label" in item
    }


def _common(job: Job, transcript: Transcript | None, run: Mapping[str, Any]) -> dict[str, Any]:
    return {
        **run,
        "job_name": job.get("MedicalTranscriptionJobName") or (transcript or {}).get("jobName"),
        "media_uri": (job.get("Media") or {}).get("MediaFileUri"),
        "type": job.get("Type"),
        "specialty": job.get("Specialty"),
    }


def _item_records(
    job: Job, transcript: Transcript | None, run: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """One ``transcript_items`` row per item of one transcript (none without a transcript)."""
    if transcript is None:
        return []
    common = _common(job, transcript, run)
    results = transcript.get("results") or {}
    speakers = _speakers_by_start(results)
    records = []
    for index, (item, channel_label) in enumerate(_items_with_channel(results)):
        best = (item.get("alternatives") or [{}])[0]
        records.append(
            {
                **common,
                "item_index": index,
                "item_type": item.get("type"),
                "content": best.get("content"),
                "confidence": _float(best.get("confidence")),
                "start_time": _float(item.get("start_time")),
                "end_time": _float(item.get("end_time")),
                "speaker_label": item.get("speaker_label") or speakers.get(item.get("start_time")),
                "channel_label": channel_label,
            }
        )
    return records


def _entity_records(
    job: Job, transcript: Transcript | None, items: list[dict[str, Any]], run: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """One ``phi_entities`` row per entity, with the first and last item it covers."""
    entities = ((transcript or {}).get("results") or {}).get("entities") or []
    if not entities:
        return []
    common = _common(job, transcript, run)
    records = []
    for index, entity in enumerate(entities):
        start, end = float(entity["startTime"]), float(entity["endTime"])
        covered = [
            item["item_index"]
            for item in items
            if item["start_time"] is not None
            and item["start_time"] >= start - _TIME_SLACK
            and item["end_time"] <= end + _TIME_SLACK
        ]
        records.append(
            {
                **common,
                "entity_index": index,
                "category": entity.get("category"),
                "content": entity.get("content"),
                "confidence": _float(entity.get("confidence")),
                "start_time": start,
                "end_time": end,
                "first_item_index": min(covered, default=None),
                "last_item_index": max(covered, default=None),
            }
        )
    return records


def _alternative_records(
    job: Job, transcript: Transcript | None, run: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """One ``transcript_alternatives`` row per reading of each segment, best first."""
    segments = ((transcript or {}).get("results") or {}).get("segments") or []
    if not segments:
        return []
    common = _common(job, transcript, run)
    records = []
    for index, segment in enumerate(segments):
        for rank, alternative in enumerate(segment.get("alternatives") or [], start=1):
            confidences = [
                float(item["confidence"])
                for item in alternative.get("items") or []
                if item.get("type") == "pronunciation"
            ]
            records.append(
                {
                    **common,
                    "segment_index": index,
                    "rank": rank,
                    "start_time": _float(segment.get("start_time")),
                    "end_time": _float(segment.get("end_time")),
                    "channel_label": segment.get("channel_label"),
                    "transcript": alternative.get("transcript"),
                    "mean_confidence": (
                        sum(confidences) / len(confidences) if confidences else None
                    ),
                }
            )
    return records


def _job_record(
    job: Job,
    transcript: Transcript | None,
    items: list[dict[str, Any]],
    run: Mapping[str, Any],
) -> dict[str, Any]:
    """One ``transcription_jobs`` row; word statistics are null when there is no transcript."""
    words = [r for r in items if r["item_type"] == "pronunciation"]
    confidences = [r["confidence"] for r in words if r["confidence"] is not None]
    has_transcript = transcript is not None
    return {
        **_common(job, transcript, run),
        "status": job.get("TranscriptionJobStatus"),
        "failure_reason": job.get("FailureReason"),
        "media_duration": _float(job.get(MEDIA_DURATION)),
        "words": len(words) if has_transcript else None,
        "mean_confidence": sum(confidences) / len(confidences) if confidences else None,
        "min_confidence": min(confidences, default=None),
        "low_confidence_words": (
            sum(c < LOW_CONFIDENCE for c in confidences) if has_transcript else None
        ),
        # Our engine's figure for speech left without words; AWS reports none (null).
        "uncovered_speech_seconds": _float(
            ((transcript or {}).get("results") or {}).get("uncovered_speech_seconds")
        ),
        "creation_time": _utc(job.get("CreationTime")),
        "start_time": _utc(job.get("StartTime")),
        "completion_time": _utc(job.get("CompletionTime")),
        "transcript_uri": (job.get("Transcript") or {}).get("TranscriptFileUri"),
    }


def _records(
    pairs: Iterable[tuple[Job, Transcript | None]],
    run: Mapping[str, Any],
) -> Iterator[dict[str, list[dict[str, Any]]]]:
    """Per job, its rows of every table."""
    for job, transcript in pairs:
        items = _item_records(job, transcript, run)
        yield {
            ITEMS_TABLE: items,
            JOBS_TABLE: [_job_record(job, transcript, items, run)],
            PHI_TABLE: _entity_records(job, transcript, items, run),
            ALTERNATIVES_TABLE: _alternative_records(job, transcript, run),
        }


class _RowGroupBuffer:
    """Rows for one Parquet file, written out as a row group whenever ``limit`` rows are held."""

    def __init__(self, sink: Sink, schema: pa.Schema, limit: int) -> None:
        self._writer = pq.ParquetWriter(sink, schema, compression="zstd")
        self._schema = schema
        self._limit = limit
        self._rows: list[dict[str, Any]] = []
        self.rows_written = 0

    def extend(self, rows: list[dict[str, Any]]) -> None:
        self._rows.extend(rows)
        if len(self._rows) >= self._limit:
            self._flush()

    def _flush(self) -> None:
        if self._rows:
            self._writer.write_table(pa.Table.from_pylist(self._rows, schema=self._schema))
            self.rows_written += len(self._rows)
            self._rows = []

    def close(self) -> None:
        self._flush()
        self._writer.close()


class TranscriptTableWriter:
    """
    Stream (job description, transcript or None) pairs into the Parquet tables.

    Transcripts are consumed one at a time and rows leave memory as row groups of at most
    about ``row_group_rows``, so a night with thousands of dictations needs no more memory
    than one with ten. The files are valid Parquet with the full schema even when nothing
    was written. Use as a context manager, or call :meth:`close`.

    :param sinks: Table name -> path or binary file object; only these tables are written.
    :param run_id: The Airflow run id, stored on every row.
    :param run_date: The run's logical date (date, datetime or ISO string).
    :param row_group_rows: Rows buffered per file before a row group is written.
    """

    def __init__(
        self,
        sinks: Mapping[str, Sink],
        *,
        run_id: str,
        run_date: date | datetime | str,
        row_group_rows: int = 65_536,
    ) -> None:
        self._run = {"run_id": run_id, "run_date": as_date(run_date)}
        self._buffers = {
            table: _RowGroupBuffer(sink, SCHEMAS[table], row_group_rows)
            for table, sink in sinks.items()
        }

    def write_all(self, pairs: Iterable[tuple[Job, Transcript | None]]) -> None:
        """Consume an iterator of pairs; each transcript is dropped once its rows are buffered."""
        for tables in _records(pairs, self._run):
            for table, buffer in self._buffers.items():
                buffer.extend(tables[table])

    @property
    def row_counts(self) -> dict[str, int]:
        """Rows already written as row groups, per table (complete after :meth:`close`)."""
        return {table: buffer.rows_written for table, buffer in self._buffers.items()}

    def close(self) -> None:
        for buffer in self._buffers.values():
            buffer.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
