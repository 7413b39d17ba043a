"""Speech recognition with faster-whisper: samples in, timed words with confidences out.

The audio is cut at pauses into windows Whisper hears whole. Each window is encoded once
and decoded at most three times: quickly (greedy, prompted by the job's own vocabulary
only), then, while the words heard sound like vocabulary phrases its prompt did not hold,
with a beam and those phrases in its prompt (see ``retrieval``); a file's windows are
decoded together, a few at a time, which costs little more than one. Speech still left without
words is decoded again (see ``coverage``), and near-miss words are snapped to a phrase (see
``correction``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import pairwise
from typing import Any

import numpy as np
from ctranslate2 import StorageView
from faster_whisper import WhisperModel
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import Segment, get_compression_ratio, merge_punctuations
from faster_whisper.transcribe import Word as Piece

from . import correction, retrieval
from .audio import SAMPLE_RATE
from .coverage import (
    SPEECH_THRESHOLD,
    Decoder,
    Gap,
    Span,
    ensure_coverage,
    loops,
    piecewise,
    span_samples,
    speech_spans,
)
from .model import resolve_model
from .words import Word

log = logging.getLogger(__name__)

#: Whisper attends to at most 223 prompt tokens; fewer keep it listening to the audio.
PROMPT_TOKEN_BUDGET = 120
#: The quick decoding only finds what to prompt a window with: greedy is enough.
QUICK_BEAM = 1
#: Whisper hears 30 s at a time: a window, padding included, is no longer than this.
WINDOW_S = 29.0
#: Audio kept around a window's speech, inside the pauses on either side.
WINDOW_PAD_S = 0.3
#: Windows of a file decoded together: on 2 cores a beam over three windows at once took 0.6
#: of the time over each alone. Each window in a batch holds its beams' attention over its
#: audio (the benchmark's peak memory rose from 634 to 794 MB).
BATCH = 4
#: Phrases retrieved for a window's prompt, most alike first (those that fit the budget go in).
RETRIEVED = 40
#: A window is decoded again, steered, while a phrase new to its prompt is among this many
#: of the best candidates: any of them after the quick reading; after a steered reading, only
#: the closest (the rest seldom change what is written, and each decoding costs a beam).
NEW_WITHIN = (RETRIEVED, 10)
#: A phrase only the prompt suggested, written with less confidence than this over words the
#: reading before heard, was not said: in the benchmark 7 of 10 such phrases were wrong
#: ("levofloxacin" for levothyroxine, "PCOS").
DOUBTFUL = 0.02
#: A steered reading that looped is read again with no run of this many tokens repeated.
NO_REPEAT = 3
#: How many last words of a reading barred from repeating must hold the quick reading's last.
ENDING = 3
#: Temperatures of the sampling re-decode attempt (greedy decoding already failed there).
REDECODE_SAMPLING = (0.4, 0.6, 0.8)
#: Whisper's limit on how well a reading's text compresses: above it, the reading loops.
REPETITIVE = 2.4
#: faster-whisper's defaults for attaching punctuation to the neighbouring word.
PREPEND_PUNCTUATION = "\"'“¿([{-"
APPEND_PUNCTUATION = "\"'.。,，!！?？:：”)]}、"


def decode_options(beam_size: int) -> dict[str, Any]:
    """faster-whisper's settings for decoding a stretch again (the coverage guarantee):
    sequential 30 s windows over the speech voice activity detection finds, each decoded
    on its own (one misheard window must not steer the next)."""
    return {
        "language": "en",
        "beam_size": beam_size,
        "word_timestamps": True,
        "vad_filter": True,
        "vad_parameters": {"threshold": SPEECH_THRESHOLD},
        "condition_on_previous_text": False,
    }


def as_prompt(phrases: Sequence[str]) -> str | None:
    """Phrases as Whisper's prompt reads them: a list, ended like a sentence."""
    return ", ".join(phrases) + "." if phrases else None


def steering_prompt(phrases: Sequence[str]) -> str | None:
    """A steered reading's prompt: ``phrases``, listed in order of priority, written the
    other way round. Whisper weighs most the prompt words nearest the text it writes, and
    the weakest of a window's candidates there were the ones it wrote though not said."""
    return as_prompt(phrases[::-1])


def repeats(words: Sequence[Word]) -> bool:
    """Whether a reading's text compresses beyond Whisper's limit: it loops."""
    return get_compression_ratio(" ".join(word.text for word in words)) > REPETITIVE


