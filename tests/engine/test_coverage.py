"""The coverage guarantee: speech that decoding left without words is decoded again, or counted.

The gap check is tested on constructed timings; the re-decoding on real speech in a natural
neural voice with the real model; the whole guarantee through the engine's API.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from bench.corpus import load_corpus
from bench.metrics import normalize, score
from bench.synthesize import LONG_VOICE, render_clean, render_phone
from test_jobs import start, transcript_of, upload, wait

from medscribe import audio, coverage
from medscribe.coverage import SPOKEN_S, WORD_S, Span, ensure_coverage, gaps, kept_to_speech
from medscribe.vocabulary import default_phrases
from medscribe.words import Word

# The first engine dropped this last sentence: batched chunks under a vocabulary prompt.
DOSE_CHANGE = (
    "Follow-up for a fifty-two-year-old woman with Hashimoto thyroiditis and fatigue. "
    "TSH today is nine point one, up from four point two in June, and free T4 is zero point "
    "seven. Weight is stable and the thyroid is not enlarged. She takes her tablet with "
    "coffee, so she was told to take it alone on an empty stomach. "
    "Increase levothyroxine to one hundred twelve micrograms daily."
)
AFTER_A_PAUSE = (
    "Chest pain follow-up. The stress test was normal.\n\n"
    "Start aspirin eighty-one milligrams daily and recheck lipids in six weeks."
)


def said(*texts: str, start: float, end: float) -> list[Word]:
    """Words spread evenly over ``start``..``end``."""
    step = (end - start) / len(texts)
    return [
        Word(text, start + i * step, start + (i + 1) * step, 0.9) for i, text in enumerate(texts)
    ]


def test_speech_without_words_between_words_is_a_gap():
    speech = [Span(0.5, 3.0), Span(4.0, 7.0), Span(8.0, 9.5)]
    words = said("one", "two", "three", "four", start=0.5, end=3.0)
    words += said("eight", "nine", "ten", start=8.0, end=9.5)
    (gap,) = gaps(words, speech, duration=10.0)
    assert gap.index == 4  # the words found there belong before "eight"
    assert gap.speech_s == pytest.approx(3.0)
    assert 3.0 <= gap.span.start <= 4.0 and 7.0 <= gap.span.end <= 8.0


def test_speech_after_the_last_word_is_a_gap():
    speech = [Span(0.2, 4.0), Span(4.5, 6.0)]
    words = said("one", "two", "three", "four", "five", "six", start=0.2, end=4.0)
    (gap,) = gaps(words, speech, duration=6.0)
    assert gap.index == 6 and gap.span.end == 6.0
    assert gap.speech_s == pytest.approx(1.5)


def test_covered_speech_and_silence_are_no_gap():
    speech = [Span(0.5, 3.0), Span(6.0, 9.0)]
    # Word timings a little off the speech, and a long silence between the two stretches.
    words = said("alpha", "bravo", "charlie", start=0.7, end=2.8)
    words += said("delta", "echo", "foxtrot", "golf", "hotel", start=6.1, end=9.1)
    assert gaps(words, speech, duration=12.0) == []


def test_a_word_squeezed_into_the_end_of_its_speech_starts_where_its_speech_does():
    # A conversation's answer as the window's alignment timed it: "79." 20 ms at the end of
    # the 0.9 s "seventy-nine" took, after the question's last word and a pause.
    speech = [Span(31.0, 32.8), Span(33.1, 34.0)]
    asked = said("How", "old", "are", "you?", start=31.0, end=32.8)
    answer = Word("79.", 33.98, 34.0, 0.54)
    assert kept_to_speech([*asked, answer], speech) == [*asked, replace(answer, start=33.1)]
    # Never earlier than saying it takes: the speech of a word missed before it is still a gap.
    speech = [Span(31.0, 32.8), Span(33.1, 37.0)]
    answer = Word("79.", 36.98, 37.0, 0.54)
    kept = kept_to_speech([*asked, answer], speech)
    assert kept[-1].start == pytest.approx(37.0 - 10 * SPOKEN_S)  # "seventy-nine": 10 letters
    (gap,) = gaps(kept, speech, duration=38.0)
    assert gap.index == len(asked) and gap.speech_s > 2.0


def test_a_word_stretched_over_speech_is_a_gap_it_may_be_replaced_in():
    # The first pass of an espeak dictation: "recheck a basic metabolic panel and urine"
    # skipped, the next word timed over them (2.1 s for "you're").
    speech = [Span(0.0, 6.0)]
    words = [*said("at", "bedtime,", start=0.0, end=1.5), Word("you're", 1.5, 3.6, 0.4)]
    words += said("in", "three", "months.", start=3.6, end=6.0)
    (gap,) = gaps(words, speech, duration=6.0)
    assert (gap.index, gap.replaces) == (2, 1)
    assert gap.span == Span(1.5, 3.6)  # the word, padding kept within its neighbours
    assert gap.speech_s == pytest.approx(2.1 - WORD_S - SPOKEN_S * 5)
    # Numbers take longer to say than to write; a slow word is no gap.
    assert gaps([Word("78%.", 0.0, 1.3, 0.9)], [Span(0.0, 1.3)], duration=1.3) == []


def test_words_repeated_three_times_in_a_row_are_a_loop_to_decode_again():
    speech = [Span(0.0, 6.0)]
    words = said("start", "vancomycin", "with", start=0.0, end=1.8)
    words += said("atorvastatin,", "atorvastatin,", "atorvastatin.", start=1.8, end=4.5)
    words += said("for", "six", "weeks.", start=4.5, end=6.0)
    (gap,) = gaps(words, speech, duration=6.0)
    assert (gap.index, gap.replaces) == (3, 3)
    assert gap.speech_s == pytest.approx(1.8)  # after the first round
    assert not gap.takes(said("atorvastatin", "atorvastatin", "atorvastatin", start=0, end=1))
    assert gap.takes(said("a", "trough", "goal", start=0, end=1))
    # Twice is not a loop ("daily, daily"), nor the same word further apart.
    twice = said("twice", "daily,", "daily,", "and", "then", "daily.", start=0.0, end=3.0)
    assert gaps(twice, [Span(0.0, 3.0)], duration=3.0) == []


def text_of(words: list[Word]) -> str:
    return " ".join(word.text for word in words).lower()


@pytest.fixture(scope="module")
def dose_change(natural_dictation, recognizer):
    """The dictation's samples, the words the recognizer finds in them, and where its last
    sentence (the dose change) begins."""
    samples = audio.load(natural_dictation(DOSE_CHANGE).read_bytes()).tracks[0]
    words = recognizer.transcribe(samples, []).words
    assert "112" in text_of(words)
    cut = next(i for i, word in enumerate(words) if word.text.lower().startswith("increase"))
    return samples, words, cut


def test_speech_is_found_once_for_the_windows_and_the_coverage_check(
    natural_dictation, recognizer, monkeypatch
):
    # Voice activity detection took 3 s of the recognizer's 214 on the benchmark; it ran
    # twice, once to cut the windows and again for the coverage check.
    heard = []
    find = coverage.get_speech_timestamps
    monkeypatch.setattr(
        coverage, "get_speech_timestamps", lambda *args, **kw: heard.append(1) or find(*args, **kw)
    )
    samples = audio.load(natural_dictation(AFTER_A_PAUSE).read_bytes()).tracks[0]
    words = recognizer.transcribe(samples, []).words
    assert "stress test" in text_of(words) and "six weeks" in text_of(words)
    assert len(heard) == 1


def test_a_lost_last_sentence_is_decoded_again(dose_change, recognizer):
    samples, words, cut = dose_change
    duration = len(samples) / audio.SAMPLE_RATE
    # The omission the guarantee exists for: decoding stopped before the dose change.
    restored, uncovered = ensure_coverage(words[:cut], samples, recognizer.redecoding)
    assert uncovered == []
    assert "112" in text_of(restored[cut:])
    starts = [word.start for word in restored]
    assert starts == sorted(starts) and restored[:cut] == words[:cut]
    assert all(0 <= word.start <= word.end <= duration for word in restored)


def nothing_heard(_samples: np.ndarray) -> list[Word]:
    """A decoding that stops at once."""
    return []


def test_attempts_are_tried_in_turn_and_what_none_fills_is_counted(dose_change, recognizer):
    samples, words, cut = dose_change
    restored, uncovered = ensure_coverage(
        words[:cut], samples, [nothing_heard, recognizer.redecoding[0]]
    )
    assert uncovered == [] and "112" in text_of(restored[cut:])
    kept, uncovered = ensure_coverage(words[:cut], samples, [nothing_heard, nothing_heard])
    assert kept == words[:cut]
    (gap,) = uncovered
    assert gap.span.start >= words[cut - 1].end and gap.speech_s > 2.0


def test_words_skipped_under_a_stretched_word_are_decoded_again(dose_change, recognizer):
    samples, words, _ = dose_change
    # What the first pass did to an espeak dictation: five words skipped, the next one
    # timed over them. Here six words from "today" on become one stretched word.
    at = next(i for i, word in enumerate(words) if word.text.lower() == "today")
    skipped = words[at : at + 6]
    stretched = Word("up", skipped[0].start, skipped[-1].end, 0.4)
    first = [*words[:at], stretched, *words[at + 6 :]]
    restored, uncovered = ensure_coverage(first, samples, recognizer.redecoding)
    assert uncovered == [] and len(restored) >= len(words) - 1
    assert "9.1" in text_of(restored[at : at + 6])  # the lab value is back
    starts = [word.start for word in restored]
    assert starts == sorted(starts)
    # A re-decoding that finds no more words than the stretched one keeps it, and counts it.
    kept, uncovered = ensure_coverage(first, samples, [lambda _: [Word("up", 0.0, 0.2, 0.9)]])
    assert kept == first and [gap.replaces for gap in uncovered] == [1]


def test_a_loop_over_a_lab_value_is_decoded_again(dose_change, recognizer):
    samples, words, _ = dose_change
    # A prompted first pass repeated a drug name over words it never wrote; here over
    # six words from "today" on.
    at = next(i for i, word in enumerate(words) if word.text.lower() == "today")
    start, end = words[at].start, words[at + 5].end
    third = (end - start) / 3
    loop = [
        Word("atorvastatin,", start + i * third, start + (i + 1) * third, 0.5) for i in range(3)
    ]
    restored, uncovered = ensure_coverage(
        [*words[:at], *loop, *words[at + 6 :]], samples, recognizer.redecoding
    )
    assert uncovered == [] and "atorvastatin" not in text_of(restored)
    assert "9.1" in text_of(restored[at : at + 6])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # The last sentence must be there; whether its dose is heard right is an accuracy
        # figure of the benchmark, not of this coverage test.
        (DOSE_CHANGE, ["increase", "micrograms daily"]),
        (AFTER_A_PAUSE, ["stress test", "milligrams daily", "six weeks"]),
    ],
    ids=["last-sentence-dose-change", "long-pause"],
)
def test_engine_returns_every_sentence(stack, natural_dictation, text, expected):
    transcribe = stack.client("transcribe")
    name = f"coverage-{len(text)}"
    uri = upload(stack, natural_dictation(text, pause_s=6.0), f"coverage/{name}.wav")
    start(transcribe, name, uri)
    job = wait(transcribe, name)
    assert job["TranscriptionJobStatus"] == "COMPLETED", job.get("FailureReason")
    results = transcript_of(stack, job)["results"]
    spoken = normalize(results["transcripts"][0]["transcript"])
    assert [phrase for phrase in expected if normalize(phrase) not in spoken] == []
    assert results["uncovered_speech_seconds"] == 0
    assert results["uncovered_speech_segments"] == []


def test_a_telephone_dictation_keeps_every_sentence(recognizer, tmp_path):
    # At faster-whisper's speech threshold (0.5), voice activity detection heard 37 of this
    # 8 kHz copy's 70 s of speech: 5 runs of words were never decoded, and the coverage check,
    # hearing with the same ears, saw no gap.
    (dictation,) = [d for d in load_corpus() if d.id == "long-05"]
    clean, phone = tmp_path / "long-05.wav", tmp_path / "long-05.phone.wav"
    render_clean(dictation, LONG_VOICE, clean)  # as the benchmark makes it
    render_phone(clean, phone)
    phrases = list(default_phrases())
    recognition = recognizer.transcribe(audio.load(phone.read_bytes()).tracks[0], phrases)
    heard = " ".join(word.text for word in recognition.words)
    assert score(dictation.text, heard, dictation.terms, phrases).omissions == ()
