"""A window's prompt: the vocabulary phrases that sound like what was heard there.

Whisper writes a drug it was not told about as words that sound like it ("a tour of a
statin"); told about it in its prompt, it often hears it right. A prompt holds a few
dozen of the vocabulary's thousands of phrases, so each window gets its own: its
first-pass words, as runs of one to ``MAX_RUN`` words, are compared with every phrase by
spelling and by sound (metaphone keys), and the phrases most like some run make that
window's prompt, a run the model was unsure of counting for more. Only runs the model was
unsure of are compared: one it wrote surely was heard, and its look-alikes would only crowd
out the phrases the unsure runs need.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

import jellyfish
import numpy as np
from rapidfuzz import fuzz, process
from rapidfuzz.distance import JaroWinkler

from .words import Word

#: Whisper splits an unknown term into up to this many words ("a tour of a statin" is 4).
MAX_RUN = 4
#: Runs and phrases of fewer letters match too much to tell anything.
MIN_LETTERS = 4
#: How much the sound counts in a run's similarity to a phrase; the spelling counts the rest.
SOUND_WEIGHT = 0.7
#: Similarity (0-1) from which a phrase is a candidate.
SIMILAR = 0.8
#: A run whose every word the model wrote at least this surely was heard as written: it
#: suggests no phrase (in the benchmark, "over" had suggested "ovary" in every window).
SURE = 0.8
#: How much more a run counts when the model was unsure of it (confidence 0 adds this).
DOUBT = 0.1


def letters(text: str) -> str:
    return re.sub(r"[^a-z]", "", text.lower())


@dataclass(frozen=True)
class PhraseIndex:
    """Each phrase's letters and metaphone key, in order of length, computed once per
    vocabulary: a run is compared only with the phrases of about its length."""

    phrases: tuple[str, ...]
    letters: tuple[str, ...]
    sounds: tuple[str, ...]
    written: tuple[str, ...]  # each word's letters, joined by spaces, as runs are
    #: The shortest and longest run each phrase may be heard as (non-decreasing).
    shortest: np.ndarray
    longest: np.ndarray

    def around(self, length: int) -> slice:
        """The phrases a run of ``length`` letters may be: within half their length."""
        return slice(
            int(np.searchsorted(self.longest, length, "left")),
            int(np.searchsorted(self.shortest, length, "right")),
        )


#: Bounded: a worker meets many job vocabularies over its life.
@lru_cache(maxsize=8)
def phrase_index(phrases: tuple[str, ...]) -> PhraseIndex:
    kept = sorted(
        (phrase for phrase in phrases if len(letters(phrase)) >= MIN_LETTERS),
        key=lambda phrase: len(letters(phrase)),
    )
    spelled = tuple(letters(phrase) for phrase in kept)
    lengths = np.array([len(text) for text in spelled], dtype=int)
    return PhraseIndex(
        tuple(kept),
        spelled,
        tuple(jellyfish.metaphone(text) for text in spelled),
        tuple(written(phrase.split()) for phrase in kept),
        *reach(lengths),
    )


Length = TypeVar("Length", int, np.ndarray)


def reach(length: Length) -> tuple[Length, Length]:
    """The fewest and most letters a run heard for a phrase of ``length`` letters may have
    (an int or an array of them): within half the phrase's length."""
    return length - length // 2, length + length // 2


@dataclass(frozen=True)
class Candidate:
    phrase: str
    score: float
    heard: bool  # the window's words already spell it


def written(words: Sequence[str]) -> str:
    return " ".join(letters(word) for word in words)


def runs(words: Sequence[Word]) -> dict[str, float]:
    """Every run of 1 to ``MAX_RUN`` words, as its words' letters joined by spaces, with the
    model's doubt about it (1 - its least sure word's confidence); a run never spans the
    end of a sentence (a comma may be misplaced: "tied to diabetes, Melatists")."""
    found: dict[str, float] = {}
    for first in range(len(words)):
        for last in range(first, min(first + MAX_RUN, len(words))):
            run = words[first : last + 1]
            spelled = written([word.text for word in run])
            if len(spelled) - len(run) + 1 >= MIN_LETTERS:
                doubt = 1 - min(word.confidence for word in run)
                found[spelled] = max(doubt, found.get(spelled, 0.0))
            if re.search(r"[.;:?!]$", words[last].text):
                break
    return found


def _similarity(
    spelled: Sequence[str], letters: Sequence[str], sounds: Sequence[str]
) -> np.ndarray:
    """How alike each run's letters (``spelled``) are to each phrase's, by spelling and by
    sound (0-1, runs by phrases)."""
    spelling = process.cdist(spelled, letters, scorer=fuzz.ratio, dtype=np.float32)
    # Jaro-Winkler forgives a sound dropped or doubled mid-word, as mishearings do
    # ("as of the operating" for azathioprine), and weighs a shared start most.
    sound = process.cdist(
        [jellyfish.metaphone(run) for run in spelled],
        sounds,
        scorer=JaroWinkler.normalized_similarity,
        dtype=np.float32,
    )
    return (1 - SOUND_WEIGHT) * spelling / 100 + SOUND_WEIGHT * sound


def sounds_like(words: Sequence[str], phrase: str) -> bool:
    """Whether ``words`` are alike enough to ``phrase`` to suggest it (see ``candidates``)."""
    spelled, wanted = letters("".join(words)), letters(phrase)
    shortest, longest = reach(len(wanted))
    if not shortest <= len(spelled) <= longest:
        return False
    return bool(_similarity([spelled], [wanted], [jellyfish.metaphone(wanted)])[0, 0] >= SIMILAR)


def candidates(words: Sequence[Word], index: PhraseIndex, limit: int) -> list[Candidate]:
    """Up to ``limit`` of the indexed phrases most like some run of ``words`` that the model
    was unsure of, most alike first, the least sure runs counting for more."""
    heard = runs(words)
    unsure = {run: doubt for run, doubt in heard.items() if doubt > 1 - SURE}
    best = np.zeros(len(index.phrases))  # each phrase's similarity to its closest run
    scores = np.zeros(len(index.phrases))
    by_length: dict[int, list[tuple[str, str]]] = {}  # (run, its letters) by letter count
    for run in unsure:
        spelled = run.replace(" ", "")
        by_length.setdefault(len(spelled), []).append((run, spelled))
    for length, pairs in by_length.items():
        group, spelled = zip(*pairs, strict=True)
        near = index.around(length)
        if near.start >= near.stop:
            continue
        similarity = _similarity(spelled, index.letters[near], index.sounds[near])
        closest = similarity.argmax(axis=0)
        alike = similarity[closest, np.arange(similarity.shape[1])]
        doubt = np.array([unsure[run] for run in group])[closest]
        better = alike > best[near]
        best[near] = np.where(better, alike, best[near])
        scores[near] = np.where(better, alike + DOUBT * doubt, scores[near])
    chosen = np.flatnonzero(best >= SIMILAR)
    chosen = chosen[np.argsort(-scores[chosen], kind="stable")][:limit]
    return [
        Candidate(index.phrases[i], float(scores[i]), index.written[i] in heard) for i in chosen
    ]
