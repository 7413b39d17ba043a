"""Medical vocabularies: AWS's phrase-file formats, and the shipped default list."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

MAX_FILE_BYTES = 50 * 1024
MAX_PHRASE_CHARS = 256


class VocabularyError(Exception):
    """The phrase file is not usable; the message is the vocabulary's FailureReason."""


def parse_phrases(text: str) -> list[str]:
    """Phrases from a vocabulary file: one phrase a line, or AWS's tab-separated table.

    In both forms words of a phrase may be joined by hyphens ("atrial-fibrillation"); a
    table's DisplayAs column, when filled, is how the phrase should be written.
    """
    if len(text.encode()) > MAX_FILE_BYTES:
        raise VocabularyError(f"The vocabulary file is larger than {MAX_FILE_BYTES} bytes.")
    lines = [line.rstrip("\r") for line in text.split("\n") if line.strip()]
    columns: list[str] = []
    if lines and lines[0].split("\t")[0].strip().lower() == "phrase":
        columns = [name.strip().lower() for name in lines.pop(0).split("\t")]
    phrases: list[str] = []
    for number, line in enumerate(lines, start=2 if columns else 1):
        cells = dict(zip(columns, line.split("\t"), strict=False)) if columns else {"phrase": line}
        phrase = (cells.get("displayas") or "").strip() or cells.get("phrase", "").strip()
        phrase = " ".join(phrase.replace("-", " ").split())
        if not phrase:
            raise VocabularyError(f"Line {number} of the vocabulary file has no phrase.")
        if len(phrase) > MAX_PHRASE_CHARS:
            raise VocabularyError(f"Line {number} is longer than {MAX_PHRASE_CHARS} characters.")
        phrases.append(phrase)
    if not phrases:
        raise VocabularyError("The vocabulary file contains no phrases.")
    return list(dict.fromkeys(phrases))


@cache
def default_phrases() -> tuple[str, ...]:
    """The shipped list of common drugs, diagnoses and procedures."""
    text = files("medscribe").joinpath("data/default_vocabulary.txt").read_text()
    return tuple(parse_phrases(text))