def sound(reading: Sequence[Word], before: Sequence[Word]) -> bool:
    """Whether a reading of a window neither stops early (under half the words of the
    reading before) nor repeats itself."""
    return len(reading) >= len(before) / 2 and not loops(reading) and not repeats(reading)


def ends_alike(reading: Sequence[Word], before: Sequence[Word]) -> bool:
    """Whether ``reading`` ends as ``before`` did: the letters of ``before``'s last word are
    among those of ``reading``'s last ``ENDING`` words."""
    if not before:
        return True
    last = retrieval.letters(before[-1].text)
    return last in "".join(retrieval.letters(word.text) for word in reading[-ENDING:])


def steered(before: list[Word], after: list[Word], prompted: Sequence[str]) -> list[Word]:
    """A window's words once ``after``, its steered reading, replaces ``before``: what the
    prompt only suggested is dropped and what it lost is kept (``undoubted``, ``unlost``)."""
    return unlost(before, undoubted(before, after, prompted), prompted)


def spelling(words: Sequence[Word], phrases: set[str]) -> list[slice]:
    """The runs of ``words`` that spell one of ``phrases`` (see ``retrieval.written``), the
    longest first where they overlap."""
    found: list[slice] = []
    index = 0
    while index < len(words):
        for size in range(min(retrieval.MAX_RUN, len(words) - index), 0, -1):
            if retrieval.written([word.text for word in words[index : index + size]]) in phrases:
                found.append(slice(index, index + size))
                index += size
                break
        else:
            index += 1
    return found


def inside(words: Sequence[Word], run: Sequence[Word]) -> list[int]:
    """The indices of ``words`` whose middle falls in the time of ``run``."""
    return [
        index
        for index, word in enumerate(words)
        if run[0].start <= (word.start + word.end) / 2 <= run[-1].end
    ]


def undoubted(before: list[Word], after: list[Word], prompted: Sequence[str]) -> list[Word]:
    """``after``, a steered reading, with ``before``'s words over the time of each phrase of
    its prompt that ``after`` wrote with less than ``DOUBTFUL`` confidence and ``before``
    did not write, unless ``before`` wrote only a garble of it there (see ``garbled``)."""
    phrases = {retrieval.written(phrase.split()): phrase for phrase in prompted}
    spellings = set(phrases)
    had = retrieval.runs(before)
    kept = list(after)
    for run in reversed(spelling(after, spellings)):
        words = after[run]
        spelled = retrieval.written([word.text for word in words])
        if spelled in had or min(word.confidence for word in words) >= DOUBTFUL:
            continue
        there = [before[index] for index in inside(before, words)]
        if not garbled(there, phrases[spelled], spellings):
            kept[run] = there
    return kept


def garbled(words: Sequence[Word], phrase: str, phrases: set[str]) -> bool:
    """Whether ``words`` are no words but ``phrase`` misheard ("hyval hernia", "butus on"):
    where the reading before wrote English words or a phrase of the prompt, it heard words,
    and a phrase written there without confidence had only been suggested ("a Texas" is
    not ataxia, "levothyroxine" not levofloxacin)."""
    texts = [retrieval.letters(word.text) for word in words]
    return (
        bool(texts)
        and all(texts)  # a number was heard as such
        and not correction.english(texts)
        and not spelling(words, phrases)
        and retrieval.sounds_like(texts, phrase)
    )


def unlost(before: list[Word], after: list[Word], prompted: Sequence[str]) -> list[Word]:
    """``after``, a steered reading, with each phrase of its prompt that ``before`` wrote
    and ``after`` did not written back over its time, unless ``after`` wrote another phrase
    of its prompt there at least as surely (see ``surest``), or the same words in another
    form: a reading steered by more phrases can lose one the reading before heard ("start
    Tant's loss" after "start tamsulosin", "hyperglycemia" at 0.41 after "hyperkalemia" at
    0.64), but one that wrote "wheeze" where the reading before wrote the prompt's
    "wheezing" heard what was said."""
    phrases = {retrieval.written(phrase.split()) for phrase in prompted}
    has = retrieval.runs(after)
    kept = list(after)
    for run in reversed(spelling(before, phrases)):
        words = before[run]
        if retrieval.written([word.text for word in words]) in has:
            continue
        over = inside(kept, words)
        there = kept[over[0] : over[-1] + 1] if over else []
        if there and (
            any(surest(there[run], words) for run in spelling(there, phrases))
            or correction.another_form(
                *(" ".join(word.text for word in run) for run in (there, words))
            )
        ):
            continue
        if over:
            kept[over[0] : over[-1] + 1] = words
        else:
            at = next((i for i, word in enumerate(kept) if word.start >= words[0].start), len(kept))
            kept[at:at] = words
    return kept


