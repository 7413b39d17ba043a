"""A recognized word: what every stage after speech recognition passes along."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Word:
    text: str
    start: float
    end: float
    confidence: float
    #: ``spk_N`` when the job asked for speaker labels.
    speaker: str | None = None
