"""Summaries, Markdown report and chart from the per-file results of a benchmark run.

Rates are pooled (total errors / total reference words, total recalled / total terms,
total wall / total audio) so long files weigh more than short ones, as in any WER report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

DIRECT_SYSTEMS = ("whisper", "whisper-vocab", "whisper-vocab-before")


def _pooled(frame: pd.DataFrame) -> dict[str, float]:
    audio = frame["duration_s"].sum()
    wall = frame["wall_s"].sum(min_count=len(frame))  # NaN unless every file was timed
    return {
        "files": len(frame),
        "audio_min": audio / 60,
        "wall_s": wall,
        "rtf": wall / audio,
        "throughput": audio / wall,
        "wer": frame["errors"].sum() / frame["ref_words"].sum(),
        "deletion_rate": frame["deletions"].sum() / frame["ref_words"].sum(),
        "omissions": frame["omissions"].sum(),
        "files_with_omissions": (frame["omissions"] > 0).sum(),
        "term_recall": frame["terms_recalled"].sum() / frame["terms_total"].sum(),
        "terms": frame["terms_total"].sum(),
        "listed_term_recall": frame["listed_recalled"].sum() / frame["listed_total"].sum(),
        "unlisted_term_recall": (frame["terms_recalled"].sum() - frame["listed_recalled"].sum())
        / (frame["terms_total"].sum() - frame["listed_total"].sum()),
        "false_insertions": frame["false_insertions"].sum(),
        "failed_files": (frame["error"].fillna("") != "").sum(),
    }


def summarize(
    results: pd.DataFrame, walls: Mapping[str, float], peak_rss_mb: Mapping[str, float | None]
) -> pd.DataFrame:
    """One row per system overall (timed as a batch), per variant, and per voice (clean clips).

    Variant rows also carry the clean scores of the same dictations, so a noisy or
    telephone score is compared with its own texts and voices, not the whole corpus.
    """
    rows = []
    for system, frame in results.groupby("system", sort=False):
        overall = _pooled(frame)
        audio = frame["duration_s"].sum()
        overall.update(
            wall_s=walls[system], rtf=walls[system] / audio, throughput=audio / walls[system]
        )
        rows.append(
            {
                "system": system,
                "by": "all",
                "group": "all",
                **overall,
                "peak_rss_mb": peak_rss_mb[system],
            }
        )
        clean = frame[frame["variant"] == "clean"]
        for variant, part in frame.groupby("variant", sort=False):
            same = _pooled(clean[clean["id"].isin(part["id"])]) if variant != "clean" else {}
            rows.append(
                {
                    "system": system,
                    "by": "variant",
                    "group": variant,
                    **_pooled(part),
                    "clean_wer_same_ids": same.get("wer", math.nan),
                    "clean_term_recall_same_ids": same.get("term_recall", math.nan),
                }
            )
        for voice, part in clean.groupby("voice", sort=True):
            rows.append({"system": system, "by": "voice", "group": voice, **_pooled(part)})
    return pd.DataFrame(rows)


def _cell(value: object, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "float":
        return f"{value:.3f}"
    if kind == "int":
        return f"{int(value)}"
    if kind == "mb":
        return f"{value:.0f} MB"
    if kind == "1f":
        return f"{value:.1f}"
    return str(value)


def markdown_table(frame: pd.DataFrame, columns: Sequence[tuple[str, str, str]]) -> str:
    """A Markdown table of ``frame``; ``columns`` are (column, heading, format) triples."""
    lines = ["| " + " | ".join(heading for _, heading, _ in columns) + " |"]
    lines.append("|" + "|".join("---" if kind == "str" else "---:" for _, _, kind in columns) + "|")
    for _, row in frame.iterrows():
        lines.append(
            "| " + " | ".join(_cell(row.get(column), kind) for column, _, kind in columns) + " |"
        )
    return "\n".join(lines)


SCORE_COLUMNS = [
    ("files", "files", "int"),
    ("audio_min", "audio min", "1f"),
    ("wer", "WER", "pct"),
    ("omissions", "omissions", "int"),
    ("files_with_omissions", "files with omissions", "int"),
    ("deletion_rate", "deletion rate", "pct"),
    ("term_recall", "term recall", "pct"),
    ("terms", "terms", "int"),
    ("listed_term_recall", "listed terms' recall", "pct"),
    ("unlisted_term_recall", "unlisted terms' recall", "pct"),
    ("false_insertions", "false term insertions", "int"),
    ("rtf", "RTF", "float"),
    ("failed_files", "failed files", "int"),
]


def engine_overhead(summary: pd.DataFrame) -> dict[str, float]:
    """Engine batch wall time over each direct system's wall time on the same files."""
    overall = summary[summary["by"] == "all"].set_index("system")
    if "engine" not in overall.index:
        return {}
    return {
        s: overall.at["engine", "wall_s"] / overall.at[s, "wall_s"]
        for s in DIRECT_SYSTEMS
        if s in overall.index
    }


#: (label, system before, system after): the changes the headline spells out.
COMPARISONS = (
    ("Plain faster-whisper -> the engine's recognizer", "whisper", "whisper-vocab"),
    (
        "Coverage guarantee: the recognizer before -> after",
        "whisper-vocab-before",
        "whisper-vocab",
    ),
)
_COMPARED = (
    ("omissions", "omissions", "int"),
    ("wer", "WER", "pct"),
    ("deletion_rate", "deletion rate", "pct"),
    ("term_recall", "term recall", "pct"),
)


