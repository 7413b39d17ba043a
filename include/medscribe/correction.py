"""Snap near-miss words to vocabulary terms, by spelling and by sound.

Whisper often hears a drug or diagnosis it does not know as nearby words ("met for min"
for metformin). A run of one to three recognized words is replaced by a vocabulary term
when the two agree closely enough both in letters and in their metaphone keys; runs that
already are good English words the model was sure of are left alone, so terms that were
not said are not invented. A snap may only respell, never swallow: runs never hold a
number, nor a word that already is a term ("to 20 milligrams" once became "milligrams",
losing a new dose).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

import jellyfish
from rapidfuzz import fuzz

from .words import Word

MAX_RUN = 3
#: Below this combined similarity a run is left as recognized.
THRESHOLD = 0.84
#: A run must begin and end on words the model was less sure of than this.
CONFIDENT = 0.9
MIN_LETTERS = 5
_PUNCTUATION = re.compile(r"[^\w']+$")


def _letters(text: str) -> str:
    return re.sub(r"[^a-z]", "", text.lower())


@dataclass(frozen=True)
class _Term:
    text: str
    letters: str
    sound: str


@dataclass(frozen=True)
class _Index:
    terms: tuple[_Term, ...]
    spelled: frozenset[str]  # every term's letters, to know a word that already is one


@cache
def _index(phrases: tuple[str, ...]) -> _Index:
    terms = []
    for phrase in phrases:
        letters = _letters(phrase)
        if len(letters) >= MIN_LETTERS:
            terms.append(_Term(phrase, letters, jellyfish.metaphone(letters)))
    return _Index(tuple(terms), frozenset(term.letters for term in terms))


def _similarity(letters: str, sound: str, term: _Term) -> float:
    return (fuzz.ratio(letters, term.letters) + fuzz.ratio(sound, term.sound)) / 200


def _best(run: list[Word], index: _Index) -> tuple[float, _Term] | None:
    letters = _letters("".join(word.text for word in run))
    if len(letters) < MIN_LETTERS or max(run[0].confidence, run[-1].confidence) >= CONFIDENT:
        return None
    if any(char.isdigit() for word in run for char in word.text):
        return None
    if len(run) > 1 and any(_letters(word.text) in index.spelled for word in run):
        return None
    # Cheap length filter first: a term far longer or shorter cannot be close.
    candidates = [
        t for t in index.terms if abs(len(t.letters) - len(letters)) <= len(t.letters) // 3
    ]
    sound = jellyfish.metaphone(letters)
    scored = [(_similarity(letters, sound, term), term) for term in candidates]
    return max(scored, key=lambda pair: pair[0], default=None)


def snap(words: list[Word], phrases: list[str]) -> list[Word]:
    """Words with near-miss runs replaced by the vocabulary term they most resemble."""
    vocabulary = _index(tuple(phrases))
    if not vocabulary.terms:
        return words
    out: list[Word] = []
    index = 0
    while index < len(words):
        choice: tuple[float, int, _Term] | None = None
        for size in range(1, min(MAX_RUN, len(words) - index) + 1):
            run = words[index : index + size]
            if size > 1 and _PUNCTUATION.search(run[-2].text):
                break  # a run never spans a sentence or clause mark
            best = _best(run, vocabulary)
            if best and best[0] >= THRESHOLD and (choice is None or best[0] > choice[0]):
                choice = (best[0], size, best[1])
        if choice is None:
            out.append(words[index])
            index += 1
            continue
        _, size, term = choice
        run = words[index : index + size]
        trailing = _PUNCTUATION.search(run[-1].text)
        text = term.text + (trailing.group() if trailing else "")
        if _letters(text) == _letters("".join(w.text for w in run)):
            out.extend(run)  # already right; keep the model's own spelling and timings
        else:
            confidence = min(word.confidence for word in run)
            out.append(Word(text, run[0].start, run[-1].end, confidence))
        index += size
    return out
