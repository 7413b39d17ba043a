"""Scoring of the conversation benchmark: diarization error rate and PHI matching."""

from __future__ import annotations

import pytest
from bench.conversation_bench import Turn, der, score_phi

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


def test_spoken_phi_matches_its_written_form_in_its_own_turn() -> None:
    turns = [
        Turn("doctor", "Try ten dot zero dot four dot twelve.", 0.0, 3.0, (("IP", "ten dot zero dot four dot twelve"),)),
        Turn("patient", "Okay.", 3.5, 4.0, ()),
    ]  # fmt: skip
    words = [
        Word("Try", 0.0, 0.4, 0.9),
        Word("10.0.4.12.", 0.5, 2.9, 0.9),
        Word("Okay.", 3.5, 4.0, 0.9),
    ]
    entity = {"startTime": 0.5, "endTime": 2.9, "content": "10.0.4.12"}
    planted, correct, found = score_phi(turns, words, [entity])
    assert planted[0]["heard"] and planted[0]["found"]
    assert (correct, found) == (1, 1)
    elsewhere = {**entity, "startTime": 3.5, "endTime": 4.0}
    planted, correct, _ = score_phi(turns, words, [elsewhere])
    assert not planted[0]["found"] and correct == 0