def surest(words: Sequence[Word], than: Sequence[Word]) -> bool:
    """Whether the model wrote ``words`` at least as surely as ``than``: their least
    confident words compared."""
    return min(word.confidence for word in words) >= min(word.confidence for word in than)


@dataclass(frozen=True)
class Recognition:
    """The words of one track, and the speech that no decoding attempt turned into words."""

    words: list[Word]
    uncovered: list[Gap]


def timed_words(segments: Iterable[Segment], duration: float) -> list[Word]:
    """faster-whisper's word pieces as words, none ending after the audio does."""
    return join_pieces((piece for segment in segments for piece in segment.words or []), duration)


def join_pieces(pieces: Iterable[Piece], duration: float) -> list[Word]:
    """Word pieces as words: a piece without a leading space continues the previous word."""
    words: list[Word] = []
    for word in pieces:
        start, end = min(word.start, duration), min(word.end, duration)
        if words and not word.word.startswith(" "):
            # Whisper splits "52-year-old" into tokens; AWS reports one item.
            last = words[-1]
            merged = last.text + word.word
            confidence = min(last.confidence, word.probability)
            words[-1] = Word(merged, last.start, max(last.end, end), confidence)
        else:
            words.append(Word(word.word.strip(), start, end, word.probability))
    return [word for word in words if word.text]


#: The longest stretch of speech a window holds: its padding fits around it.
WINDOW_SPEECH_S = WINDOW_S - 2 * WINDOW_PAD_S


def windows(samples: np.ndarray, speech: Sequence[Span] | None = None) -> list[Span]:
    """The speech cut at pauses into windows of at most ``WINDOW_S``, each padded by up to
    ``WINDOW_PAD_S`` within the pauses around it. ``speech``, if given, is where voice
    activity detection heard it, in pieces of at most ``WINDOW_SPEECH_S``."""
    duration = len(samples) / SAMPLE_RATE
    groups: list[list[Span]] = []
    if speech is None:
        speech = speech_spans(samples, WINDOW_SPEECH_S)
    for piece in speech:
        if groups and piece.end - groups[-1][0].start <= WINDOW_SPEECH_S:
            groups[-1].append(piece)
        else:
            groups.append([piece])
    # Neighbouring windows reach at most halfway into the pause between them.
    cuts = [0.0, *((a[-1].end + b[0].start) / 2 for a, b in pairwise(groups)), duration]
    return [
        Span(max(low, group[0].start - WINDOW_PAD_S), min(high, group[-1].end + WINDOW_PAD_S))
        for group, (low, high) in zip(groups, pairwise(cuts), strict=True)
    ]


@dataclass(frozen=True)
class Encoding:
    """Whisper's encoding of a span of audio: computed once, decoded as often as needed."""

    output: StorageView
    frames: int
    span: Span


