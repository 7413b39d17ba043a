"""A job's audio and settings to its transcript document: every stage, in order, no I/O.

Recognition per channel, then what the request's settings ask for (speaker labels,
alternatives), the transcript in AWS's shape, and PHI labels over its items. The worker
runs this between reading the media and writing the document; the conversation benchmark
runs it on its own audio, so what it measures is what a job does.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from . import diarize, phi, transcript
from .alternatives import Alternatives
from .asr import Recognition, Recognizer
from .audio import Media


@dataclass
class Transcription:
    """The document, each channel's recognition, and how long each stage that ran took."""

    document: dict[str, Any] = field(default_factory=dict)
    channels: list[Recognition] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - started


def transcribe(
    name: str,
    account_id: str,
    media: Media,
    request: Mapping[str, Any],
    recognizer: Recognizer,
    phrases: Sequence[str],
    own: Sequence[str] = (),
) -> Transcription:
    """``request`` is the job's StartMedicalTranscriptionJob request (its ``Settings`` and
    ``ContentIdentificationType``); ``phrases`` the whole vocabulary, ``own`` the job's."""
    settings = request.get("Settings", {})
    done = Transcription()
    with done.stage("recognition"):
        done.channels = [recognizer.transcribe(track, phrases, own) for track in media.tracks]
    words = [channel.words for channel in done.channels]
    if settings.get("ShowSpeakerLabels"):
        # One track: speaker labels and channel identification exclude each other.
        with done.stage("speaker_labels"):
            words = [diarize.label(media.tracks[0], words[0], settings["MaxSpeakerLabels"])]
    segments = None
    if settings.get("ShowAlternatives"):
        alternatives = Alternatives(recognizer)
        with done.stage("alternatives"):
            segments = [
                alternatives.segments(track, track_words, phrases, settings["MaxAlternatives"], own)
                for track, track_words in zip(media.tracks, words, strict=True)
            ]
    done.document = transcript.build(
        name,
        account_id,
        words,
        media.duration,
        [channel.uncovered for channel in done.channels],
        segments,
    )
    if request.get("ContentIdentificationType") == "PHI":
        results = done.document["results"]
        with done.stage("phi"):
            results["entities"] = phi.identify(results["items"])
    return done
