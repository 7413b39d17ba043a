"""A run's report: one self-contained HTML page an operator can open from the Airflow UI.

Counts, minutes of audio, every file with its status and reason, a histogram of word
confidences, the files with the lowest confidence, and links to each transcript and table.
"""

from __future__ import annotations

from html import escape
from typing import Any

import pandas as pd

from medical_transcribe.tables import LOW_CONFIDENCE

#: The folder under the table prefix that holds the reports, beside the tables.
REPORTS = "run_reports"
CONTENT_TYPE = "text/html; charset=utf-8"
LOWEST = 10
_BINS = 10

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
.FAILED{color:#b00020;font-weight:600}.COMPLETED{color:#1b5e20}
.bar{background:#4a78c2;height:1em;display:inline-block}
.counts span{display:inline-block;margin-right:2em;font-size:1.3em}
"""


def _link(text: str, href: str | None) -> str:
    return f'<a href="{escape(href)}">{escape(text)}</a>' if href else escape(text)


def _number(value: Any, digits: int = 2) -> str:
    return "" if value is None or pd.isna(value) else f"{value:.{digits}f}"


def _histogram(confidences: pd.Series) -> str:
    if confidences.dropna().empty:
        return "<p>No words.</p>"
    counts = pd.cut(confidences.dropna(), bins=[i / _BINS for i in range(_BINS + 1)],
                    include_lowest=True).value_counts(sort=False)  # fmt: skip
    top = max(counts.max(), 1)
    rows = "".join(
        f"<tr><td>{b.left:.1f}–{b.right:.1f}</td><td>{n}</td>"
        f'<td><span class="bar" style="width:{200 * n / top:.0f}px"></span></td></tr>'
        for b, n in counts.items()
    )
    return f"<table><tr><th>confidence</th><th>words</th><th></th></tr>{rows}</table>"


def render(
    jobs: pd.DataFrame,
    confidences: pd.Series,
    *,
    run_id: str,
    run_date: str,
    skipped: dict[str, int],
    links: dict[str, str],
) -> str:
    """The page for one run; ``links`` maps a table or job name to a URL that opens it."""
    done = jobs[jobs.status == "COMPLETED"]
    minutes = jobs.media_duration.sum() / 60
    counts = (
        f"<span>{len(done)} transcribed</span><span>{len(jobs) - len(done)} failed</span>"
        f"<span>{sum(skipped.values())} skipped</span><span>{minutes:.1f} min of audio</span>"
    )
    skip_detail = ", ".join(f"{n} {why.replace('_', ' ')}" for why, n in skipped.items() if n)
    files = "".join(
        f"<tr><td>{escape(str(row.media_uri))}</td><td>{_link(row.job_name, links.get(row.job_name))}"
        f'</td><td class="{escape(str(row.status))}">{escape(str(row.status))}</td>'
        f"<td>{escape(str(row.failure_reason or ''))}</td><td>{_number(row.media_duration, 1)}</td>"
        f"<td>{'' if pd.isna(row.words) else int(row.words)}</td>"
        f"<td>{_number(row.mean_confidence)}</td></tr>"
        for row in jobs.sort_values(["status", "media_uri"], ascending=[False, True]).itertuples()
    )
    lowest = "".join(
        f"<tr><td>{escape(str(row.media_uri))}</td><td>{_number(row.mean_confidence)}</td>"
        f"<td>{int(row.low_confidence_words)}</td></tr>"
        for row in done.nsmallest(LOWEST, "mean_confidence").itertuples()
    )
    tables = "".join(
        f"<li>{_link(name, url)}</li>"
        for name, url in links.items()
        if name not in set(jobs.job_name)
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Transcription run {escape(run_id)}</title>
<style>{_STYLE}</style></head><body>
<h1>Transcription run {escape(run_id)}</h1>
<p>Run date {pd.Timestamp(run_date).date()}.{f" Skipped: {escape(skip_detail)}." if skip_detail else ""}</p>
<p class="counts">{counts}</p>
<h2>Files</h2>
<table><tr><th>audio</th><th>job (transcript)</th><th>status</th><th>reason</th>
<th>seconds</th><th>words</th><th>mean confidence</th></tr>{files}</table>
<h2>Word confidence</h2>{_histogram(confidences)}
<h2>Lowest confidence</h2>
<table><tr><th>audio</th><th>mean confidence</th><th>words below {LOW_CONFIDENCE}</th></tr>{lowest}</table>
<h2>Tables</h2><ul>{tables}</ul>
<p>Links are signed and work for 7 days; the objects stay in S3.</p>
</body></html>
"""
