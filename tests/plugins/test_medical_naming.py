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
        "settings": SETTINGS,
    }
    return job_name_for(**{**args, **overrides})


def test_same_inputs_same_name():
    assert name() == name()
    assert name().startswith("inbox-visit-01.wav-")


@pytest.mark.parametrize(
    "change",
    [
        {"etag": '"abd"'},
        {"bucket": "other"},
        {"key": "inbox/visit 02.wav"},
        {"settings": {}},
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
