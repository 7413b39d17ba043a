"""The settings a run asks for, checked before any job starts, without Airflow."""

from __future__ import annotations

import pytest

from medical_transcribe import listing


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"ChannelIdentification": True, "ShowSpeakerLabels": True, "MaxSpeakerLabels": 2},
         "cannot be used together"),
        ({"ShowSpeakerLabels": True}, "ShowSpeakerLabels and MaxSpeakerLabels"),
        ({"MaxAlternatives": 3}, "ShowAlternatives and MaxAlternatives"),
        ({"ShowAlternatives": True, "MaxAlternatives": 1}, "MaxAlternatives, value: 1"),
    ],
)  # fmt: skip
def test_settings_aws_would_refuse_are_named(settings, problem):
    assert any(problem in p for p in listing.settings_problems(settings))


def test_consistent_settings_pass():
    assert listing.settings_problems({}) == []
    assert listing.settings_problems({"ShowSpeakerLabels": True, "MaxSpeakerLabels": 2}) == []
    settings = listing.job_settings(None, False, max_speaker_labels=2, max_alternatives=3)
    assert settings == {
        "ShowSpeakerLabels": True, "MaxSpeakerLabels": 2,
        "ShowAlternatives": True, "MaxAlternatives": 3,
    }  # fmt: skip
    assert listing.settings_problems(settings) == []
    assert "ShowAlternatives" not in listing.job_settings(None, False, max_alternatives=0)
