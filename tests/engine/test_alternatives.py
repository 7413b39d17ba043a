"""Alternative transcriptions: segments of a real dictation with several readings, best first."""

from __future__ import annotations

import itertools

import pytest
from test_jobs import refused_settings, start, transcript_of, upload, wait

from medscribe.alternatives import MAX_SEGMENT_S, PAUSE_S, Alternatives, split
from medscribe.audio import SAMPLE_RATE, load
from medscribe.words import Word

NOTE = (
    "The patient was started on metoprolol twenty five milligrams twice daily.\n\n"
    "Follow up in two weeks with a repeat echocardiogram."
)


def spoken(alternative: dict) -> list[str]:
    return [item["content"] for item in alternative["items"] if item["type"] == "pronunciation"]


def test_segments_carry_distinct_readings_best_first(stack, natural_dictation):
    transcribe = stack.client("transcribe")
    uri = upload(stack, natural_dictation(NOTE, pause_s=2.0), "alternatives/note.wav")
    settings = {"ShowAlternatives": True, "MaxAlternatives": 3}
    start(transcribe, "alternatives-1", uri, Settings=settings)
    job = wait(transcribe, "alternatives-1", timeout=240)
    assert job["TranscriptionJobStatus"] == "COMPLETED", job.get("FailureReason")
    assert job["Settings"]["MaxAlternatives"] == 3
    results = transcript_of(stack, job)["results"]
    items, segments = results["items"], results["segments"]
    assert all(len(item["alternatives"]) == 1 for item in items)
    last_end = max(float(item["end_time"]) for item in items if "end_time" in item)
    # The pause splits the note in two; each segment's first reading is the job's own items.
    assert len(segments) == 2
    words = [item["alternatives"][0]["content"] for item in items if item["type"] != "punctuation"]
    assert [w for segment in segments for w in spoken(segment["alternatives"][0])] == words
    for segment in segments:
        start_s, end_s = float(segment["start_time"]), float(segment["end_time"])
        readings = segment["alternatives"]
        assert 2 <= len(readings) <= 3
        texts = [" ".join(spoken(reading)).lower() for reading in readings]
        assert len(set(texts)) == len(texts), texts
        for reading in readings:
            assert reading["transcript"].startswith(spoken(reading)[0])
            for item in reading["items"]:
                assert set(item) <= {"start_time", "end_time", "confidence", "content", "type"}
                assert 0.0 <= float(item["confidence"]) <= 1.0
                if item["type"] == "pronunciation":
                    assert start_s - 0.5 <= float(item["start_time"]) <= float(item["end_time"])
                    assert float(item["end_time"]) <= min(end_s + 0.5, last_end + 1.0)
    # Whisper writes the term capitalized in some runs ("a repeat Echocardiogram.").
    second = " ".join(r["transcript"] for r in segments[1]["alternatives"])
    assert "echocardiogram" in second.lower()


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"ShowAlternatives": True}, "MaxAlternatives"),
        ({"MaxAlternatives": 3}, "ShowAlternatives"),
        ({"ShowAlternatives": False, "MaxAlternatives": 3}, "ShowAlternatives"),
        ({"ShowAlternatives": True, "MaxAlternatives": 11}, "less than or equal to 10"),
    ],
)  # fmt: skip
def test_alternative_settings_are_refused_as_aws_refuses_them(stack, settings, fragment):
    assert fragment in refused_settings(
        stack.client("transcribe"), "refused-alternatives", settings
    )


def test_segments_end_at_pauses_speaker_changes_and_window_length():
    def word(start: float, speaker: str | None = None) -> Word:
        return Word("w", start, start + 0.3, 0.9, speaker)

    assert split([]) == []
    paused = [word(0.0), word(0.4), word(0.7 + PAUSE_S)]
    assert [len(run) for run in split(paused)] == [2, 1]
    turns = [word(0.0, "spk_0"), word(0.4, "spk_1"), word(0.8, "spk_1")]
    assert [len(run) for run in split(turns)] == [1, 2]
    steady = [word(0.5 * index) for index in range(int(2 * MAX_SEGMENT_S) + 10)]
    runs = split(steady)
    assert len(runs) == 2 and all(r[-1].end - r[0].start <= MAX_SEGMENT_S for r in runs)


def test_a_known_text_is_timed_on_its_own_audio(natural_dictation, recognizer):
    """Forced alignment (the benchmark times its planted PHI so): every word of the text,
    in order, on the audio, the second sentence after the pause (its first word, as Whisper
    times it, may take in some of the silence before it)."""
    said = "Her name is Ana Rivera.\n\nHer phone is five five five, one two three four."
    samples = load(natural_dictation(said, pause_s=2.0).read_bytes()).tracks[0]
    duration = len(samples) / SAMPLE_RATE
    text = " ".join(said.split())
    words = Alternatives(recognizer).align(samples, 0.0, duration, text)
    assert [word.text for word in words] == text.split()
    assert all(a.end <= b.start for a, b in itertools.pairwise(words))
    assert words[0].start >= 0.0 and words[-1].end <= duration
    assert words[6].start - words[4].end > 1.5
