"""The run's own judgement, settings checks, audio probing and report, without Airflow."""

from __future__ import annotations

import io
import math
import struct
import wave

import boto3
import pandas as pd
import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from medical_transcribe import media, pipeline, report

SUMMARY = {
    "files": 4,
    "completed": 3,
    "failed": {"media-1a2b": "The media file could not be decoded."},
    "skipped": {"not_audio": 1, "already_transcribed": 0, "failed_before": 0},
    "report": "s3://out/tables/run_reports/run_date=2026-11-25/r.html",
}


def test_any_failure_fails_the_run_naming_the_file_and_reason(caplog):
    with pytest.raises(AirflowFailException) as raised:
        pipeline.judge(SUMMARY, 0)
    # The names come first in the message: the UI cuts a long line off at its right edge.
    assert str(raised.value) == "Failed: media-1a2b (1 of 4)"
    # Each on a line of its own in the task log, with its reason and the report.
    assert caplog.messages == [
        "3 transcribed, 1 failed, 1 skipped: more than max_failed_fraction=0",
        "failed media-1a2b: The media file could not be decoded.",
        f"run report: {SUMMARY['report']}",
    ]


def test_max_failed_fraction_tolerates_that_share():
    assert pipeline.judge(SUMMARY, 0.25) == "3 transcribed, 1 failed, 1 skipped"
    with pytest.raises(AirflowFailException):
        pipeline.judge(SUMMARY, 0.24)
    assert pipeline.judge({**SUMMARY, "failed": {}, "completed": 4}, 0).startswith("4 transc")


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"ChannelIdentification": True, "ShowSpeakerLabels": True, "MaxSpeakerLabels": 2},
         "cannot be used together"),
        ({"ShowSpeakerLabels": True}, "ShowSpeakerLabels and MaxSpeakerLabels"),
        ({"MaxAlternatives": 3}, "ShowAlternatives and MaxAlternatives"),
        ({"ShowAlternatives": True, "MaxAlternatives": 1}, "MaxAlternatives, value: 1"),
    ],
)  # fmt: skip
def test_settings_aws_would_refuse_are_named(settings, problem):
    assert any(problem in p for p in pipeline.settings_problems(settings))


def test_consistent_settings_pass():
    assert pipeline.settings_problems({}) == []
    assert pipeline.settings_problems({"ShowSpeakerLabels": True, "MaxSpeakerLabels": 2}) == []
    settings = pipeline.job_settings(None, False, max_speaker_labels=2, max_alternatives=3)
    assert settings == {
        "ShowSpeakerLabels": True, "MaxSpeakerLabels": 2,
        "ShowAlternatives": True, "MaxAlternatives": 3,
    }  # fmt: skip
    assert pipeline.settings_problems(settings) == []
    assert "ShowAlternatives" not in pipeline.job_settings(None, False, max_alternatives=0)


def tone(seconds: float, channels: int, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        frames = (
            struct.pack("<h", int(8000 * math.sin(i / 10))) * channels
            for i in range(int(seconds * rate))
        )
        out.writeframes(b"".join(frames))
    return buffer.getvalue()


def test_probe_reads_length_and_channels_with_ranged_reads(aws):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="audio")
    s3.put_object(Bucket="audio", Key="stereo.wav", Body=tone(3.5, 2))
    s3.put_object(Bucket="audio", Key="junk.wav", Body=b"RIFF....WAVEfmt garbage")
    info = media.probe(s3, "audio", "stereo.wav")
    assert info is not None and info.channels == 2
    assert info.duration == pytest.approx(3.5, abs=0.01)
    assert media.probe(s3, "audio", "junk.wav") is None


def test_report_page_counts_files_and_escapes_names():
    jobs = pd.DataFrame(
        {
            "job_name": ["media-a", "media-b"],
            "media_uri": ["s3://in/<script>.wav", "s3://in/broken.wav"],
            "status": ["COMPLETED", "FAILED"],
            "failure_reason": [None, "could not be decoded"],
            "media_duration": [90.0, None],
            "words": [120, None],
            "mean_confidence": [0.82, None],
            "low_confidence_words": [3, None],
        }
    )
    page = report.render(
        jobs,
        pd.Series([0.95, 0.9, 0.3]),
        run_id="manual__1",
        run_date="2026-11-25",
        skipped={"not_audio": 2},
        links={"media-a": "https://s3/a?sig=1&x=2", "transcript_items": "https://s3/t"},
    )
    assert "1 transcribed" in page and "1 failed" in page and "2 skipped" in page
    assert "1.5 min of audio" in page and "could not be decoded" in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert 'href="https://s3/a?sig=1&amp;x=2"' in page
    assert ">transcript_items</a>" in page
