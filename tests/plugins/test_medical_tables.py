from __future__ import annotations

import io
from datetime import date, datetime, timedelta, timezone

import pandas as pd
import pyarrow.parquet as pq
import pytest

from medical_transcribe.tables import (
    ALTERNATIVES_SCHEMA,
    ALTERNATIVES_TABLE,
    ITEMS_SCHEMA,
    ITEMS_TABLE,
    JOBS_SCHEMA,
    JOBS_TABLE,
    MEDIA_DURATION,
    PHI_SCHEMA,
    PHI_TABLE,
    SCHEMAS,
    TranscriptTableWriter,
)

RUN = {"run_id": "scheduled__2024-05-01T02:00:00+00:00", "run_date": "2024-05-01"}
PACIFIC = timezone(timedelta(hours=-7))


def tables(pairs, **options) -> dict[str, pd.DataFrame]:
    """Every table of ``pairs``, streamed by the writer and read back as pandas."""
    sinks = {table: io.BytesIO() for table in SCHEMAS}
    with TranscriptTableWriter(sinks, **RUN, **options) as writer:
        writer.write_all(pairs)
    return {table: pd.read_parquet(io.BytesIO(sink.getvalue())) for table, sink in sinks.items()}


def frames(pairs, **options) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``transcript_items`` and ``transcription_jobs`` tables of ``pairs``."""
    written = tables(pairs, **options)
    return written[ITEMS_TABLE], written[JOBS_TABLE]


def word(content: str, start: str, end: str, confidence: str, **extra) -> dict:
    alternatives = [{"confidence": confidence, "content": content}]
    return {
        "start_time": start,
        "end_time": end,
        "type": "pronunciation",
        "alternatives": alternatives,
        **extra,
    }


def punctuation(content: str = ".") -> dict:
    return {
        "type": "punctuation",
        "alternatives": [{"confidence": "0.0", "content": content}],
    }


def job(name: str = "visit-1", status: str = "COMPLETED", **extra) -> dict:
    return {
        "MedicalTranscriptionJobName": name,
        "TranscriptionJobStatus": status,
        "Media": {"MediaFileUri": f"s3://audio/{name}.wav"},
        "Type": "DICTATION",
        "Specialty": "PRIMARYCARE",
        "CreationTime": datetime(2024, 5, 1, 19, 0, tzinfo=PACIFIC),
        "StartTime": datetime(2024, 5, 1, 19, 1, tzinfo=PACIFIC),
        "CompletionTime": datetime(2024, 5, 1, 19, 3, tzinfo=PACIFIC),
        "Transcript": {"TranscriptFileUri": f"s3://out/medical/{name}.json"},
        **extra,
    }


def transcript(items: list[dict], **results) -> dict:
    text = " ".join(i["alternatives"][0]["content"] for i in items)
    return {
        "jobName": "visit-1",
        "status": "COMPLETED",
        "results": {"transcripts": [{"transcript": text}], "items": items, **results},
    }


DICTATION = transcript(
    [
        word("came", "4.85", "5.12", "1.0"),
        word("for", "5.12", "5.30", "0.9"),
        word("metformin", "5.30", "6.05", "0.4"),
        punctuation(),
    ]
)
FAILED = job("visit-2", status="FAILED", FailureReason="Unsupported media format", Transcript={})


def test_one_row_per_item_with_stable_types():
    items, _ = frames([(job(), DICTATION)])
    assert len(items) == 4
    assert list(items["item_index"]) == [0, 1, 2, 3]
    assert list(items["content"]) == ["came", "for", "metformin", "."]
    for column in ("confidence", "start_time", "end_time"):
        assert items[column].dtype == "float64"
    assert items.loc[0, "start_time"] == 4.85
    assert items["job_name"].unique().tolist() == ["visit-1"]
    assert items["run_date"].unique().tolist() == [date(2024, 5, 1)]


def test_punctuation_has_no_times():
    items, _ = frames([(job(), DICTATION)])
    punct = items[items["item_type"] == "punctuation"]
    assert punct["start_time"].isna().all() and punct["end_time"].isna().all()
    assert items[items["item_type"] == "pronunciation"]["start_time"].notna().all()


def test_job_summary_statistics():
    measured = job(**{MEDIA_DURATION: 7.5})
    _, jobs = frames([(measured, DICTATION)])
    row = jobs.iloc[0]
    assert row["words"] == 3
    assert row["low_confidence_words"] == 1
    assert row["min_confidence"] == 0.4
    assert row["mean_confidence"] == pytest.approx((1.0 + 0.9 + 0.4) / 3)
    assert row["media_duration"] == 7.5  # the audio's length, not the last word's end
    assert row["completion_time"] == pd.Timestamp("2024-05-02T02:03:00Z")
    assert str(jobs["creation_time"].dtype) == "datetime64[us, UTC]"
    assert row["transcript_uri"] == "s3://out/medical/visit-1.json"


def test_uncovered_speech_comes_from_the_engine_and_is_null_for_aws():
    engine = transcript(DICTATION["results"]["items"], uncovered_speech_seconds=2.4)
    _, jobs = frames([(job(), engine), (job("visit-3"), DICTATION), (FAILED, None)])
    assert jobs["uncovered_speech_seconds"].dtype == "float64"
    assert jobs.iloc[0]["uncovered_speech_seconds"] == 2.4
    assert jobs.iloc[1:]["uncovered_speech_seconds"].isna().all()


def test_failed_job_is_a_row_with_its_reason_and_no_items():
    items, jobs = frames([(job(), DICTATION), (FAILED, None)])
    assert len(items) == 4
    failed = jobs.set_index("job_name").loc["visit-2"]
    assert failed["status"] == "FAILED"
    assert failed["failure_reason"] == "Unsupported media format"
    assert pd.isna(failed["words"]) and pd.isna(failed["mean_confidence"])
    assert pd.isna(failed["transcript_uri"])


def test_channel_items_are_flattened_once_with_their_label():
    ch0 = [word("how", "0.1", "0.3", "0.99"), punctuation("?")]
    ch1 = [word("fine", "0.5", "0.9", "0.97")]
    channels = {
        "channels": [
            {"channel_label": "ch_0", "items": ch0},
            {"channel_label": "ch_1", "items": ch1},
        ],
        "number_of_channels": 2,
    }
    items, jobs = frames([(job(), transcript(ch0 + ch1, channel_labels=channels))])
    assert list(items["channel_label"]) == ["ch_0", "ch_0", "ch_1"]
    assert jobs.iloc[0]["words"] == 2

    as_list = {"results": {"channel_labels": channels["channels"]}}
    items, _ = frames([(job(), as_list)])
    assert list(items["channel_label"]) == ["ch_0", "ch_0", "ch_1"]


def test_speaker_labels_from_items_or_segments():
    on_items = transcript([word("hi", "0.1", "0.2", "1.0", speaker_label="spk_0")])
    segments = {
        "segments": [
            {"items": [{"start_time": "0.3", "end_time": "0.4", "speaker_label": "spk_1"}]}
        ]
    }
    in_segments = transcript([word("hello", "0.3", "0.4", "1.0")], speaker_labels=segments)
    items, _ = frames([(job(), on_items), (job("visit-3"), in_segments)])
    assert list(items["speaker_label"]) == ["spk_0", "spk_1"]
    assert items["channel_label"].isna().all()


def test_iso_strings_from_xcom_become_utc_timestamps():
    serialized = job(CreationTime="2024-05-01T19:00:00-07:00", StartTime=None, CompletionTime=None)
    _, jobs = frames([(serialized, DICTATION)])
    assert jobs.iloc[0]["creation_time"] == pd.Timestamp("2024-05-02T02:00:00Z")
    assert pd.isna(jobs.iloc[0]["start_time"])


def test_writer_streams_row_groups_while_consuming(tmp_path):
    items_path, jobs_path = tmp_path / "items.parquet", tmp_path / "jobs.parquet"
    seen_before_last: dict[str, int] = {}

    def pairs(writer):
        yield job(), DICTATION
        yield job("visit-3"), DICTATION
        seen_before_last.update(writer.row_counts)
        yield FAILED, None

    with TranscriptTableWriter(
        {ITEMS_TABLE: items_path, JOBS_TABLE: jobs_path}, **RUN, row_group_rows=4
    ) as writer:
        writer.write_all(pairs(writer))
    assert seen_before_last[ITEMS_TABLE] == 8  # flushed before the iterator was exhausted
    assert writer.row_counts == {ITEMS_TABLE: 8, JOBS_TABLE: 3}
    assert pq.ParquetFile(items_path).metadata.num_row_groups == 2

    expected_items, expected_jobs = frames(
        [(job(), DICTATION), (job("visit-3"), DICTATION), (FAILED, None)],
    )
    pd.testing.assert_frame_equal(pd.read_parquet(items_path), expected_items)
    pd.testing.assert_frame_equal(pd.read_parquet(jobs_path), expected_jobs)


def test_empty_input_writes_valid_empty_files_with_the_schema():
    items_sink, jobs_sink = io.BytesIO(), io.BytesIO()
    with TranscriptTableWriter({ITEMS_TABLE: items_sink, JOBS_TABLE: jobs_sink}, **RUN) as writer:
        writer.write_all([])
    for sink, schema in ((items_sink, ITEMS_SCHEMA), (jobs_sink, JOBS_SCHEMA)):
        table = pq.read_table(io.BytesIO(sink.getvalue()))
        assert table.num_rows == 0
        assert table.schema.equals(schema)


def test_all_null_columns_keep_their_types(tmp_path):
    with TranscriptTableWriter({JOBS_TABLE: tmp_path / "j.parquet"}, **RUN) as writer:
        writer.write_all([(FAILED, None)])
    assert pq.read_table(tmp_path / "j.parquet").schema.equals(JOBS_SCHEMA)


WITH_PHI = transcript(
    [
        word("Seen", "0.10", "0.40", "0.99"),
        word("John", "0.50", "0.80", "0.98"),
        word("Smith", "0.80", "1.20", "0.97"),
        punctuation(","),
        word("phone", "1.30", "1.60", "0.99"),
        word("555-212-3456", "1.70", "3.10", "0.95"),
        punctuation(),
    ],
    entities=[
        {"content": "John Smith", "category": "PHI", "startTime": 0.5, "endTime": 1.2,
         "confidence": 0.9},
        {"content": "555-212-3456", "category": "PHI", "startTime": 1.7, "endTime": 3.1,
         "confidence": 0.9},
    ],
)  # fmt: skip


def test_phi_entities_point_at_the_items_they_cover():
    entities = tables([(job(), WITH_PHI), (FAILED, None), (job("visit-3"), DICTATION)])[PHI_TABLE]
    assert list(entities.columns) == PHI_SCHEMA.names
    assert entities.job_name.tolist() == ["visit-1", "visit-1"]
    assert entities[["first_item_index", "last_item_index"]].values.tolist() == [[1, 2], [5, 5]]
    items, _ = frames([(job(), WITH_PHI)])
    redacted = items.content.copy()
    for entity in entities.itertuples():
        redacted[entity.first_item_index : entity.last_item_index + 1] = "[PHI]"
    assert " ".join(redacted) == "Seen [PHI] [PHI] , phone [PHI] ."


def test_writer_streams_the_phi_table_when_given_a_sink(tmp_path):
    paths = {table: tmp_path / f"{table}.parquet" for table in (ITEMS_TABLE, JOBS_TABLE, PHI_TABLE)}
    with TranscriptTableWriter(paths, **RUN) as writer:
        writer.write_all([(job(), WITH_PHI), (FAILED, None)])
    assert writer.row_counts == {ITEMS_TABLE: 7, JOBS_TABLE: 2, PHI_TABLE: 2}
    assert pq.read_schema(paths[PHI_TABLE]).names == PHI_SCHEMA.names


def reading(text: str, *confidences: str) -> dict:
    words = [
        {"start_time": "0.1", "end_time": "0.4", "confidence": c, "content": w,
         "type": "pronunciation"}
        for w, c in zip(text.split(), confidences, strict=True)
    ]  # fmt: skip
    return {"transcript": text, "items": [*words, {"confidence": "0.0", "content": ".",
                                                   "type": "punctuation"}]}  # fmt: skip


WITH_ALTERNATIVES = transcript(
    [word("metformin", "0.1", "0.4", "0.8")],
    segments=[
        {"start_time": "0.1", "end_time": "0.4",
         "alternatives": [reading("metformin", "0.8"), reading("met for min", "0.6", "0.4", "0.2")]},
        {"start_time": "2.0", "end_time": "2.5", "channel_label": "ch_1",
         "alternatives": [reading("daily", "1.0")]},
    ],
)  # fmt: skip


def test_alternatives_are_one_row_per_reading_ranked_best_first(tmp_path):
    readings = tables([(job(), WITH_ALTERNATIVES), (FAILED, None)])[ALTERNATIVES_TABLE]
    assert list(readings.columns) == ALTERNATIVES_SCHEMA.names
    rows = readings[["segment_index", "rank", "transcript"]].values.tolist()
    assert rows == [[0, 1, "metformin"], [0, 2, "met for min"], [1, 1, "daily"]]
    assert readings.channel_label.isna().tolist() == [True, True, False]
    assert readings.mean_confidence.round(3).tolist() == [0.8, 0.4, 1.0]
    assert readings.start_time.tolist() == [0.1, 0.1, 2.0]
    assert tables([(job(), DICTATION)])[ALTERNATIVES_TABLE].empty
    paths = {table: tmp_path / f"{table}.parquet" for table in (ITEMS_TABLE, JOBS_TABLE)}
    paths[ALTERNATIVES_TABLE] = tmp_path / "a.parquet"
    with TranscriptTableWriter(paths, **RUN) as writer:
        writer.write_all([(job(), WITH_ALTERNATIVES), (FAILED, None)])
    assert writer.row_counts == {ITEMS_TABLE: 1, JOBS_TABLE: 2, ALTERNATIVES_TABLE: 3}
