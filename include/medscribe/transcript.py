"""The transcript JSON of a Transcribe Medical job, in AWS's shape."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .coverage import Gap
from .words import Word

if TYPE_CHECKING:
    from .alternatives import Segment

#: Marks AWS reports as items of their own; any other symbol around a word is dropped.
PUNCTUATION = ".,?!;:"
_STRIP = "\"'“”‘’()[]{}¿¡«»"


def _seconds(value: float) -> str:
    return str(round(value, 3))


def channel_items(words: list[Word], duration: float) -> list[dict[str, Any]]:
    """Pronunciation items with monotonic times inside the audio, punctuation items apart."""
    items: list[dict[str, Any]] = []
    floor = 0.0
    for word in words:
        text = word.text.strip(_STRIP)
        core = text.rstrip(PUNCTUATION)
        marks = [mark for mark in text[len(core) :] if mark in PUNCTUATION][:1]
        core = core.lstrip(PUNCTUATION)
        speaker = {"speaker_label": word.speaker} if word.speaker else {}
        if core:
            start = min(max(word.start, floor), duration)
            end = min(max(word.end, start), duration)
            floor = start
            items.append(
                {
                    "start_time": _seconds(start),
                    "end_time": _seconds(end),
                    "alternatives": [{"confidence": f"{word.confidence:.4f}", "content": core}],
                    "type": "pronunciation",
                    **speaker,
                }
            )
        for mark in marks:
            items.append(
                {
                    "alternatives": [{"confidence": "0.0", "content": mark}],
                    "type": "punctuation",
                    **speaker,
                }
            )
    return items


def speaker_labels(items: list[dict[str, Any]]) -> dict[str, Any]:
    """``results.speaker_labels``: one segment per turn, listing its timed items."""
    segments: list[dict[str, Any]] = []
    for item in items:
        if "start_time" not in item:
            continue
        entry = {key: item[key] for key in ("start_time", "end_time", "speaker_label")}
        if segments and segments[-1]["speaker_label"] == item["speaker_label"]:
            segments[-1]["end_time"] = item["end_time"]
            segments[-1]["items"].append(entry)
        else:
            segments.append({**entry, "items": [entry]})
    speakers = {item["speaker_label"] for item in items}
    return {"speakers": len(speakers), "segments": segments}


def transcript_text(items: list[dict[str, Any]]) -> str:
    parts: list[str] = []
    for item in items:
        content = item["alternatives"][0]["content"]
        if item["type"] == "punctuation" and parts:
            parts[-1] += content
        else:
            parts.append(content)
    return " ".join(parts)


def alternative_segments(channels: list[list[Segment]], duration: float) -> list[dict[str, Any]]:
    """``results.segments``: each segment's readings, best first, with flat items (AWS puts
    an item's content and confidence beside its times there). Several channels: segments
    in time order, labelled ``ch_N`` as the items are."""
    segments = [
        {
            "start_time": _seconds(min(segment.start, duration)),
            "end_time": _seconds(min(segment.end, duration)),
            **({"channel_label": f"ch_{index}"} if len(channels) > 1 else {}),
            "alternatives": [
                {
                    "transcript": transcript_text(items),
                    "items": [
                        {
                            **{key: item[key] for key in ("start_time", "end_time") if key in item},
                            **item["alternatives"][0],
                            "type": item["type"],
                        }
                        for item in items
                    ],
                }
                for items in (channel_items(words, duration) for words in segment.alternatives)
            ],
        }
        for index, segments in enumerate(channels)
        for segment in segments
    ]
    return sorted(segments, key=lambda segment: float(segment["start_time"]))


def uncovered_speech(uncovered: list[list[Gap]]) -> dict[str, Any]:
    """The engine's own addition to ``results`` (AWS has no such fields; clients ignore them):
    how much speech no decoding attempt turned into words, and where (channel labels when
    there are several channels)."""
    segments = [
        {
            "start_time": _seconds(gap.span.start),
            "end_time": _seconds(gap.span.end),
            **({"channel_label": f"ch_{index}"} if len(uncovered) > 1 else {}),
        }
        for index, gaps in enumerate(uncovered)
        for gap in gaps
    ]
    seconds = sum(gap.speech_s for gaps in uncovered for gap in gaps)
    return {"uncovered_speech_seconds": round(seconds, 2), "uncovered_speech_segments": segments}


def build(
    job_name: str,
    account_id: str,
    channels: list[list[Word]],
    duration: float,
    uncovered: list[list[Gap]],
    segments: list[list[Segment]] | None = None,
) -> dict[str, Any]:
    """One channel: plain items. Several: items labelled ``ch_N`` and ``channel_labels``.
    ``uncovered`` holds, per channel, the speech left without words; ``segments``, per
    channel, the alternative readings when the job asked for them."""
    per_channel = [channel_items(words, duration) for words in channels]
    results: dict[str, Any] = {}
    if len(per_channel) == 1:
        items = per_channel[0]
    else:
        labelled = [
            [{**item, "channel_label": f"ch_{index}"} for item in channel_list]
            for index, channel_list in enumerate(per_channel)
        ]
        results["channel_labels"] = {
            "channels": [
                {"channel_label": f"ch_{index}", "items": channel_list}
                for index, channel_list in enumerate(labelled)
            ],
            "number_of_channels": len(labelled),
        }
        items = _interleave(labelled)
    if any("speaker_label" in item for item in items):
        results["speaker_labels"] = speaker_labels(items)
    results["transcripts"] = [{"transcript": transcript_text(items)}]
    results["items"] = items
    if segments is not None:
        results["segments"] = alternative_segments(segments, duration)
    results.update(uncovered_speech(uncovered))
    return {"jobName": job_name, "accountId": account_id, "results": results, "status": "COMPLETED"}


def _interleave(channels: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Merge channels by time; punctuation stays behind the word it follows."""
    groups: list[tuple[float, int, list[dict[str, Any]]]] = []
    for index, items in enumerate(channels):
        for item in items:
            if item["type"] == "punctuation" and groups and groups[-1][1] == index:
                groups[-1][2].append(item)
            else:
                groups.append((float(item.get("start_time", 0.0)), index, [item]))
    groups.sort(key=lambda group: (group[0], group[1]))
    return [item for _, _, group in groups for item in group]
