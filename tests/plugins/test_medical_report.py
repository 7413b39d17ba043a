"""A run's report page."""

from __future__ import annotations

import pandas as pd

from medical_transcribe import report


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
