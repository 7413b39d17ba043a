"""Run the benchmark: synthesize the corpus if needed, run each system, score, report.

    python include/bench/run.py --out include/bench/results
    python include/bench/run.py --limit 8 --systems whisper,whisper-vocab,pocketsphinx

Writes results.csv (one row per system and file), summary.csv, report.md and chart.png.
The engine is benchmarked through its AWS API only when the standard AWS variables point
at a running stack; otherwise it is skipped with the reason.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import retrieval_cost
from bench.corpus import TERMS_PATH, Dictation, load_corpus
from bench.metrics import OMISSION_WORDS, normalize, score
from bench.report import omission_lines, summarize, write_chart, write_report
from bench.synthesize import (
    NOISE_SNR_DB,
    PHONE_RATE,
    Clip,
    add_selection_arguments,
    audio_from_arguments,
)
from bench.systems import (
    DEFAULT_SYSTEMS,
    SYSTEM_NAMES,
    Batch,
    Settings,
    engine_unavailable,
    run_isolated,
)

HERE = Path(__file__).resolve().parent
# Systems too slow for the whole corpus within the benchmark's time budget.
BASELINES = {"pocketsphinx"}
DEFAULT_VOCABULARY = HERE.parent / "medscribe" / "data" / "default_vocabulary.txt"


def read_vocabulary(path: Path | None) -> tuple[Path, list[str]]:
    """The vocabulary file asked for, else the engine's default, else this corpus's terms,
    read the way the engine reads vocabulary files."""
    from medscribe.vocabulary import parse_phrases

    chosen = path or next(p for p in (DEFAULT_VOCABULARY, TERMS_PATH) if p.exists())
    return chosen, parse_phrases(chosen.read_text(encoding="utf-8"))


def coverage(dictations: Sequence[Dictation], vocabulary: Sequence[str]) -> str:
    """How many of the dictations' distinct terms the vocabulary lists (after normalizing)."""
    listed = {normalize(term) for term in vocabulary}
    terms = {normalize(term) for d in dictations for term in d.terms}
    return f"{len(terms & listed)} of the {len(terms)} distinct terms of these dictations"


def score_rows(
    system: str,
    clips: Sequence[Clip],
    batch: Batch,
    corpus: dict[str, Dictation],
    vocabulary: Sequence[str],
) -> list[dict]:
    rows = []
    for clip, item in zip(clips, batch.items, strict=True):
        dictation = corpus[clip.id]
        result = score(dictation.text, item.text, dictation.terms, vocabulary)
        wall = item.wall_s if item.wall_s is not None else float("nan")
        rows.append(
            {
                "system": system,
                **{k: v for k, v in vars(clip).items() if k != "path"},
                "wall_s": wall,
                "rtf": wall / clip.duration_s,
                "ref_words": result.ref_words,
                "errors": result.errors,
                "wer": result.wer,
                "deletions": result.deletions,
                "omissions": len(result.omissions),
                "omitted": " | ".join(result.omissions),
                "terms_total": result.terms_total,
                "terms_recalled": result.terms_recalled,
                "term_recall": result.term_recall,
                "listed_total": result.listed_total,
                "listed_recalled": result.listed_recalled,
                "false_insertions": len(result.inserted),
                "inserted_terms": "; ".join(result.inserted),
                "error": item.error,
                "hypothesis": item.text,
                "path": clip.path,
            }
        )
    return rows


