"""What an audio object in S3 is, read from its header."""

from __future__ import annotations

import io
import math
import struct
import wave

import boto3
import pytest

from medical_transcribe import media


def tone(seconds: float, channels: int, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        frames = (
            struct.pack("<h", int(8000 * math.sin(i / 10))) * channels
            for i in range(int(seconds * rate))
        )
        out.writeframes(b"".join(frames))
    return buffer.getvalue()


def test_probe_reads_length_and_channels_with_ranged_reads(aws):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="audio")
    s3.put_object(Bucket="audio", Key="stereo.wav", Body=tone(3.5, 2))
    s3.put_object(Bucket="audio", Key="junk.wav", Body=b"RIFF....WAVEfmt garbage")
    info = media.probe(s3, "audio", "stereo.wav")
    assert info is not None and info.channels == 2
    assert info.duration == pytest.approx(3.5, abs=0.01)
    assert media.probe(s3, "audio", "junk.wav") is None
