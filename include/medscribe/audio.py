"""Decode media with PyAV: what the file really is, and its samples at 16 kHz for Whisper."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import av
import numpy as np
from faster_whisper.audio import decode_audio

SAMPLE_RATE = 16000

#: PyAV's demuxer names -> Transcribe's MediaFormat values.
_FORMATS = {
    "wav": "wav",
    "flac": "flac",
    "mp3": "mp3",
    "ogg": "ogg",
    "matroska,webm": "webm",
    "amr": "amr",
}


class MediaError(Exception):
    """The media cannot be transcribed; the message is the job's FailureReason."""


@dataclass(frozen=True)
class Media:
    media_format: str
    sample_rate: int
    channels: int
    duration: float
    #: One float32 array at 16 kHz per channel, or a single mixed-down channel.
    tracks: list[np.ndarray]


def _detect(container: av.container.InputContainer) -> tuple[str, int, int]:
    name = container.format.name
    streams = container.streams.audio
    if not streams:
        raise MediaError("The media file contains no audio stream.")
    stream = streams[0]
    if name in _FORMATS:
        media_format = _FORMATS[name]
    elif "mp4" in name.split(","):
        # One demuxer serves mp4 and m4a: an audio-only file is what AWS calls m4a.
        media_format = "mp4" if container.streams.video else "m4a"
    else:
        raise MediaError(
            f"The media format '{name}' is not supported. Use one of: "
            "mp3, mp4, wav, flac, ogg, amr, webm, m4a."
        )
    return media_format, stream.codec_context.sample_rate, stream.codec_context.channels


def _too_long(seconds: float, max_seconds: float) -> MediaError:
    return MediaError(
        f"The media file lasts {seconds:.0f} seconds, longer than the {max_seconds:.0f} "
        "seconds a job may last. Split it and try again."
    )


def load(data: bytes, *, split_channels: bool = False, max_seconds: float = math.inf) -> Media:
    """Probe and decode; ``split_channels`` keeps the two channels of stereo audio apart.

    Media longer than ``max_seconds`` is refused from its header when the container states a
    duration, before anything is decoded.
    """
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            media_format, sample_rate, channels = _detect(container)
            stated = (container.duration or 0) / av.time_base
        if stated > max_seconds:
            raise _too_long(stated, max_seconds)
        split = split_channels and channels == 2
        decoded = decode_audio(io.BytesIO(data), sampling_rate=SAMPLE_RATE, split_stereo=split)
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise MediaError(
            "The media file could not be decoded: it is corrupt or not audio."
        ) from exc
    tracks = list(decoded) if split else [decoded]
    duration = len(tracks[0]) / SAMPLE_RATE
    if duration == 0:
        raise MediaError("The media file contains no audio.")
    if duration > max_seconds:
        raise _too_long(duration, max_seconds)
    return Media(media_format, sample_rate, channels, duration, tracks)
