"""The coverage guarantee: every stretch of speech ends up covered by words, or is counted.

Whisper can end a window early (a prompt makes that likelier), return nothing for a
chunk of speech, skip a few words and stretch the next word's timing over them, or
repeat one word over a sentence ("atorvastatin, atorvastatin, atorvastatin"); the
transcript then reads well and silently lacks a sentence. So after decoding, voice
activity detection marks where speech is, and every gap between two consecutive words
(and before the first, after the last) that still holds speech, every word holding far
more speech than saying it takes, and every loop, is decoded again on its own, by ever
more conservative attempts. Speech that no attempt turns into words is returned, so that it
is reported rather than hidden.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
from faster_whisper.vad import VadOptions, get_speech_timestamps

from .audio import SAMPLE_RATE
from .words import Word

#: Word timings are approximate: speech this close to a word counts as that word's.
SLACK_S = 0.25
#: A gap holding at least this much speech is missing words (a short word takes ~0.25 s).
MIN_SPEECH_S = 0.5
#: Audio kept around the speech of a gap when it is decoded again, inside the gap.
PAD_S = 0.3
#: The most speech one word takes: this much, plus ``SPOKEN_S`` per letter as it is said.
#: Generous: of the 7,400 first-pass words of the benchmark's 72 clips, only a word over
#: skipped ones exceeded it ("you're" held 2.1 s: "recheck a basic metabolic panel and urine").
WORD_S = 0.3
SPOKEN_S = 0.1
#: A word timed under this share of saying it (``SPOKEN_S`` a letter) was squeezed.
SQUEEZED = 0.25
#: The same one to ``LOOP_WORDS`` words this many times in a row are a decoding loop, not
#: dictation: in the benchmark only the vocabulary-prompted first pass made them (3 of 72
#: clips), over a sentence it never wrote.
LOOP_REPEATS = 3
LOOP_WORDS = 4
#: Speech probability from which voice activity detection counts a frame as speech, for the
#: first pass and this check alike. Below faster-whisper's 0.5: on 8 kHz telephone audio 0.5
#: heard 37 of a dictation's 70 s of speech, and whole sentences were never decoded.
SPEECH_THRESHOLD = 0.35
#: Voice activity settings tighter than the decoder's: short pauses split speech, little padding.
SPEECH = VadOptions(threshold=SPEECH_THRESHOLD, min_silence_duration_ms=250, speech_pad_ms=60)

#: Decodes one stretch of samples into words timed from its own start.
Decoder = Callable[[np.ndarray], list[Word]]


@dataclass(frozen=True)
class Span:
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return max(0.0, self.end - self.start)


@dataclass(frozen=True)
class Gap:
    """A stretch that holds speech without words for it: ``span`` to decode, ``speech_s``
    of speech uncovered inside it. Words found there go before ``words[index]``, or in place
    of the ``replaces`` words from there: a word stretched over speech, or a loop."""

    span: Span
    speech_s: float
    index: int
    replaces: int = 0

    def takes(self, found: Sequence[Word]) -> bool:
        """Whether words decoded from ``span`` go in: a stretched word gives way only to
        more words, and no words that loop go in."""
        if self.replaces == 1:
            return len(found) > 1
        return bool(found) and not loops(found)


def loops(words: Sequence[Word]) -> dict[int, int]:
    """Where the same words repeat ``LOOP_REPEATS`` times or more: the index of the first
    word of each loop, and how many words the loop holds."""
    said = [re.sub(r"[\W_]", "", word.text.lower()) for word in words]
    found: dict[int, int] = {}
    index = 0
    while index < len(said):
        for size in range(1, LOOP_WORDS + 1):
            unit = said[index : index + size]
            if len(unit) < size or not all(unit):
                break
            times = 1
            while said[index + times * size : index + (times + 1) * size] == unit:
                times += 1
            if times >= LOOP_REPEATS:
                found[index] = times * size
                break
        index += found.get(index, 1)
    return found


def spoken_letters(text: str) -> int:
    """About how many letters saying ``text`` takes: "78%" is "seventy-eight percent"."""
    return sum(char.isalpha() + 5 * char.isdigit() + 7 * (char == "%") for char in text)


def _speech_in(span: Span, speech: Sequence[Span]) -> list[Span]:
    return [
        piece
        for s in speech
        if (piece := Span(max(s.start, span.start), min(s.end, span.end))).seconds > 0
    ]


def _held(span: Span, speech: Sequence[Span]) -> float:
    """Seconds of speech inside ``span``."""
    return sum(piece.seconds for piece in _speech_in(span, speech))


def speech_spans(samples: np.ndarray, longest: float = float("inf")) -> list[Span]:
    """Where voice activity detection hears speech, in seconds, in pieces of at most
    ``longest`` seconds."""
    options = replace(SPEECH, max_speech_duration_s=longest)
    return [
        Span(float(stamp["start"]) / SAMPLE_RATE, float(stamp["end"]) / SAMPLE_RATE)
        for stamp in get_speech_timestamps(samples, options)
    ]


def kept_to_speech(words: Sequence[Word], speech: Sequence[Span]) -> list[Word]:
    """Words timed by the speech they hold. Aligning a window's text to its audio can stretch
    a word over the pause before or after it: it is kept from the first to the last moment of
    speech inside it. It can also squeeze a word into the end of its own speech ("79." timed
    20 ms at the end of the 0.9 s "seventy-nine" took): a word timed under ``SQUEEZED`` of
    saying it is moved to start where its speech does, after the word before, and no earlier
    than saying it takes, so speech of a word that was missed is still left to find."""
    kept: list[Word] = []
    after = 0.0  # the latest end of the words before: times may overlap
    for word in words:
        if inside := _speech_in(Span(word.start, word.end), speech):
            start, end = inside[0].start, inside[-1].end
            saying = SPOKEN_S * spoken_letters(word.text)
            if end - start < SQUEEZED * saying:
                onset = next(piece.start for piece in speech if piece.end >= start)
                start = min(start, max(onset, after, end - saying))
            word = replace(word, start=start, end=end)
        kept.append(word)
        after = max(after, word.end)
    return kept


def gaps(words: Sequence[Word], speech: Sequence[Span], duration: float) -> list[Gap]:
    """The stretches between consecutive words (and the file's edges) with speech in them,
    the words holding much more speech than they take to say, and the loops.

    A gap between words is trimmed to its speech plus ``PAD_S``, never reaching into the
    words around it; the gap of a stretched word or a loop is its words plus ``PAD_S``
    within their neighbours. A loop counts as uncovered the speech after its first round.
    """
    found = []
    looped = loops(words)
    loop_end = 0  # the words before this index are checked as part of a loop
    covered_until = 0.0  # the latest end of any word so far: times may overlap
    for index in range(len(words) + 1):
        after_word = index > 0
        before_word = index < len(words)
        if after_word:
            covered_until = max(covered_until, words[index - 1].end)
        bounds = Span(covered_until, words[index].start if before_word else duration)
        inner = Span(bounds.start + SLACK_S * after_word, bounds.end - SLACK_S * before_word)
        heard = _speech_in(inner, speech)
        speech_s = sum(piece.seconds for piece in heard)
        if speech_s >= MIN_SPEECH_S and index >= loop_end:
            span = Span(
                max(bounds.start, heard[0].start - PAD_S), min(bounds.end, heard[-1].end + PAD_S)
            )
            found.append(Gap(span, speech_s, index))
        if index in looped:
            size = looped[index]
            loop_end = index + size
            # Taken as the first round: a third of the loop's words, the whole unit when it
            # repeats three or four times.
            first_round = size // LOOP_REPEATS
            rest = Span(words[index + first_round].start, words[loop_end - 1].end)
            found.append(
                _replacing(words, index, size, covered_until, duration, _held(rest, speech))
            )
        elif before_word and index >= loop_end:
            word = words[index]
            excess = (
                _held(Span(word.start, word.end), speech)
                - WORD_S
                - SPOKEN_S * spoken_letters(word.text)
            )
            if excess >= MIN_SPEECH_S:
                found.append(_replacing(words, index, 1, covered_until, duration, excess))
    return found


def _replacing(
    words: Sequence[Word], index: int, size: int, after: float, duration: float, speech_s: float
) -> Gap:
    """The gap of ``size`` words from ``index``, padded within the words around them."""
    first, last = words[index], words[index + size - 1]
    following = words[index + size].start if index + size < len(words) else duration
    span = Span(
        min(first.start, max(after, first.start - PAD_S)),
        max(last.end, min(following, last.end + PAD_S)),
    )
    return Gap(span, speech_s, index, size)


def placed(words: list[Word], span: Span) -> list[Word]:
    """Words decoded from ``span``'s samples, moved onto the file's clock and kept inside it."""
    moved = []
    for word in words:
        start = min(span.start + word.start, span.end)
        end = min(max(span.start + word.end, start), span.end)
        moved.append(Word(word.text, start, end, word.confidence))
    return moved


def span_samples(samples: np.ndarray, span: Span) -> np.ndarray:
    return samples[int(span.start * SAMPLE_RATE) : int(span.end * SAMPLE_RATE)]


def ensure_coverage(
    words: list[Word],
    samples: np.ndarray,
    attempts: Sequence[Decoder],
    speech: Sequence[Span] | None = None,
) -> tuple[list[Word], list[Gap]]:
    """Fill every gap with words from the first attempt whose words it takes.

    Returns all words in time order, each kept to the speech inside it, and the gaps no
    attempt could fill. ``speech``, if given, is where voice activity detection heard
    speech in ``samples``, in pieces of any length (see ``speech_spans``).
    """
    duration = len(samples) / SAMPLE_RATE
    if speech is None:
        speech = speech_spans(samples)
    words = kept_to_speech(words, speech)
    for decode in attempts:
        missing = gaps(words, speech, duration)
        if not missing:
            break
        for gap in reversed(missing):  # from the end, so earlier indexes stay valid
            found = placed(decode(span_samples(samples, gap.span)), gap.span)
            if gap.takes(found):
                words = words[: gap.index] + found + words[gap.index + gap.replaces :]
    return words, gaps(words, speech, duration)


def piecewise(decode: Decoder) -> Decoder:
    """``decode`` applied to each stretch of speech on its own: shorter windows give the
    model less room to stop early."""

    def decode_pieces(samples: np.ndarray) -> list[Word]:
        duration = len(samples) / SAMPLE_RATE
        words: list[Word] = []
        start = 0.0
        for piece in speech_spans(samples):
            span = Span(max(start, piece.start - PAD_S), min(duration, piece.end + PAD_S))
            words += placed(decode(span_samples(samples, span)), span)
            start = span.end
        return words

    return decode_pieces
