"""The benchmark harness around the metrics: selection, synthesis, engine plumbing, report."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bench.corpus import load_corpus, spread
from bench.report import engine_overhead, omission_lines, summarize, write_chart, write_report
from bench.synthesize import LONG_VOICE, VOICES, ensure_audio, pink_noise, plan
from bench.systems import engine_unavailable, s3_location


def test_spread_covers_the_corpus_evenly() -> None:
    corpus = load_corpus()
    picked = spread(corpus, 4)
    step = len(corpus) / 4
    assert [corpus.index(d) for d in picked] == [int(i * step) for i in range(4)]
    assert spread(corpus, None) == corpus


def test_plan_keeps_voices_across_limits_and_always_has_variants() -> None:
    corpus = load_corpus()
    full = {d.id: v for d, v, _ in plan(corpus, None, ["clean"], 10)}
    small = plan(corpus, 6, ["clean", "noisy", "phone"], 4)
    assert all(full[d.id] == voice for d, voice, _ in small)
    assert [variants for _, _, variants in small] == [
        ("clean", "noisy"),
        ("clean",),
        ("clean", "phone"),
        ("clean",),
        ("clean", "noisy"),
        ("clean",),
    ]
    assert len({v.name for v in full.values()}) >= 3  # espeak-ng alone has three voices
    assert all(full[d.id] == LONG_VOICE for d in corpus if d.long)  # a natural neural voice


def test_pink_noise_is_deterministic_and_unit_rms() -> None:
    noise = pink_noise(16000, seed=7)
    assert np.array_equal(noise, pink_noise(16000, seed=7))
    assert np.sqrt(np.mean(noise**2)) == pytest.approx(1.0)
    spectrum = np.abs(np.fft.rfft(noise)) ** 2
    assert spectrum[10:100].mean() > 10 * spectrum[4000:8000].mean()  # power falls with frequency


@pytest.mark.skipif(not shutil.which("espeak-ng") or not shutil.which("sox"), reason="needs tts")
def test_synthesis_is_deterministic_and_writes_every_variant(tmp_path: Path) -> None:
    corpus = load_corpus()[:1]  # pc-01, spoken by the first voice (espeak-ng)
    assert VOICES[0].engine == "espeak"
    first = ensure_audio(corpus, tmp_path / "a", variant_every=1)
    second = ensure_audio(corpus, tmp_path / "b", variant_every=1)
    assert [(c.variant, c.sample_rate) for c in first] == [
        ("clean", 16000),
        ("noisy", 16000),
        ("phone", 8000),
    ]
    for one, other in zip(first, second, strict=True):
        assert Path(one.path).read_bytes() == Path(other.path).read_bytes()
    expected_s = corpus[0].spoken_words / VOICES[0].wpm * 60
    assert first[0].duration_s == pytest.approx(expected_s + 0.5, rel=0.02)
    assert (tmp_path / "a" / "manifest.csv").read_text().count("\n") == 4


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://out/medical/job.json", ("out", "medical/job.json")),
        ("https://s3.us-east-1.amazonaws.com/out/medical/job.json", ("out", "medical/job.json")),
        ("http://127.0.0.1:8333/out/medical/job%201.json", ("out", "medical/job 1.json")),
        ("https://out.s3.amazonaws.com/medical/job.json", ("out", "medical/job.json")),
    ],
)
def test_transcript_uri_to_s3_location(uri: str, expected: tuple[str, str]) -> None:
    assert s3_location(uri, "out") == expected


def test_engine_needs_the_aws_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_TRANSCRIBE", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    reason = engine_unavailable()
    assert reason and "AWS_ENDPOINT_URL_TRANSCRIBE" in reason and "AWS_DEFAULT_REGION" in reason
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_TRANSCRIBE", "http://127.0.0.1:2")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    assert engine_unavailable() is None


def _results() -> pd.DataFrame:
    rows = []
    for system, errors, recalled, wall in (("whisper", 3, 2, 1.0), ("engine", 1, 4, None)):
        for i, variant in enumerate(("clean", "clean", "noisy")):
            rows.append(
                {
                    "system": system,
                    "id": f"d{i % 2}",
                    "variant": variant,
                    "voice": f"v{i % 2}",
                    "duration_s": 10.0,
                    "wall_s": wall if wall is not None else float("nan"),
                    "ref_words": 10,
                    "errors": errors,
                    "deletions": errors - 1,
                    "omissions": int(system == "whisper" and i == 2),
                    "omitted": "increase levothyroxine to 112 mcg" if system == "whisper" else "",
                    "terms_total": 4,
                    "terms_recalled": recalled,
                    "listed_total": 3,
                    "listed_recalled": min(recalled, 3),
                    "false_insertions": 1,
                    "error": "",
                }
            )
    return pd.DataFrame(rows)


def test_summary_pools_counts_and_compares_variants_with_the_same_texts(tmp_path: Path) -> None:
    results = _results()
    summary = summarize(
        results, {"whisper": 3.0, "engine": 6.0}, {"whisper": 500.0, "engine": None}
    )
    whisper = summary[summary["system"] == "whisper"].set_index(["by", "group"])
    assert whisper.loc[("all", "all"), "wer"] == pytest.approx(0.3)
    assert whisper.loc[("all", "all"), "throughput"] == pytest.approx(10.0)
    assert whisper.loc[("variant", "noisy"), "clean_wer_same_ids"] == pytest.approx(0.3)
    assert whisper.loc[("voice", "v0"), "files"] == 1
    engine = summary[summary["system"] == "engine"].set_index(["by", "group"])
    assert np.isnan(engine.loc[("variant", "clean"), "rtf"])  # the engine is timed per batch only
    assert engine_overhead(summary) == {"whisper": pytest.approx(2.0)}

    assert whisper.loc[("all", "all"), "omissions"] == 1
    assert whisper.loc[("all", "all"), "deletion_rate"] == pytest.approx(0.2)
    assert engine.loc[("all", "all"), "omissions"] == 0

    write_report(
        summary,
        tmp_path / "report.md",
        ["context line"],
        ["a note"],
        omission_lines(results),
    )
    write_chart(summary, tmp_path / "chart.png")
    report = (tmp_path / "report.md").read_text()
    assert "Engine overhead: engine wall / whisper wall = 2.00" in report
    assert "- whisper, d0 (v0, noisy): increase levothyroxine to 112 mcg" in report
    assert "| whisper | noisy |" in report
    assert (tmp_path / "chart.png").read_bytes()[:4] == b"\x89PNG"
