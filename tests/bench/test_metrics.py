"""Scoring of the benchmark: normalization, WER, term recall, false insertions, and a
corpus that a perfect transcript scores perfectly on."""

from __future__ import annotations

import pytest
from bench.corpus import TERMS_PATH, distinct_terms, load_corpus, problems
from bench.metrics import contains_phrase, inserted_terms, normalize, recalled_terms, score


@pytest.mark.parametrize(
    ("spoken", "written"),
    [
        ("Blood pressure one forty over ninety.", "blood pressure 140/90"),
        ("Metformin five hundred milligrams b.i.d.", "metformin 500 mg BID"),
        ("Hemoglobin A1c of seven point two", "hemoglobin A1C of 7.2"),
        ("levothyroxine eighty-eight micrograms", "Levothyroxine 88 mcg"),
        ("a six millimeter ureteral stone", "a 6 mm ureteral stone"),
        ("one twenty over eighty millimeters of mercury", "120/80 mmHg"),
        ("ninety milligrams per kilogram", "90 mg/kg"),
        ("LDL is one hundred twelve", "l d l is one hundred twelve"),
        ("anaemia, oesophagus", "Anemia esophagus"),
        ("cefazolin two grams, then one gram", "Cefazolin 2 g, then 1 g"),
    ],
)
def test_spoken_and_written_forms_normalize_alike(spoken: str, written: str) -> None:
    assert normalize(spoken) == normalize(written)


def test_normalize_drops_case_and_punctuation() -> None:
    assert normalize("Atrial Fibrillation, rapid; ventricular response!") == (
        "atrial fibrillation rapid ventricular response"
    )


def test_contains_phrase_needs_contiguous_words() -> None:
    words = ["start", "metoprolol", "succinate", "fifty"]
    assert contains_phrase(words, ["metoprolol", "succinate"])
    assert not contains_phrase(words, ["start", "succinate"])
    assert not contains_phrase(words, [])
    assert not contains_phrase(["metoprolol"], ["metoprolol", "succinate"])


def test_term_recall_counts_whole_terms_in_any_notation() -> None:
    terms = ["metoprolol succinate", "hemoglobin A1c", "apixaban", "type two diabetes"]
    hypothesis = (
        "Metoprolol tartrate 50 mg, HbA1c... hemoglobin A1C 7.2, Apixaban. Type 2 diabetes."
    )
    assert recalled_terms(terms, hypothesis) == ["hemoglobin A1c", "apixaban", "type two diabetes"]


def test_inserted_terms_are_vocabulary_words_the_speaker_never_said() -> None:
    vocabulary = ["apixaban", "warfarin", "atrial fibrillation", "heparin"]
    reference = "Atrial fibrillation, started apixaban five milligrams."
    hypothesis = "atrial fibrillation started apixaban 5 mg and warfarin"
    assert inserted_terms(vocabulary, reference, hypothesis) == ["warfarin"]


def test_score_counts_word_errors_after_normalization() -> None:
    result = score(
        "Blood pressure one forty over ninety, start lisinopril ten milligrams daily.",
        "blood pressure 140/90. Start lisinopril 10 mg nightly, heparin",
        ["lisinopril", "losartan"],
        ["heparin", "lisinopril"],
    )
    # reference: blood pressure 140 over 90 start lisinopril 10 mg daily (10 words);
    # one substitution (daily -> nightly) and one insertion (heparin).
    assert (result.ref_words, result.errors) == (10, 2)
    assert result.wer == pytest.approx(0.2)
    assert (result.terms_recalled, result.terms_total, result.term_recall) == (1, 2, 0.5)
    assert result.inserted == ("heparin",)


def test_score_of_an_empty_hypothesis() -> None:
    result = score("start aspirin", "", ["aspirin"], [])
    assert (result.errors, result.wer, result.term_recall) == (2, 1.0, 0.0)
    assert (result.deletions, result.omissions) == (2, ())  # too short to be an omission


def test_a_lost_sentence_is_an_omission_and_units_are_no_errors() -> None:
    result = score(
        "TSH is nine point one. Increase levothyroxine to one hundred twelve micrograms daily.",
        "TSH is 9.1.",
        [],
        [],
    )
    assert result.omissions == ("increase levothyroxine to 112 mcg daily",)
    assert result.deletions == 6
    three_words = score("start aspirin eighty-one milligrams daily", "start daily", [], [])
    assert three_words.omissions == ()  # runs of fewer than four words are plain deletions
    units = score("five milligrams, ten micrograms, two milliliters", "5 mg, 10 mcg, 2 ml", [], [])
    assert units.errors == 0


def test_corpus_is_well_formed() -> None:
    corpus = load_corpus()
    assert len(corpus) >= 32
    assert problems(corpus) == []
    assert sum(d.long for d in corpus) >= 15
    assert len({d.specialty for d in corpus}) >= 12


def test_corpus_terms_file_is_up_to_date() -> None:
    listed = TERMS_PATH.read_text(encoding="utf-8").splitlines()
    assert listed == distinct_terms(load_corpus()), "run: python -m bench.corpus"


def test_a_perfect_transcript_scores_perfectly() -> None:
    vocabulary = distinct_terms(load_corpus())
    for dictation in load_corpus():
        result = score(dictation.text, dictation.text, dictation.terms, vocabulary)
        assert (result.errors, result.term_recall, result.inserted) == (0, 1.0, ()), dictation.id