def _comparison(label: str, before: pd.Series, after: pd.Series) -> str:
    moves = ", ".join(
        f"{name} {_cell(before[column], kind)} -> {_cell(after[column], kind)}"
        for column, name, kind in _COMPARED
    )
    return (
        f"- {label}: {moves}; throughput {after.throughput / before.throughput:.2f}x "
        f"(wall time {after.wall_s / before.wall_s:.2f}x)."
    )


def _headline(summary: pd.DataFrame) -> list[str]:
    overall = summary[summary["by"] == "all"].set_index("system")
    lines = [
        f"- **{system}**: {_cell(row.omissions, 'int')} omissions, WER {_cell(row.wer, 'pct')}, "
        f"deletion rate {_cell(row.deletion_rate, 'pct')}, "
        f"term recall {_cell(row.term_recall, 'pct')}, RTF {_cell(row.rtf, 'float')} "
        f"({_cell(row.throughput, '1f')} s of audio per second), "
        f"peak RSS {_cell(row.peak_rss_mb, 'mb')}"
        for system, row in overall.iterrows()
    ]
    for label, before, after in COMPARISONS:
        if {before, after} <= set(overall.index):
            lines.append(_comparison(label, overall.loc[before], overall.loc[after]))
    lines += [
        f"- Engine overhead: engine wall / {s} wall = {ratio:.2f}"
        for s, ratio in engine_overhead(summary).items()
    ]
    return lines + ceiling_lines(summary)


#: The ceiling of what a prompt can do: each file's own terms in every window's prompt.
ORACLE = "whisper-oracle"


#: Term recall, of all terms and of the listed ones.
RECALLS = ["term_recall", "listed_term_recall"]


def ceiling_lines(summary: pd.DataFrame) -> list[str]:
    """Term recall of the engine and its recognizer as a share of the oracle's, overall and
    per voice (clean clips): of all terms, and of those the vocabulary lists (the oracle's
    prompt alone holds the others)."""
    if ORACLE not in set(summary["system"]):
        return []
    lines = []
    for by, group in (
        ("all", "all"),
        *(("voice", v) for v in sorted(set(summary.loc[summary["by"] == "voice", "group"]))),
    ):
        rows = summary[(summary["by"] == by) & (summary["group"] == group)].set_index("system")
        ratios = []
        for system in ("engine", "whisper-vocab"):
            if system in rows.index and ORACLE in rows.index:
                share = rows.loc[system, RECALLS] / rows.loc[ORACLE, RECALLS]
                ratios.append(f"{system} {share.iloc[0]:.3f} (listed terms {share.iloc[1]:.3f})")
        if ratios:
            label = "all clips" if by == "all" else f"{group} (clean)"
            lines.append(f"- Term recall / oracle term recall, {label}: {', '.join(ratios)}")
    return lines


def omission_lines(results: pd.DataFrame) -> list[str]:
    """One line per file and system that lost words, with what it lost."""
    lost = results[results["omissions"] > 0]
    return [
        f"- {row.system}, {row.id} ({row.voice}, {row.variant}): {row.omitted}"
        for row in lost.itertuples()
    ] or ["- none"]


def write_report(
    summary: pd.DataFrame,
    path: Path,
    context: Sequence[str],
    notes: Sequence[str],
    omissions: Sequence[str] = (),
) -> None:
    """The Markdown report: context, headline numbers, then the tables behind them."""
    overall = summary[summary["by"] == "all"]
    variants = summary[summary["by"] == "variant"]
    voices = summary[summary["by"] == "voice"]
    sections = [
        "# Medscribe benchmark",
        "\n".join(f"- {line}" for line in context),
        "## Headline",
        "\n".join(_headline(summary)),
        "## Per system (all clips)",
        markdown_table(
            overall,
            [
                ("system", "system", "str"),
                *SCORE_COLUMNS,
                ("wall_s", "wall s", "1f"),
                ("throughput", "audio s / wall s", "1f"),
                ("peak_rss_mb", "peak RSS MB", "int"),
            ],
        ),
        "## Per system and variant",
        "Clean scores of the same dictations are shown beside each noisy and telephone score.",
        markdown_table(
            variants,
            [
                ("system", "system", "str"),
                ("group", "variant", "str"),
                *SCORE_COLUMNS,
                ("clean_wer_same_ids", "clean WER, same texts", "pct"),
                ("clean_term_recall_same_ids", "clean recall, same texts", "pct"),
            ],
        ),
        "## Per system and voice (clean clips)",
        markdown_table(
            voices, [("system", "system", "str"), ("group", "voice", "str"), *SCORE_COLUMNS]
        ),
        "## Omissions per file",
        "Runs of reference words missing from the transcript, per system and file.",
        "\n".join(omissions),
        "## Notes",
        "\n".join(f"- {note}" for note in notes),
    ]
    path.write_text("\n\n".join(sections) + "\n", encoding="utf-8")


def write_chart(summary: pd.DataFrame, path: Path) -> None:
    """WER and term recall per system, overall and per variant, as grouped bars."""
    rows = summary[summary["by"].isin(["all", "variant"])]
    groups = list(dict.fromkeys(rows["group"]))
    systems = list(dict.fromkeys(rows["system"]))
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / len(systems)
    for axis, metric, title in (
        (axes[0], "wer", "WER (lower is better)"),
        (axes[1], "term_recall", "Medical term recall"),
    ):
        for i, system in enumerate(systems):
            values = rows[rows["system"] == system].set_index("group")[metric].reindex(groups)
            axis.bar([g + i * width for g in range(len(groups))], 100 * values, width, label=system)
        axis.set_xticks([g + width * (len(systems) - 1) / 2 for g in range(len(groups))], groups)
        axis.set_ylabel("%")
        axis.set_title(title)
        axis.grid(axis="y", alpha=0.3)
    axes[1].set_ylim(0, 100)
    axes[0].legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
