"""The benchmark's dictation corpus: loading, selection, checks, and the distinct term list.

Run as a script to rewrite ``corpus_terms.txt`` after editing ``corpus.json``; it refuses
to write while the corpus has problems (a term not in its text, a dictation too long).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS_PATH = HERE / "corpus.json"
TERMS_PATH = HERE / "corpus_terms.txt"

# Short notes of 20-90 seconds and long ones of 1-3 minutes, at about 160 words per minute.
MIN_WORDS, MAX_WORDS = 55, 350
LONG_WORDS = 150


@dataclass(frozen=True)
class Dictation:
    id: str
    specialty: str
    text: str
    terms: tuple[str, ...]

    @property
    def spoken_words(self) -> int:
        """Words as a speaker says them ("fifty-eight" is two), for speaking-rate maths."""
        return len(re.findall(r"[A-Za-z0-9']+", self.text))

    @property
    def long(self) -> bool:
        return self.spoken_words >= LONG_WORDS


def load_corpus(path: Path = CORPUS_PATH) -> list[Dictation]:
    entries = json.loads(Path(path).read_text(encoding="utf-8"))
    return [Dictation(e["id"], e["specialty"], e["text"], tuple(e["terms"])) for e in entries]


def spread(corpus: list[Dictation], limit: int | None) -> list[Dictation]:
    """``limit`` dictations spread evenly over the corpus, so a small run still covers
    many specialties (the corpus is ordered by specialty)."""
    if limit is None or limit >= len(corpus):
        return list(corpus)
    step = len(corpus) / limit
    return [corpus[int(i * step)] for i in range(limit)]


def _occurs(term: str, text: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(term)}(?!\w)", text, re.IGNORECASE) is not None


def problems(corpus: list[Dictation]) -> list[str]:
    """Everything that would make the corpus unfit to score against."""
    found = []
    ids = [d.id for d in corpus]
    found += [f"duplicate id {i}" for i in sorted({i for i in ids if ids.count(i) > 1})]
    for d in corpus:
        if not MIN_WORDS <= d.spoken_words <= MAX_WORDS:
            found.append(f"{d.id}: {d.spoken_words} words, outside {MIN_WORDS}-{MAX_WORDS}")
        if not d.terms:
            found.append(f"{d.id}: no terms")
        found += [f"{d.id}: term {t!r} not in text" for t in d.terms if not _occurs(t, d.text)]
    return found


def distinct_terms(corpus: list[Dictation]) -> list[str]:
    """Every term once (case-insensitively), in alphabetical order."""
    terms: dict[str, str] = {}
    for d in corpus:
        for term in d.terms:
            terms.setdefault(term.casefold(), term)
    return [terms[key] for key in sorted(terms)]


def main() -> int:
    corpus = load_corpus()
    if found := problems(corpus):
        print("\n".join(found), file=sys.stderr)
        return 1
    TERMS_PATH.write_text("\n".join(distinct_terms(corpus)) + "\n", encoding="utf-8")
    print(f"{len(corpus)} dictations; wrote {TERMS_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
