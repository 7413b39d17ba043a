"""Scoring of the conversation benchmark: diarization error rate and PHI matching."""

from __future__ import annotations

import pytest
from bench.conversation_bench import Turn, der, plant, score_phi

from medscribe.words import Word

REFERENCE = [(0.0, 4.0, "doctor"), (4.5, 9.0, "patient"), (9.5, 12.0, "doctor")]


def test_a_perfect_hypothesis_scores_zero_whatever_its_labels() -> None:
    hypothesis = [(s, e, {"doctor": "spk_1", "patient": "spk_0"}[who]) for s, e, who in REFERENCE]
    assert der(REFERENCE, hypothesis, collar=0.0) == 0


def test_an_extra_speaker_costs_only_the_time_it_takes() -> None:
    """The one-to-one mapping is chosen over every hypothesis label, so a spurious third label
    on one second costs that second, not the speaker it happens to sort before."""
    hypothesis = [
        (0.0, 1.0, "spk_0"),
        (1.0, 4.0, "spk_1"),
        (4.5, 9.0, "spk_2"),
        (9.5, 12.0, "spk_1"),
    ]
    assert der(REFERENCE, hypothesis, collar=0.0) == pytest.approx(1.0 / 11.0, abs=0.01)


def test_missed_and_false_alarm_speech_count() -> None:
    hypothesis = [(0.0, 3.0, "a"), (4.5, 10.0, "b"), (10.0, 12.0, "a")]
    # 1 s of the first turn missed, 0.5 s of silence and 0.5 s of the doctor given to "b".
    assert der(REFERENCE, hypothesis, collar=0.0) == pytest.approx(2.0 / 11.0, abs=0.01)


TURN = Turn(
    "daughter",
    "Yes of course, please call me on my cell any time after lunch, "
    "five five five, three zero one, seven seven eight eight. Thanks, Ana.",
    10.0,
    19.9,
    (("PHONE", "five five five, three zero one, seven seven eight eight"), ("NAME", "Ana")),
)
#: The turn's true words, one every 0.4 s from 10 s (as a forced alignment times them).
ALIGNED = [Word(w, 10.0 + 0.4 * i, 10.3 + 0.4 * i, 1.0) for i, w in enumerate(TURN.text.split())]
PHONE, NAME = plant([TURN], [ALIGNED])


def test_planted_phi_is_timed_by_its_own_words() -> None:
    assert (PHONE.kind, PHONE.start, PHONE.end) == ("PHONE", 15.2, pytest.approx(19.1))
    assert (NAME.kind, NAME.start, NAME.end, NAME.turn) == ("NAME", 19.6, pytest.approx(19.9), 0)


def entity(start: float, end: float, content: str) -> dict:
    return {"startTime": start, "endTime": end, "content": content, "category": "PHI"}


def test_an_entity_over_the_right_audio_is_found_whatever_was_heard() -> None:
    words = [Word("Hello.", 19.6, 19.9, 0.4)]
    planted, right, entities = score_phi([NAME], words, [entity(19.6, 19.9, "Hello")])
    assert planted[0]["found"] and not planted[0]["heard"]
    assert planted[0]["recognized"] == "Hello."
    assert (right, entities) == (1, 1)


def test_an_entity_over_too_much_or_too_little_audio_finds_nothing() -> None:
    whole_turn = entity(10.0, 19.9, "Yes of course, please call me ... 555 301 7788. Thanks, Ana.")
    planted, right, _ = score_phi([PHONE, NAME], [], [whole_turn])
    assert not any(p["found"] for p in planted) and right == 0
    first_digits = entity(15.2, 16.1, "555")
    planted, right, _ = score_phi([PHONE, NAME], [], [first_digits])
    assert not planted[0]["found"] and right == 1
    elsewhere = entity(10.0, 11.0, "Ana")
    planted, right, _ = score_phi([PHONE, NAME], [], [elsewhere])
    assert not planted[1]["found"] and right == 0
