from __future__ import annotations

import re

import pytest

from medical_transcribe.naming import MAX_JOB_NAME_LENGTH, job_name_for

VALID = re.compile(r"^[0-9a-zA-Z._-]+$")
SETTINGS = {"ShowSpeakerLabels": True, "MaxSpeakerLabels": 2}


def name(**overrides) -> str:
    args = {
        "bucket": "audio",
        "key": "inbox/visit 01.wav",
        "etag": '"abc"',
        "type": "DICTATION",
        "specialty": "PRIMARYCARE",
        "settings": SETTINGS,
        "phi_safe": False,
    }
    return job_name_for(**{**args, **overrides})


def test_same_inputs_same_name():
    assert name() == name()
    assert name().startswith("inbox-visit-01.wav-")


def test_names_of_nights_already_transcribed_stay_the_same():
    # As the listing named these jobs before the operator shared its function: a name that
    # changed would transcribe every file of those nights again.
    assert name() == "inbox-visit-01.wav-7e6e18d9f8655090"
    assert name(content_identification_type="PHI", phi_safe=True) == "media-a2800477799b7874"


@pytest.mark.parametrize(
    "change",
    [
        {"etag": '"abd"'},
        {"bucket": "other"},
        {"key": "inbox/visit 02.wav"},
        {"settings": {}},
        {"type": "CONVERSATION"},
        {"content_identification_type": "PHI"},
    ],
)
def test_anything_that_changes_the_transcript_changes_the_name(change):
    assert name(**change) != name()


def test_cosmetic_differences_do_not_change_the_name():
    assert name(etag="abc") == name(etag='"abc"')  # HEAD and LIST quote ETags
    assert name(settings={"MaxSpeakerLabels": 2, "ShowSpeakerLabels": True}) == name()
    assert name(settings=None) == name(settings={})


@pytest.mark.parametrize(
    "key",
    [
        "a" * 1000 + "/x.wav",
        "über/çà/ß.wav",
        "日本語.mp3",
        "..hidden/-dash-.flac",
        "a//b  c?.wav",
    ],
)
def test_name_is_valid_for_aws(key):
    result = name(key=key)
    assert VALID.match(result)
    assert 1 <= len(result) <= MAX_JOB_NAME_LENGTH
    assert result[0] not in "-."


def test_long_key_keeps_its_file_name():
    assert "x.wav-" in name(key="a" * 1000 + "/x.wav")


def test_key_without_usable_characters_still_names_the_job():
    assert re.fullmatch(r"media-[0-9a-f]{16}", name(key="日本語"))


def test_phi_safe_names_carry_no_part_of_the_key():
    safe = name(key="inbox/smith-john-1962.wav", phi_safe=True)
    assert re.fullmatch(r"media-[0-9a-f]{16}", safe)
    assert safe.endswith(name(key="inbox/smith-john-1962.wav")[-16:])
