"""What an audio object in S3 is (length, channels), read from its header without downloading it."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import av

#: Bytes fetched per ranged GET; the header and the first frames fit in one or two.
_CHUNK = 256 * 1024


class _RangedObject(io.RawIOBase):
    """A seekable read-only view of one S3 object that fetches only the byte ranges read."""

    def __init__(self, client: Any, bucket: str, key: str) -> None:
        self._client, self._bucket, self._key = client, bucket, key
        self._size = client.head_object(Bucket=bucket, Key=key)["ContentLength"]
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: Any) -> int:
        if self._position >= self._size:
            return 0
        last = min(self._position + len(buffer), self._size) - 1
        body = self._client.get_object(
            Bucket=self._bucket, Key=self._key, Range=f"bytes={self._position}-{last}"
        )["Body"].read()
        buffer[: len(body)] = body
        self._position += len(body)
        return len(body)


@dataclass(frozen=True)
class AudioInfo:
    #: Seconds, from the container's header (estimated from the bitrate for some MP3s).
    duration: float | None
    channels: int


def probe(client: Any, bucket: str, key: str) -> AudioInfo | None:
    """Length and channel count of ``s3://bucket/key``; None when it is not decodable audio."""
    try:
        with (
            io.BufferedReader(_RangedObject(client, bucket, key), _CHUNK) as stream,
            av.open(stream, mode="r") as container,
        ):
            if not container.streams.audio:
                return None
            duration = container.duration / av.time_base if container.duration else None
            return AudioInfo(duration, container.streams.audio[0].codec_context.channels)
    except (av.error.FFmpegError, UnicodeDecodeError):
        return None