def retrieval_line(
    clips: Sequence[Clip],
    recognizer_s: float,
    dictations: Sequence[Dictation],
    vocabulary: Sequence[str],
) -> str:
    """What choosing each window's prompt costs beside decoding it, on the shipped vocabulary
    and on one of 10,000 phrases."""
    from medscribe.asr import windows
    from medscribe.audio import load

    count = sum(len(windows(load(Path(clip.path).read_bytes()).tracks[0])) for clip in clips)
    decoding_ms = 1000 * recognizer_s / count
    cost = retrieval_cost.measure(dictations, vocabulary)
    return (
        f"Prompt retrieval per window (reference texts in {cost['windows']:.0f} windows of "
        f"{retrieval_cost.WINDOW_WORDS} words): {cost['shipped_window_ms']:.0f} ms on the "
        f"{cost['shipped_phrases']:.0f} shipped phrases, {cost['large_window_ms']:.0f} ms on "
        f"{cost['large_phrases']:.0f} phrases (index built once: {cost['shipped_index_ms']:.0f} "
        f"and {cost['large_index_ms']:.0f} ms); the recognizer spends {decoding_ms:.0f} ms a "
        f"window ({count} windows), so retrieval on 10,000 phrases is "
        f"{cost['large_window_ms'] / decoding_ms:.1%} of it."
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_selection_arguments(parser)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument(
        "--systems",
        default=",".join(DEFAULT_SYSTEMS),
        help="comma-separated: " + ",".join(SYSTEM_NAMES),
    )
    parser.add_argument(
        "--vocabulary",
        type=Path,
        help=f"one term per line (default {DEFAULT_VOCABULARY}, else {TERMS_PATH.name})",
    )
    parser.add_argument(
        "--baseline-every",
        type=int,
        default=3,
        help="run the slow pocketsphinx baseline on every Nth clip only (1: all)",
    )
    parser.add_argument(
        "--model-dir", help="faster-whisper model directory (default: the shipped Whisper base)"
    )
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count() or 1, help="CTranslate2 threads"
    )
    parser.add_argument(
        "--bucket",
        default="medscribe-bench",
        help="S3 bucket for the engine's audio and transcripts",
    )
    args = parser.parse_args(argv)
    unknown = set(args.systems.split(",")) - set(SYSTEM_NAMES)
    if unknown:
        parser.error(f"unknown systems {sorted(unknown)}; choose from {', '.join(SYSTEM_NAMES)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    clips = audio_from_arguments(args)
    synthesis_s = time.perf_counter() - started
    audio_min = sum(c.duration_s for c in clips) / 60
    print(
        f"{len(clips)} clips, {audio_min:.1f} min of audio ready in {synthesis_s:.0f} s", flush=True
    )

    corpus = {d.id: d for d in load_corpus(args.corpus)}
    vocabulary_path, vocabulary = read_vocabulary(args.vocabulary)
    systems = args.systems.split(",")
    model_dir = None
    if any(name.startswith("whisper") for name in systems):
        from medscribe.model import resolve_model

        model_dir = resolve_model(args.model_dir)
    settings = Settings(
        model_dir=model_dir,
        threads=args.threads,
        vocabulary=tuple(vocabulary),
        terms_by_file={Path(c.path).name: corpus[c.id].terms for c in clips},
        bucket=args.bucket,
    )

    rows: list[dict] = []
    walls: dict[str, float] = {}
    peak_rss: dict[str, float | None] = {}
    notes = [
        "References and hypotheses are compared after Whisper's EnglishTextNormalizer plus "
        "medical-notation rules (140/90 = 140 over 90, mg = milligrams, b.i.d. = BID); "
        "see bench/metrics.py.",
        f"Omission: a run of {OMISSION_WORDS} or more consecutive reference words missing from "
        "the transcript (after normalization), e.g. a lost sentence. Deletion rate: deleted "
        "reference words / reference words.",
        "Term recall: a dictation's listed term counts when its normalized words occur "
        "contiguously in the normalized transcript.",
        f"False term insertions: terms of the vocabulary ({len(vocabulary)} terms from "
        f"{vocabulary_path.name}) found in a transcript but not in its reference.",
        "RTF = wall time / audio duration; model loading is not timed. Overall rows time the "
        "whole batch.",
        "whisper-oracle gives each file its own term list, in every window's prompt: the "
        "ceiling of what a prompt can do; whisper-distractors hides those terms among "
        "40 other phrases of the vocabulary. Listed terms are those the vocabulary holds; no "
        "prompt can find the others.",
        "The engine's wall time runs from the first upload to the last transcript downloaded; "
        "its memory is not visible from here.",
    ]
    for name in systems:
        if name == "engine" and (reason := engine_unavailable()):
            print(reason, flush=True)
            notes.append(reason)
            continue
        chosen = clips[:: args.baseline_every] if name in BASELINES else clips
        if len(chosen) < len(clips):
            notes.append(f"{name} ran on one clip in {args.baseline_every} ({len(chosen)} files).")
        print(f"{name}: transcribing {len(chosen)} files ...", flush=True)
        batch = run_isolated(name, settings, [Path(c.path) for c in chosen])
        walls[name], peak_rss[name] = batch.wall_s, batch.peak_rss_mb
        rows += score_rows(name, chosen, batch, corpus, vocabulary)
        failed = [item.error for item in batch.items if item.error]
        if failed:
            notes.append(f"{name}: {len(failed)} files failed, first: {failed[0]}")
        rtf = batch.wall_s / sum(c.duration_s for c in chosen)
        print(f"{name}: {batch.wall_s:.0f} s, RTF {rtf:.3f}, {len(failed)} failed", flush=True)
    if not rows:
        print("no system ran", file=sys.stderr)
        return 1

    args.out.mkdir(parents=True, exist_ok=True)
    results = pd.DataFrame(rows)
    results.to_csv(args.out / "results.csv", index=False)
    summary = summarize(results, walls, peak_rss)
    summary.to_csv(args.out / "summary.csv", index=False)
    voices = sorted({c.voice for c in clips})
    context = [
        f"Generated {time.strftime('%Y-%m-%d %H:%M')} on {os.cpu_count()} cores; "
        f"CTranslate2 threads: {args.threads}; 1-minute load average {load_before:.2f} before "
        f"the run and {os.getloadavg()[0]:.2f} after it (other work on the machine skews times).",
        f"{len({c.id for c in clips})} dictations "
        f"({len({c.id for c in clips if corpus[c.id].long})} long, 1-3 min, in the Piper "
        f"neural voice), {len(clips)} clips, {audio_min:.1f} min of synthetic audio (synthesis {synthesis_s:.0f} s); variants: clean 16 kHz, noisy "
        f"(pink noise, {NOISE_SNR_DB:g} dB SNR), phone (300-3400 Hz, {PHONE_RATE // 1000} kHz "
        "mu-law).",
        f"Voices: {', '.join(voices)}.",
        f"Whisper model: {model_dir or 'not used'}, int8, beam 5. whisper: plain "
        "WhisperModel.transcribe (sequential 30 s windows, no prompt). whisper-vocab: the "
        "engine's recognizer (medscribe.asr: windows cut at pauses, each prompted with the "
        "phrases that sound like what a quick decoding heard there, coverage guarantee, "
        "correction). whisper-fixed-prompt: the recognizer before per-window prompts (the whole "
        "file with one prompt, the vocabulary's first phrases). whisper-vocab-before: "
        "whisper-vocab without the coverage guarantee.",
        f"Vocabulary: {len(vocabulary)} terms from {vocabulary_path}; it lists "
        f"{coverage([corpus[i] for i in dict.fromkeys(c.id for c in clips)], vocabulary)}.",
    ]
    if "whisper-vocab" in walls:
        context.append(
            retrieval_line(clips, walls["whisper-vocab"], list(corpus.values()), vocabulary)
        )
    write_report(summary, args.out / "report.md", context, notes, omission_lines(results))
    write_chart(summary, args.out / "chart.png")
    print(f"wrote {args.out}/results.csv, summary.csv, report.md, chart.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
