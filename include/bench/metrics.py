"""Scoring of transcripts: Whisper-style normalized WER, deletions and omissions, medical term
recall, false term insertions.

An omission is a run of at least ``OMISSION_WORDS`` consecutive reference words that the
hypothesis leaves out altogether: a lost sentence, the worst error in a clinical note.

Dictation references spell things the way clinicians say them ("one forty over ninety",
"five hundred milligrams b.i.d.") while recognizers write clinical shorthand
("140/90", "500 mg BID"). Both are correct transcripts, so both sides go through the same
normalization before anything is counted: Whisper's EnglishTextNormalizer (numbers,
spelling variants, case, punctuation) plus a few medical-notation rules it lacks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache

import jiwer
from whisper_normalizer.english import EnglishTextNormalizer

# Applied to raw text, before Whisper's normalizer (which would otherwise turn "140/90"
# into "140 90" and delete "mm" as a filler word).
_RAW_RULES = (
    (re.compile(r"(?<=\d)\s*/\s*(?=\d)"), " over "),
    (re.compile(r"\bmm\s*hg\b", re.IGNORECASE), " millimeters of mercury "),
    (re.compile(r"(?<=\d)\s*mm\b", re.IGNORECASE), " millimeters "),
    (re.compile(r"(?<=[a-z])/(?=[a-z])", re.IGNORECASE), " per "),
)

# Spelled-out units and their abbreviations collapse to one token, so that singular,
# plural and abbreviated forms of the same unit compare equal.
_UNITS = {
    "milligram": "mg",
    "milligrams": "mg",
    "microgram": "mcg",
    "micrograms": "mcg",
    "milliliter": "ml",
    "milliliters": "ml",
    "kilogram": "kg",
    "kilograms": "kg",
    "centimeter": "cm",
    "centimeters": "cm",
    "millimeter": "mm",
    "millimeters": "mm",
    "gram": "grams",
}

_whisper_normalizer = EnglishTextNormalizer()

OMISSION_WORDS = 4


def _canonical_units(words: list[str]) -> list[str]:
    """Spell units one way; a lone "g" is grams only after a number ("2 g", "one g")."""
    canonical: list[str] = []
    for word in words:
        after_number = bool(canonical) and (canonical[-1][0].isdigit() or canonical[-1] == "one")
        canonical.append("grams" if word == "g" and after_number else _UNITS.get(word, word))
    return canonical


def _join_spelled_letters(words: list[str]) -> list[str]:
    """Join runs of single letters ("b i d", "l d l") into one word ("bid", "ldl").

    Abbreviations come out dotted ("b.i.d."), spaced, or as one word depending on the
    recognizer; all three must compare equal.
    """
    joined: list[str] = []
    run: list[str] = []
    for word in [*words, ""]:
        if len(word) == 1 and word.isalpha():
            run.append(word)
            continue
        if run:
            joined.extend(["".join(run)] if len(run) > 1 else run)
            run = []
        if word:
            joined.append(word)
    return joined


@cache
def normalize(text: str) -> str:
    """The comparable form of a transcript or a term: lowercase words separated by spaces."""
    for pattern, replacement in _RAW_RULES:
        text = pattern.sub(replacement, text)
    words = _whisper_normalizer(text).split()
    return " ".join(_join_spelled_letters(_canonical_units(words)))


def contains_phrase(words: Sequence[str], phrase: Sequence[str]) -> bool:
    """Whether ``phrase`` occurs in ``words`` as a contiguous word sequence."""
    size = len(phrase)
    if size == 0:
        return False
    return any(tuple(words[i : i + size]) == tuple(phrase) for i in range(len(words) - size + 1))


def recalled_terms(terms: Iterable[str], hypothesis: str) -> list[str]:
    """The reference terms whose normalized form occurs in the normalized hypothesis."""
    words = normalize(hypothesis).split()
    return [term for term in terms if contains_phrase(words, normalize(term).split())]


def inserted_terms(vocabulary: Iterable[str], reference: str, hypothesis: str) -> list[str]:
    """Vocabulary terms in the hypothesis that the reference does not contain.

    A biased decoder can "hear" vocabulary words that were never said; this counts them.
    """
    ref_words = normalize(reference).split()
    hyp_words = normalize(hypothesis).split()
    inserted = []
    for term in vocabulary:
        phrase = normalize(term).split()
        if contains_phrase(hyp_words, phrase) and not contains_phrase(ref_words, phrase):
            inserted.append(term)
    return inserted


@dataclass(frozen=True)
class Score:
    """Counts for one transcript; rates are computed from sums, never averaged per file."""

    ref_words: int
    errors: int
    deletions: int
    #: Each omission's reference words, in order.
    omissions: tuple[str, ...]
    terms_total: int
    terms_recalled: int
    #: Of those, the terms the vocabulary lists: no prompt can hold the others.
    listed_total: int
    listed_recalled: int
    inserted: tuple[str, ...]

    @property
    def wer(self) -> float:
        return self.errors / self.ref_words if self.ref_words else 0.0

    @property
    def term_recall(self) -> float:
        return self.terms_recalled / self.terms_total if self.terms_total else 1.0


def score(
    reference: str, hypothesis: str, terms: Sequence[str], vocabulary: Sequence[str]
) -> Score:
    """Score one hypothesis against its reference, its term list and the vocabulary."""
    ref = normalize(reference)
    hyp = normalize(hypothesis)
    measures = jiwer.process_words(ref, hyp)
    listed = {normalize(term) for term in vocabulary}
    recalled = recalled_terms(terms, hypothesis)
    ref_list = ref.split()
    omissions = tuple(
        " ".join(ref_list[chunk.ref_start_idx : chunk.ref_end_idx])
        for chunk in measures.alignments[0]
        if chunk.type == "delete" and chunk.ref_end_idx - chunk.ref_start_idx >= OMISSION_WORDS
    )
    return Score(
        ref_words=len(ref_list),
        errors=measures.substitutions + measures.deletions + measures.insertions,
        deletions=measures.deletions,
        omissions=omissions,
        terms_total=len(terms),
        terms_recalled=len(recalled),
        listed_total=sum(normalize(term) in listed for term in terms),
        listed_recalled=sum(normalize(term) in listed for term in recalled),
        inserted=tuple(inserted_terms(vocabulary, reference, hypothesis)),
    )
