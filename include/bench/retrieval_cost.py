"""What choosing a window's prompt costs, on the shipped vocabulary and on one of 10,000
phrases, beside what decoding the window costs.

Windows are the corpus's reference texts cut into runs of ``WINDOW_WORDS`` words (about
what a 27 s window holds), every word half sure, so that every run is compared.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence

from bench.corpus import Dictation
from medscribe import retrieval
from medscribe.asr import RETRIEVED
from medscribe.words import Word

WINDOW_WORDS = 70
LARGE_VOCABULARY = 10_000


def _windows(dictations: Sequence[Dictation]) -> list[list[Word]]:
    windows = []
    for dictation in dictations:
        said = dictation.text.split()
        for first in range(0, len(said), WINDOW_WORDS):
            run = said[first : first + WINDOW_WORDS]
            windows.append([Word(text, 0.0, 0.0, 0.5) for text in run])
    return windows


def enlarged(phrases: Sequence[str], size: int = LARGE_VOCABULARY) -> list[str]:
    """``phrases`` and made-up terms (one term's first half, another's second half) up to
    ``size`` phrases: as many, as long and as alike as a large clinic's list."""
    chance = random.Random(0)
    words = [phrase for phrase in phrases if " " not in phrase and len(phrase) >= 6]
    made = dict.fromkeys(phrases)
    while len(made) < size:
        first, second = chance.sample(words, 2)
        made[first[: len(first) // 2] + second[len(second) // 2 :]] = None
    return list(made)


def measure(dictations: Sequence[Dictation], phrases: Sequence[str]) -> dict[str, float]:
    """Milliseconds to build the index once, and per window, for ``phrases`` and for a
    vocabulary of ``LARGE_VOCABULARY`` phrases."""
    windows = _windows(dictations)
    costs: dict[str, float] = {"windows": len(windows)}
    for name, vocabulary in (("shipped", list(phrases)), ("large", enlarged(phrases))):
        started = time.perf_counter()
        index = retrieval.phrase_index(tuple(vocabulary))
        costs[f"{name}_phrases"] = len(vocabulary)
        costs[f"{name}_index_ms"] = 1000 * (time.perf_counter() - started)
        started = time.perf_counter()
        for window in windows:
            retrieval.candidates(window, index, RETRIEVED)
        costs[f"{name}_window_ms"] = 1000 * (time.perf_counter() - started) / len(windows)
    return costs
