"""Alternative transcriptions: up to N readings of each segment of speech, best first.

The job's words (those of ``results.items``, coverage guaranteed) are cut into segments at
pauses and speaker changes; each segment's reading is its first alternative. Its audio is
then decoded again on its own by a wider beam search that keeps several hypotheses, and
those whose words differ from every reading kept so far follow in the order of their
scores, each aligned to the audio for word times and per-word confidences.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from ctranslate2 import StorageView
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import Word as Piece
from faster_whisper.transcribe import merge_punctuations

from .asr import Recognizer, join_pieces
from .audio import SAMPLE_RATE
from .words import Word

#: A silence this long between two words starts a new segment.
PAUSE_S = 1.0
#: Whisper hears 30 s at a time: a segment, with its padding, must fit in one window.
MAX_SEGMENT_S = 25.0
#: Audio kept around a segment's words when it is decoded again.
PAD_S = 0.2
#: faster-whisper's defaults for attaching punctuation to the neighbouring word.
PREPEND_PUNCTUATION = "\"'“¿([{-"
APPEND_PUNCTUATION = "\"'.。,，!！?？:：”)]}、"


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
        self.model = recognizer.model
        self.tokenizer = Tokenizer(
            self.model.hf_tokenizer, self.model.model.is_multilingual, "transcribe", "en"
        )

    def segments(
        self, samples: np.ndarray, words: list[Word], phrases: list[str], count: int
    ) -> list[Segment]:
        """Every segment of ``words`` with up to ``count`` readings that differ in words."""
        prompt = self.model.get_prompt(
            self.tokenizer,
            [],
            without_timestamps=True,
            hotwords=self.recognizer.prompt(phrases),
        )
        duration = len(samples) / SAMPLE_RATE
        segments = []
        for run in split(words):
            start, end = max(run[0].start - PAD_S, 0.0), min(run[-1].end + PAD_S, duration)
            readings = [run]
            seen = {_spoken(" ".join(word.text for word in run))}
            encoded, frames = self._encode(samples, start, end)
            for tokens in self._hypotheses(encoded, prompt, count):
                if len(readings) == count:
                    break
                spoken = _spoken(self.tokenizer.decode(tokens))
                if spoken and spoken not in seen:
                    seen.add(spoken)
                    readings.append(self._timed(tokens, encoded, frames, start, end))
            segments.append(Segment(run[0].start, run[-1].end, readings))
        return segments

    def align(self, samples: np.ndarray, start: float, end: float, text: str) -> list[Word]:
        """The words of ``text``, known to be said between ``start`` and ``end``, timed on
        that audio (forced alignment: nothing is recognized)."""
        encoded, frames = self._encode(samples, start, end)
        tokens = self.tokenizer.encode(" " + text.strip())
        return self._timed(tokens, encoded, frames, start, end)

    def _encode(self, samples: np.ndarray, start: float, end: float) -> tuple[StorageView, int]:
        """Whisper's encoding of the audio from ``start`` to ``end``, and its frame count."""
        span = samples[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]
        features = self.model.feature_extractor(span)
        return self.model.encode(pad_or_trim(features)), features.shape[-1]

    def _hypotheses(self, encoded: StorageView, prompt: list[int], count: int) -> list[list[int]]:
        """Beam hypotheses' text tokens, best score first.

        The beam is twice as wide as the readings asked for: many hypotheses differ from
        one another only in punctuation and count as one reading.
        """
        width = max(self.recognizer.options["beam_size"], 2 * count)
        result = self.model.model.generate(
            encoded,
            [prompt],
            beam_size=width,
            num_hypotheses=width,
            max_length=self.model.max_length,
            return_scores=True,
            suppress_blank=True,
            suppress_tokens=[-1],
        )[0]
        eot = self.tokenizer.eot
        return [[token for token in tokens if token < eot] for tokens in result.sequences_ids]

    def _timed(
        self, tokens: list[int], encoded: StorageView, frames: int, start: float, end: float
    ) -> list[Word]:
        """A hypothesis as words, timed and scored by aligning it to the segment's audio."""
        [alignment] = self.model.find_alignment(self.tokenizer, [tokens], encoded, frames)
        merge_punctuations(alignment, PREPEND_PUNCTUATION, APPEND_PUNCTUATION)
        pieces = [
            Piece(
                start=start + float(piece["start"]),
                end=start + float(piece["end"]),
                word=piece["word"],
                probability=float(piece["probability"]),
            )
            for piece in alignment
            if piece["word"]
        ]
        return join_pieces(pieces, end)
