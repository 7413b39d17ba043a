"""Speaker labels: a two-voice conversation through the engine, and the settings AWS refuses."""

from __future__ import annotations

import subprocess

import pytest
from test_jobs import refused_settings, start, transcript_of, upload, wait

#: (espeak-ng voice, pitch, words): a clinician and a patient, turn by turn.
TURNS = [
    ("en-us+m3", "25", "Good morning. What brings you in today?"),
    ("en-gb+f4", "75", "I have had a headache for three days and it is getting worse."),
    ("en-us+m3", "25", "Any fever or nausea?"),
    ("en-gb+f4", "75", "No fever, but some nausea in the mornings."),
    ("en-us+m3", "25", "Okay. Let me check your blood pressure."),
]
GAP = 0.6


@pytest.fixture(scope="module")
def conversation(tmp_path_factory):
    """The conversation as one WAV, and when each turn starts and ends."""
    folder = tmp_path_factory.mktemp("conversation")
    parts, bounds, clock = [], [], 0.0
    for index, (voice, pitch, text) in enumerate(TURNS):
        raw, part = folder / f"{index}.raw.wav", folder / f"{index}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-p", pitch, "-w", str(raw), text], check=True)
        subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", str(part), "pad", "0", str(GAP)])
        length = float(subprocess.run(["soxi", "-D", str(part)], capture_output=True).stdout)
        bounds.append((clock, clock + length - GAP))
        parts.append(str(part))
        clock += length
    whole = folder / "conversation.wav"
    subprocess.run(["sox", *parts, str(whole)], check=True)
    return whole, bounds


def test_two_voices_get_two_speakers_with_the_right_turns(stack, conversation):
    path, bounds = conversation
    transcribe = stack.client("transcribe")
    uri = upload(stack, path, "talks/visit.wav")
    settings = {"ShowSpeakerLabels": True, "MaxSpeakerLabels": 4}
    start(transcribe, "talk-1", uri, Type="CONVERSATION", Settings=settings)
    job = wait(transcribe, "talk-1", timeout=180)
    assert job["TranscriptionJobStatus"] == "COMPLETED", job.get("FailureReason")
    results = transcript_of(stack, job)["results"]
    labels = results["speaker_labels"]
    assert labels["speakers"] == 2
    assert all("speaker_label" in item for item in results["items"])
    # The turns alternate, and nearly every word carries the label of the turn it falls in.
    segments = labels["segments"]
    assert [s["speaker_label"] for s in segments] == ["spk_0", "spk_1", "spk_0", "spk_1", "spk_0"]
    expected = ["spk_0" if voice == TURNS[0][0] else "spk_1" for voice, _, _ in TURNS]
    words = [item for item in results["items"] if item["type"] == "pronunciation"]
    right = 0
    for item in words:
        middle = (float(item["start_time"]) + float(item["end_time"])) / 2
        turn = min(
            range(len(bounds)), key=lambda i: max(bounds[i][0] - middle, middle - bounds[i][1])
        )
        right += item["speaker_label"] == expected[turn]
    assert right >= 0.9 * len(words), f"{right} of {len(words)} words with their turn's speaker"


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"ShowSpeakerLabels": True}, "MaxSpeakerLabels"),
        ({"MaxSpeakerLabels": 3}, "ShowSpeakerLabels"),
        ({"ShowSpeakerLabels": True, "MaxSpeakerLabels": 2, "ChannelIdentification": True},
         "ChannelIdentification"),
        ({"ShowSpeakerLabels": True, "MaxSpeakerLabels": 31}, "less than or equal to 30"),
    ],
)  # fmt: skip
def test_speaker_settings_are_refused_as_aws_refuses_them(stack, settings, fragment):
    assert fragment in refused_settings(stack.client("transcribe"), "refused-talk", settings)
