"""Alternative transcriptions: up to N readings of each segment of speech, best first.

The job's words (those of ``results.items``, coverage guaranteed) are cut into segments at
pauses and speaker changes; each segment's reading is its first alternative. Its audio is
then decoded again on its own by a wider beam search that keeps several hypotheses, and
those whose words differ from every reading kept so far follow in the order of their
scores, each aligned to the audio for word times and per-word confidences.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import retrieval
from .asr import RETRIEVED, Recognizer
from .audio import SAMPLE_RATE
from .coverage import Span
from .words import Word

#: A silence this long between two words starts a new segment.
PAUSE_S = 1.0
#: Whisper hears 30 s at a time: a segment, with its padding, must fit in one window.
MAX_SEGMENT_S = 25.0
#: Audio kept around a segment's words when it is decoded again.
PAD_S = 0.2


@dataclass(frozen=True)
class Segment:
    """A stretch of speech and its readings, best first; the first is the job's own words."""

    start: float
    end: float
    alternatives: list[list[Word]]


def split(words: list[Word]) -> list[list[Word]]:
    """Runs of words without a long pause, a change of speaker, or more than one window."""
    runs: list[list[Word]] = []
    for word in words:
        run = runs[-1] if runs else None
        if (
            run is None
            or word.start - run[-1].end >= PAUSE_S
            or word.speaker != run[-1].speaker
            or word.end - run[0].start > MAX_SEGMENT_S
        ):
            runs.append([word])
        else:
            run.append(word)
    return runs


def _spoken(text: str) -> tuple[str, ...]:
    """What was said, whatever the punctuation, case and hyphens."""
    return tuple(re.sub(r"[^\w']+", " ", text.lower()).split())


class Alternatives:
    """N-best decoding of segments with the worker's loaded model."""

    def __init__(self, recognizer: Recognizer) -> None:
        self.recognizer = recognizer

    def segments(
        self,
        samples: np.ndarray,
        words: list[Word],
        phrases: Sequence[str],
        count: int,
        own: Sequence[str] = (),
    ) -> list[Segment]:
        """Every segment of ``words`` with up to ``count`` readings that differ in words, each
        segment prompted as a window is (``own`` phrases, then those sounding like it)."""
        recognizer = self.recognizer
        index = retrieval.phrase_index(tuple(phrases))
        duration = len(samples) / SAMPLE_RATE
        # The beam is twice as wide as the readings asked for: many hypotheses differ from
        # one another only in punctuation and count as one reading.
        width = max(recognizer.beam_size, 2 * count)
        segments = []
        for run in split(words):
            audio = recognizer.encode(
                samples, Span(max(run[0].start - PAD_S, 0.0), min(run[-1].end + PAD_S, duration))
            )
            prompt = recognizer.steered(own, retrieval.candidates(run, index, RETRIEVED))
            readings = [run]
            seen = {_spoken(" ".join(word.text for word in run))}
            for tokens in recognizer.hypotheses([audio], [prompt], width, width)[0]:
                if len(readings) == count:
                    break
                spoken = _spoken(recognizer.tokenizer.decode(tokens))
                if spoken and spoken not in seen:
                    seen.add(spoken)
                    readings.append(recognizer.timed(tokens, audio))
            segments.append(Segment(run[0].start, run[-1].end, readings))
        return segments

    def align(self, samples: np.ndarray, start: float, end: float, text: str) -> list[Word]:
        """The words of ``text``, known to be said between ``start`` and ``end``, timed on
        that audio (forced alignment: nothing is recognized)."""
        audio = self.recognizer.encode(samples, Span(start, end))
        tokens = self.recognizer.tokenizer.encode(" " + text.strip())
        return self.recognizer.timed(tokens, audio)
