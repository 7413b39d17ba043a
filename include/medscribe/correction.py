"""Snap near-miss words to vocabulary terms, by spelling and by sound.

Whisper often hears a drug or diagnosis it does not know as nearby words ("met for min"
for metformin). A run of one to three recognized words is replaced by a vocabulary term
when the two agree closely enough both in letters and in their metaphone keys, and no
other term agrees about as closely (a wrong term reads as said, a garble as misheard), also
when the model split the term into other words ("Fecal CalProtect in"), even English words
it was sure of where they spell a long term but for a letter ("by carbonate"). Words the model
was sure of stay as they are, so terms that were not said are not invented. A snap may
only respell, never swallow or invent: runs never hold a number, nor a word that already
is a term ("to 20 milligrams" once became "milligrams", losing a new dose), a term
that only adds or drops words or letters ("vitamin" -> "vitamin D") is another word, as is
one whose English word differs from it only in its ending ("wheeze", "wheezing"), and so is
a run of English words the model was fairly sure of ("consultation" is not
"consolidation", "meals" not "measles"). An abbreviation with a number is written as the
vocabulary lists it ("PDL1" as PD L1), its number as written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import jellyfish
import numpy as np
from rapidfuzz import fuzz, process
from rapidfuzz.distance import Levenshtein, Prefix
from wordfreq import zipf_frequency

from .phi import TEENS, TENS, UNITS
from .retrieval import letters as _letters
from .words import Word

MAX_RUN = 3
#: Below this combined similarity a run is left as recognized. Now that each window's prompt
#: holds the phrases its words sound like, a snap corrects what even the prompted model
#: misheard; in the benchmark 7 of the 12 snaps scoring 0.82 to 0.845 wrote a term that was
#: not said ("Nebulized" -> nebulizer, "start in" -> statin, "serapositive" -> Rh positive).
THRESHOLD = 0.845
#: How much less alike than the closest term another may be and still make the snap a
#: guess. In the benchmark it refused 2 of the 42 snaps on 72 clips: 1 right, 1 wrong.
RIVAL = 0.03
#: A run must begin and end on words the model was less sure of than this.
CONFIDENT = 0.9
MIN_LETTERS = 5
#: Letters a run must change besides the words it shares with a term.
MIN_RESPELLED = 3
#: Letters by which the endings of a word's two forms differ at most ("wheeze", "wheezing").
INFLECTION = 3
#: How common a word is in English (Zipf scale: 1.5 is about once in 30 million words) for
#: a run of such words to be taken as said, unless the model was unsure of one of them.
ENGLISH_ZIPF = 1.5
UNSURE = 0.5
#: Letters by which a term heard as other words may differ from them, joined ("by carbonate"),
#: and the fewest letters of such a term.
RESPLIT_EDITS = 1
RESPLIT_LETTERS = 9
#: Numbers Whisper may write as words ("three weeks ago"): a dose or a count is never respelled.
NUMBER_WORDS = frozenset([*UNITS, *TEENS, *TENS, "hundred", "thousand", "half"])
_DIGITS = re.compile(r"\d+")
_PUNCTUATION = re.compile(r"[^\w']+$")


@dataclass(frozen=True)
class _Term:
    text: str
    letters: str
    sound: str
    words: tuple[str, ...]  # each word's letters


@dataclass(frozen=True)
class _Index:
    terms: tuple[_Term, ...]
    spelled: dict[str, _Term]  # by its letters, to know a word that already is a term
    # Each term's letters, sound and length, to score a run against all terms at once.
    letters: list[str]
    sounds: list[str]
    lengths: np.ndarray
    forms: dict[str, str]  # the phrases with a number, by letters and digits ("phq9": "PHQ 9")


def _form(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", text.lower())


#: Bounded: a worker meets many job vocabularies over its life.
@lru_cache(maxsize=8)
def _index(phrases: tuple[str, ...]) -> _Index:
    terms = []
    for phrase in phrases:
        letters = _letters(phrase)
        # A term with a number ("1 plus pitting edema") would invent one; snaps never do.
        if len(letters) >= MIN_LETTERS and not any(char.isdigit() for char in phrase):
            words = tuple(_letters(word) for word in phrase.split())
            terms.append(_Term(phrase, letters, jellyfish.metaphone(letters), words))
    return _Index(
        tuple(terms),
        {term.letters: term for term in terms},
        [term.letters for term in terms],
        [term.sound for term in terms],
        np.array([len(term.letters) for term in terms]),
        {_form(phrase): phrase for phrase in phrases if _DIGITS.search(phrase)},
    )


def another_form(text: str, other: str) -> bool:
    """Whether two texts are the same words but for the ending of the last ("Sleepiness
    Score", "Sleepiness Scale")."""
    words, others = ([_letters(word) for word in t.split()] for t in (text, other))
    if len(words) != len(others) or words[:-1] != others[:-1] or words == others:
        return False
    shared = Prefix.similarity(words[-1], others[-1])
    before = sum(map(len, words[:-1]))
    longest = max(len(words[-1]), len(others[-1]))
    return before + shared >= MIN_LETTERS and shared >= longest - INFLECTION


def _fits(run: list[Word], words: list[str], letters: str, term: _Term) -> bool:
    """Whether snapping ``run`` to ``term`` only respells it.

    A word the model was sure of may stay only as the term's own word at that end; the run
    must respell a part of a few letters (see ``_respells``); and a term that only adds
    or drops letters ("nutrition", "malnutrition") is another word, unless the run lacks
    just its first letter, which Whisper often hears with the word before.
    """
    if run[0].confidence >= CONFIDENT and words[0] != term.words[0]:
        return False
    if run[-1].confidence >= CONFIDENT and words[-1] != term.words[-1]:
        return False
    # Of a term that contains the run or is contained in it, only a first sound heard with
    # the word before ("and oxycycline") is respelled.
    contained = letters in term.letters or term.letters in letters
    if contained and letters not in (term.letters, term.letters[1:]):
        return False
    # English words are not merged into a one-word term they do not spell: "start in" was
    # "start" before a drug misheard, not statin (3 of the benchmark's 44 snaps, all wrong).
    if len(words) > 1 and len(term.words) == 1 and english(words):
        return False
    # A run that ends in an English word and differs from the term only in its ending is
    # the word said, in another form ("Epworth Sleepiness Score", "expiratory wheeze").
    if (
        another_form(" ".join(words), " ".join(term.words))
        and zipf_frequency(words[-1], "en") >= ENGLISH_ZIPF
    ):
        return False
    return _respells(words, term)


def _respells(words: list[str], term: _Term) -> bool:
    """Whether the words a run and a term share leave a part of a few letters respelled on
    both sides ("chest" is not "CT chest", "are negative" not "Rh negative")."""
    shared = set(words) & set(term.words)
    return not shared or all(
        len("".join(set(side) - shared)) >= MIN_RESPELLED for side in (words, term.words)
    )


def _best(run: list[Word], index: _Index) -> tuple[float, _Term] | None:
    """The most similar term ``run`` may be respelled to, if any is similar enough."""
    words = [_letters(word.text) for word in run]
    letters = "".join(words)
    if len(letters) < MIN_LETTERS or all(word.confidence >= CONFIDENT for word in run):
        return None
    if any(char.isdigit() for word in run for char in word.text) or NUMBER_WORDS & set(words):
        return None
    if letters in index.spelled:  # already a term: kept, and no shorter run may respell it
        return 1.0, index.spelled[letters]
    if len(run) > 1 and any(word in index.spelled for word in words):
        return None
    resplit = _resplit(words, letters, index)
    if resplit is not None:
        return 1.0, resplit
    if min(word.confidence for word in run) >= UNSURE and english(words):
        return None
    # Similarity: the mean of how alike the letters and the metaphone keys are.
    sound = jellyfish.metaphone(letters)
    similarity = (
        process.cdist([letters], index.letters, scorer=fuzz.ratio)[0]
        + process.cdist([sound], index.sounds, scorer=fuzz.ratio)[0]
    ) / 200
    # A term far longer or shorter is not a respelling, however alike.
    similar_length = np.abs(index.lengths - len(letters)) <= index.lengths // 3
    close = np.flatnonzero((similarity >= THRESHOLD) & similar_length)
    if not close.size:
        return None
    # The closest term or none: where it is refused, a runner-up is a guess ("natrial
    # fibrillation" is not ventricular fibrillation because atrial only drops a letter).
    position = close[np.argmax(similarity[close])]
    term = index.terms[position]
    if _rivalled(position, close, similarity, index):
        return None
    return (float(similarity[position]), term) if _fits(run, words, letters, term) else None


def _rivalled(position: int, close: np.ndarray, similarity: np.ndarray, index: _Index) -> bool:
    """Whether another of the ``close`` terms, not the closest in another form, is about as
    alike as the closest: then either is a guess, and a wrong term reads as said where a
    garble reads as misheard ("hyperglymia" is 0.92 like hyperglycemia, 0.89 hyperkalemia)."""
    text = index.terms[position].text
    return any(
        other != position
        and similarity[other] >= similarity[position] - RIVAL
        and not another_form(index.terms[other].text, text)
        for other in close
    )


def english(words: list[str]) -> bool:
    """Whether each of ``words`` (letters only) is an English word, not a rare one."""
    return all(zipf_frequency(word, "en") >= ENGLISH_ZIPF for word in words)


def _resplit(words: list[str], letters: str, index: _Index) -> _Term | None:
    """The long term that ``words`` spell but for a letter, split into more or fewer words.

    Whisper writes a term it does not know as words it does, even surely ("sodium by
    carbonate"); a letter's difference is a sound's. Shorter terms are often English words
    said so ("hear in", heparin), and a term that only adds a word to the run's is another
    ("vitamin level", "vitamin D level"), as is one that only adds or drops a letter at an
    end ("vitamin", "vitamin D").
    """
    if len(words) < 2 or len(letters) < RESPLIT_LETTERS - RESPLIT_EDITS:
        return None
    found = process.extractOne(
        letters, index.letters, scorer=Levenshtein.distance, score_cutoff=RESPLIT_EDITS
    )
    if found is None:
        return None
    term = index.terms[found[2]]
    if (
        len(term.letters) < RESPLIT_LETTERS
        or len(term.words) == len(words)
        or letters in term.letters
        or term.letters in letters
    ):
        return None
    return term if _respells(words, term) else None


def _abbreviation(word: str, index: _Index) -> str | None:
    """The listed abbreviation with a number that one word writes otherwise, its letters
    spaced or joined otherwise ("PDL1" is PD L1, "pH-Q9" is PHQ 9) and its number as written
    (a number is never respelled: "CA-199" is not CA 19 9)."""
    listed = index.forms.get(_form(word))
    if listed is None or _DIGITS.findall(word) != _DIGITS.findall(listed):
        return None
    return listed if listed.lower() != word.lower() else None


def _respelling(words: list[Word], vocabulary: _Index) -> tuple[int, str] | None:
    """How many of the first ``words`` to respell, and as what, if any."""
    abbreviation = _abbreviation(_PUNCTUATION.sub("", words[0].text), vocabulary)
    if abbreviation is not None:
        return 1, abbreviation
    choice: tuple[float, int, _Term] | None = None
    for size in range(1, len(words) + 1):
        run = words[:size]
        if size > 1 and _PUNCTUATION.search(run[-2].text):
            break  # a run never spans a sentence or clause mark
        best = _best(run, vocabulary)
        if best and (choice is None or best[0] > choice[0]):
            choice = (best[0], size, best[1])
    return None if choice is None else (choice[1], choice[2].text)


def snap(words: list[Word], phrases: list[str]) -> list[Word]:
    """Words with near-miss runs replaced by the vocabulary term they most resemble."""
    vocabulary = _index(tuple(phrases))
    out: list[Word] = []
    index = 0
    while index < len(words):
        respelling = _respelling(words[index : index + MAX_RUN], vocabulary)
        if respelling is None:
            out.append(words[index])
            index += 1
            continue
        size, text = respelling
        run = words[index : index + size]
        trailing = _PUNCTUATION.search(run[-1].text)
        text += trailing.group() if trailing else ""
        if [_letters(word) for word in text.split()] == [_letters(w.text) for w in run]:
            out.extend(run)  # already right; keep the model's own spelling and timings
        else:
            confidence = min(word.confidence for word in run)
            out.append(Word(text, run[0].start, run[-1].end, confidence))
        index += size
    return out