class Recognizer:
    """One loaded model; a worker builds it once and reuses it for every job."""

    def __init__(
        self,
        model_dir: str | None = None,
        *,
        compute_type: str = "int8",
        cpu_threads: int = 0,
        beam_size: int = 5,
    ) -> None:
        path = resolve_model(model_dir)
        self.model = WhisperModel(
            str(path), device="cpu", compute_type=compute_type, cpu_threads=cpu_threads
        )
        self.tokenizer = Tokenizer(
            self.model.hf_tokenizer, self.model.model.is_multilingual, "transcribe", "en"
        )
        self.beam_size = beam_size
        self.options = decode_options(beam_size)
        log.info("loaded model %s (%s)", path, compute_type)

    def prompt(self, phrases: Sequence[str]) -> str | None:
        """As many phrases as fit the token budget, in order of priority."""
        return as_prompt(self.fitting(phrases))

    def fitting(self, phrases: Sequence[str]) -> list[str]:
        """The first distinct ``phrases`` that fit the prompt's token budget together."""
        kept: list[str] = []
        used = 0
        for phrase in dict.fromkeys(phrases):
            cost = len(self.model.hf_tokenizer.encode(" " + phrase + ",").ids)
            if used + cost > PROMPT_TOKEN_BUDGET:
                break
            kept.append(phrase)
            used += cost
        return kept

    def steered(self, own: Sequence[str], found: Sequence[retrieval.Candidate]) -> str | None:
        """A window's prompt: the job's phrases, then those retrieved for the window."""
        return steering_prompt(self.fitting([*own, *(candidate.phrase for candidate in found)]))

    def transcribe(
        self, samples: np.ndarray, phrases: Sequence[str], own: Sequence[str] = ()
    ) -> Recognition:
        """Words steered by the vocabulary, every stretch of speech covered or counted.

        ``phrases`` is the whole vocabulary; ``own`` (the job's vocabulary) is in every
        prompt, and each window's prompt adds the phrases that sound like what was heard there.
        """
        speech = speech_spans(samples, WINDOW_SPEECH_S)  # heard once, for windows and coverage
        first = self.first_pass(samples, phrases, own, speech)
        words, uncovered = ensure_coverage(first, samples, self.redecoding, speech)
        if len(words) > len(first) or uncovered:
            log.info(
                "re-decoding added %d words; %.1f s of speech in %d stretch(es) still uncovered",
                len(words) - len(first),
                sum(gap.speech_s for gap in uncovered),
                len(uncovered),
            )
        return Recognition(correction.snap(words, list(phrases)), uncovered)

    def first_pass(
        self,
        samples: np.ndarray,
        phrases: Sequence[str],
        own: Sequence[str] = (),
        speech: Sequence[Span] | None = None,
    ) -> list[Word]:
        """Each window's words, steered by the phrases that sound like what was heard there
        (``speech``: see ``windows``)."""
        index = retrieval.phrase_index(tuple(phrases))
        spans = windows(samples, speech)
        words: list[Word] = []
        for first in range(0, len(spans), BATCH):
            audios = [self.encode(samples, span) for span in spans[first : first + BATCH]]
            for heard in self.steer(audios, index, own):
                words += heard
        return words

    def steer(
        self, audios: Sequence[Encoding], index: retrieval.PhraseIndex, own: Sequence[str]
    ) -> list[list[Word]]:
        """Each of ``audios`` decoded quickly, prompted by the job's vocabulary only; then,
        while its words sound like phrases that were not in its prompt yet, decoded again
        with a beam and those phrases (see ``NEW_WITHIN``). Each reading hears the terms
        better, and so retrieves them better, than the one before ("adobe acetate" ->
        "adivastatin" -> atorvastatin)."""
        heard = self.decode(audios, self.prompt(own), QUICK_BEAM)
        plain = self.fitting(own)
        tried = [plain] * len(audios)
        steering = range(len(audios))
        for within in NEW_WITHIN:
            prompts: dict[int, list[str]] = {}
            for i in steering:
                found = retrieval.candidates(heard[i], index, RETRIEVED)
                if any(not c.heard and c.phrase not in tried[i] for c in found[:within]):
                    prompts[i] = self.fitting([*own, *(c.phrase for c in found), *tried[i]])
            readings = self.read(
                [audios[i] for i in prompts],
                [steering_prompt(p) for p in prompts.values()],
                self.beam_size,
            )
            steering = []
            for (i, prompted), again in zip(prompts.items(), readings, strict=True):
                if sound(again, heard[i]):
                    heard[i], tried[i] = steered(heard[i], again, prompted), prompted
                    steering.append(i)
            # Where the prompted decoding stops early or repeats itself, the window is
            # steered no further. If its words are still the quick reading's, it is read
            # again with that prompt, barred from repeating itself: kept if it still ends as
            # the quick reading does (so barred, a decoding may run on reciting its prompt),
            # else read with the beam and the quick prompt. The greedy reading is good
            # enough to retrieve from, not to keep.
            failed = {i: prompts[i] for i in prompts if tried[i] is plain}
            readings = self.read(
                [audios[i] for i in failed],
                [steering_prompt(prompted) for prompted in failed.values()],
                self.beam_size,
                NO_REPEAT,
            )
            for (i, prompted), again in zip(failed.items(), readings, strict=True):
                if sound(again, heard[i]) and ends_alike(again, heard[i]):
                    heard[i], tried[i] = steered(heard[i], again, prompted), prompted
            unsteered = [i for i in failed if tried[i] is plain]
            readings = self.read(
                [audios[i] for i in unsteered], [as_prompt(plain)] * len(unsteered), self.beam_size
            )
            for i, again in zip(unsteered, readings, strict=True):
                if sound(again, heard[i]):
                    heard[i] = again
        return heard

    def encode(self, samples: np.ndarray, span: Span) -> Encoding:
        """Whisper's encoding of ``span`` (at most 30 s) of ``samples``."""
        features = self.model.feature_extractor(span_samples(samples, span))
        return Encoding(self.model.encode(pad_or_trim(features)), features.shape[-1], span)

    def decode(
        self, audios: Sequence[Encoding], hotwords: str | None, beam_size: int
    ) -> list[list[Word]]:
        """The best reading of each of ``audios`` as timed words, in one decoding without
        timestamps (what it misses, the coverage guarantee decodes again). A reading that
        repeats itself is read again barred from repeating itself: it only has to be good
        enough to retrieve from, and faster-whisper's fallback to sampling cost 6.6 s on the
        one window of the benchmark that needed it, 3% of the whole."""
        readings = self.read(audios, [hotwords] * len(audios), beam_size)
        looped = [i for i, words in enumerate(readings) if repeats(words)]
        again = self.read(
            [audios[i] for i in looped], [hotwords] * len(looped), beam_size, NO_REPEAT
        )
        for i, words in zip(looped, again, strict=True):
            readings[i] = words
        return readings

    def read(
        self,
        audios: Sequence[Encoding],
        hotwords: Sequence[str | None],
        beam_size: int,
        no_repeat: int = 0,
    ) -> list[list[Word]]:
        """The best beam hypothesis for each of ``audios``, timed, as it came; with
        ``no_repeat``, one that repeats no run of that many tokens."""
        best = self.hypotheses(audios, hotwords, beam_size, 1, no_repeat)
        return [self.timed(tokens, audio) for audio, (tokens,) in zip(audios, best, strict=True)]

    def hypotheses(
        self,
        audios: Sequence[Encoding],
        hotwords: Sequence[str | None],
        beam_size: int,
        count: int,
        no_repeat: int = 0,
    ) -> list[list[list[int]]]:
        """The text tokens of the ``count`` best beam hypotheses of each of ``audios`` (each
        prompted with its ``hotwords``), best first, decoded together."""
        if not audios:
            return []
        outputs = [np.asarray(audio.output) for audio in audios]
        results = self.model.model.generate(
            StorageView.from_array(np.concatenate(outputs)),
            self.aligned(
                [
                    self.model.get_prompt(self.tokenizer, [], without_timestamps=True, hotwords=h)
                    for h in hotwords
                ]
            ),
            beam_size=beam_size,
            num_hypotheses=count,
            no_repeat_ngram_size=no_repeat,
            max_length=self.model.max_length,
            suppress_blank=True,
            suppress_tokens=[-1],
        )
        eot = self.tokenizer.eot
        return [
            [[token for token in tokens if token < eot] for tokens in result.sequences_ids]
            for result in results
        ]

    def aligned(self, prompts: list[list[int]]) -> list[list[int]]:
        """``prompts`` ending together, as CTranslate2 decodes a batch: a shorter one's
        previous text is led by spaces. They change little of what Whisper writes: of ten
        steered windows of the benchmark read alone and together, three read the same and
        the rest differed in a hyphen, a comma or a word."""
        longest = max(map(len, prompts))
        previous, space = self.tokenizer.sot_prev, self.tokenizer.encode(" ")
        return [
            prompt
            if len(prompt) == longest
            else [
                previous,
                *space * (longest - len(prompt) - (prompt[0] != previous)),
                *prompt[prompt[0] == previous :],
            ]
            for prompt in prompts
        ]

    def timed(self, tokens: list[int], audio: Encoding) -> list[Word]:
        """``tokens`` as words, timed and scored by aligning them to the audio."""
        if not tokens:
            return []
        [alignment] = self.model.find_alignment(
            self.tokenizer, [tokens], audio.output, audio.frames
        )
        merge_punctuations(alignment, PREPEND_PUNCTUATION, APPEND_PUNCTUATION)
        start = audio.span.start
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
        return join_pieces(pieces, audio.span.end)

    @property
    def redecoding(self) -> tuple[Decoder, ...]:
        """Ever more conservative ways to decode a stretch the first pass left without words:
        sequential and without the prompt, then sampling, then speech piece by piece."""
        return (
            self._decode,
            partial(self._decode, temperature=REDECODE_SAMPLING),
            piecewise(self._decode),
        )

    def _decode(self, samples: np.ndarray, **options: Any) -> list[Word]:
        """The whole stretch at once, without the prompt. Voice activity detection heard
        speech here: never filter it again, nor discard it as silence."""
        return self._words(
            samples, **{**self.options, "vad_filter": False, "no_speech_threshold": None, **options}
        )

    def _words(self, samples: np.ndarray, **options: Any) -> list[Word]:
        segments, _ = self.model.transcribe(samples, **options)
        return timed_words(segments, len(samples) / SAMPLE_RATE)
