"""Each window's prompt: the vocabulary phrases that sound like what was heard there.

Retrieval is tested on constructed words; the whole recognizer on real speech in a natural
neural voice with the real model.
"""

from __future__ import annotations

import pytest

from medscribe import asr, audio, retrieval
from medscribe.asr import windows
from medscribe.retrieval import candidates, phrase_index
from medscribe.vocabulary import default_phrases
from medscribe.words import Word


def heard(text: str, confidence: float = 0.5) -> list[Word]:
    return [Word(word, 0.0, 0.0, confidence) for word in text.split()]


@pytest.fixture(scope="module")
def shipped():
    return phrase_index(default_phrases())


def test_a_term_heard_as_other_words_is_retrieved(shipped):
    found = {c.phrase: c for c in candidates(heard("start a tour of a statin daily"), shipped, 40)}
    assert not found["atorvastatin"].heard
    found = {c.phrase: c for c in candidates(heard("take pantopresil daily"), shipped, 40)}
    assert next(iter(found)) == "pantoprazole" and not found["pantoprazole"].heard


def test_a_term_written_as_one_is_heard_and_split_into_other_words_is_not(shipped):
    written = candidates(heard("continue metformin,"), shipped, 40)[0]
    assert (written.phrase, written.heard) == ("metformin", True)
    split = candidates(heard("continue met for min"), shipped, 40)[0]
    assert (split.phrase, split.heard) == ("metformin", False)


def test_a_run_the_model_doubted_more_ranks_above_an_equally_alike_one(shipped):
    words = [*heard("hyval hernia", 0.7), Word("and", 0, 0, 0.9), *heard("pantopresil", 0.2)]
    found = [c.phrase for c in candidates(words, shipped, 40)]
    assert found.index("pantoprazole") < found.index("hiatal hernia")


def test_a_run_written_surely_suggests_no_phrase(shipped):
    assert "hiatal hernia" in [
        c.phrase for c in candidates(heard("hyval hernia", 0.7), shipped, 40)
    ]
    assert candidates(heard("hyval hernia", 0.95), shipped, 40) == []
    # Nor does a surely written phrase come back as a candidate: it needs no prompt.
    assert candidates(heard("continue metformin,", 0.95), shipped, 40) == []


def test_plain_words_retrieve_few_phrases_and_none_closely(shipped):
    found = candidates(heard("the patient feels well today"), shipped, 40)
    assert len(found) <= 5 and all(c.score < 0.9 for c in found)


# About forty seconds of speech: the drug falls in the second window, and it is not among the
# first phrases of the shipped list, which one fixed prompt for the whole file would hold.
LATER_DRUG = (
    "Gastroenterology follow-up for a forty-one-year-old woman with Crohn disease of the "
    "terminal ileum, diagnosed six years ago. Over the past month she has had six loose "
    "stools a day, crampy right lower quadrant pain, and a weight loss of three kilograms. "
    "There is no blood in the stool and no fever. On exam she is thin and tender in the right "
    "lower quadrant without a mass. Stool studies are negative and the inflammatory markers "
    "are raised. The assessment is moderately active disease of the ileum. "
    "For the urinary symptoms, start tamsulosin as discussed and review in six weeks."
)
#: One fixed prompt for the whole file wrote "start tancelos in this discuss".
DRUG = "tamsulosin"


def test_a_prompted_phrase_written_without_confidence_gives_way_to_the_reading_before():
    before = [Word("increase", 0.0, 0.5, 0.9), Word("levothyroxine", 0.5, 1.4, 0.6)]
    after = [Word("increase", 0.0, 0.5, 0.9), Word("levofloxacin", 0.5, 1.4, 0.01)]
    prompted = ["levofloxacin", "levothyroxine"]
    assert asr.undoubted(before, after, prompted) == before
    # Written with some confidence, or already in the reading before, the phrase stays.
    sure = [after[0], Word("levofloxacin", 0.5, 1.4, 0.3)]
    assert asr.undoubted(before, sure, prompted) == sure
    assert asr.undoubted(after, after, prompted) == after


def test_a_prompted_phrase_written_without_confidence_over_a_garble_of_it_stays():
    before = [
        Word("small", 0.0, 0.4, 0.9),
        Word("hyval", 0.4, 0.9, 0.4),
        Word("hernia.", 0.9, 1.4, 0.9),
    ]
    after = [before[0], Word("hiatal", 0.4, 0.9, 0.01), before[2]]
    prompted = ["hiatal hernia", "inguinal hernia"]
    assert asr.undoubted(before, after, prompted) == after
    # Where the reading before heard English words, or a garble out of the phrase's reach
    # (far longer), the phrase had only been suggested.
    for heard, phrase in (("a Texas", "ataxia"), ("LVEFioric", "LVEF")):
        before = [Word(text, 0.4, 0.9, 0.6) for text in heard.split()]
        after = [Word(phrase, 0.4, 0.9, 0.005)]
        assert asr.undoubted(before, after, [phrase]) == before


def test_a_phrase_the_reading_before_wrote_is_not_lost_by_the_next():
    before = [Word("start", 0.0, 0.4, 0.9), Word("tamsulosin", 0.4, 1.2, 0.7)]
    after = [before[0], Word("Tant's", 0.4, 0.7, 0.5), Word("loss", 0.7, 1.1, 0.5)]
    prompted = ["tamsulosin", "silodosin"]
    assert asr.unlost(before, [*after, Word("in", 1.2, 1.4, 0.9)], prompted) == [
        *before,
        Word("in", 1.2, 1.4, 0.9),
    ]
    # Where the next reading wrote another phrase of its prompt there as surely, it stands;
    # less surely, the phrase before is written back (long-05 on the telephone: "mild
    # hyperkalemia" at 0.64, then "mild hyperglycemia" at 0.41).
    other = [before[0], Word("silodosin", 0.4, 1.1, 0.7)]
    assert asr.unlost(before, other, prompted) == other
    unsure = [before[0], Word("silodosin", 0.4, 1.1, 0.41)]
    assert asr.unlost(before, unsure, prompted) == before
    # A reading that dropped the time altogether gets the phrase back in its place.
    assert asr.unlost(before, before[:1], prompted) == before


def test_a_phrase_the_next_reading_wrote_in_another_form_is_not_written_back():
    before = [Word("faint", 0.0, 0.4, 0.99), Word("expiratory", 0.5, 1.1, 0.46)]
    before.append(Word("wheezing", 1.1, 1.6, 0.44))
    after = [*before[:2], Word("wheeze", 1.1, 1.5, 0.76)]
    assert asr.unlost(before, after, ["wheezing", "expiratory wheezing"]) == after


def test_a_term_said_in_a_later_window_is_heard_through_that_windows_prompt(
    natural_dictation, recognizer
):
    samples = audio.load(natural_dictation(LATER_DRUG).read_bytes()).tracks[0]
    *earlier, last = windows(samples)
    assert earlier  # the drug, in the last sentence, is said in a later window
    # One prompt for the whole file would not hold it: the shipped list is thousands long.
    assert DRUG not in (recognizer.prompt(default_phrases()) or "")
    # Unprompted, the window's words do not spell it, yet they retrieve it for its prompt.
    later = recognizer.encode(samples, last)
    [quick] = recognizer.decode([later], None, 1)
    assert DRUG not in " ".join(word.text for word in quick).lower()
    found = candidates(quick, phrase_index(default_phrases()), 40)
    assert DRUG in [c.phrase for c in found]
    words = recognizer.transcribe(samples, default_phrases()).words
    assert DRUG in " ".join(word.text for word in words).lower()


# After one steered reading: "increased spheroes, might form 40 milligrams" and "metaprolol, 6
# and 8"; retrieved from those words, the next reading's prompt holds both drugs.
REHEARD = (
    "Plan, increase furosemide from forty milligrams to eighty milligrams daily, start "
    "sacubitril valsartan, and increase metoprolol succinate to fifty milligrams daily."
)
TERMS = ("furosemide", "metoprolol succinate")


def test_terms_retrieved_only_from_a_steered_reading_are_heard_in_the_next(
    natural_dictation, recognizer, shipped, monkeypatch
):
    samples = audio.load(natural_dictation(REHEARD).read_bytes()).tracks[0]
    [span] = windows(samples)
    window = recognizer.encode(samples, span)

    def steered() -> str:
        [words] = recognizer.steer([window], shipped, [])
        return " ".join(word.text for word in words).lower()

    with monkeypatch.context() as once:
        once.setattr(asr, "NEW_WITHIN", asr.NEW_WITHIN[:1])
        assert not any(term in steered() for term in TERMS)
    assert all(term in steered() for term in TERMS)


def test_a_quick_reading_that_repeats_itself_is_read_again_barred_from_repeating(
    natural_dictation, recognizer, monkeypatch
):
    samples = audio.load(natural_dictation(REHEARD).read_bytes()).tracks[0]
    [span] = windows(samples)
    window = recognizer.encode(samples, span)
    read, barred = recognizer.read, []

    def looping_at_first(audios, hotwords, beam_size, no_repeat=0):
        readings = read(audios, hotwords, beam_size, no_repeat)
        barred.append(no_repeat)
        return [words * 6 for words in readings] if len(barred) == 1 else readings

    monkeypatch.setattr(recognizer, "read", looping_at_first)
    [quick] = recognizer.decode([window], None, asr.QUICK_BEAM)
    assert barred == [0, asr.NO_REPEAT]  # the first reading looped, so it was read again
    text = " ".join(word.text for word in quick).lower()
    assert not asr.repeats(quick) and text.startswith("plan") and text.endswith("daily.")


def test_a_reading_that_runs_on_reciting_its_prompt_does_not_end_as_the_quick_one():
    quick = heard("magnesium oxide 400 milligrams daily, and rib-a-flavilla-reasonable.")
    recited = heard("magnesium 400 milligrams, or anhedonia, ondansetron, or ondamsetron")
    assert not asr.ends_alike(recited, quick)
    assert asr.ends_alike(heard("for small isophadilmaris,"), heard("small isophered deal maris,"))
    assert asr.ends_alike(heard("and rosuvastatin 14mg."), heard("Rosia Vostate in 14-mg."))


# On this window, Whisper prompted with these phrases in this order writes "heparin was given
# during the case, lovastatin, lovastatin," and stops; barred from repeating, it stops after
# "rosuvastatin" instead.
STOPPING = (
    "Heparin was given during the case. Load with ticagrelor one hundred eighty milligrams, "
    "then ninety milligrams b.i.d., plus aspirin eighty-one milligrams daily, for at least "
    "twelve months, and rosuvastatin forty milligrams."
)
STOPPING_PROMPT = (
    "heparin", "ticagrelor", "statin", "lovastatin", "pravastatin", "atorvastatin",
    "rosuvastatin", "keloid", "nystatin", "paranoia",
)  # fmt: skip


def test_a_window_whose_steered_readings_stop_early_is_still_read_whole(
    natural_dictation, recognizer, shipped, monkeypatch
):
    samples = audio.load(natural_dictation(STOPPING).read_bytes()).tracks[0]
    [span] = windows(samples)
    window = recognizer.encode(samples, span)
    [quick] = recognizer.decode([window], None, 1)
    prompt = asr.as_prompt(STOPPING_PROMPT)
    for no_repeat in (0, asr.NO_REPEAT):  # the fault: both steered readings stop early
        [cut] = recognizer.read([window], [prompt], recognizer.beam_size, no_repeat)
        assert not asr.sound(cut, quick) and not asr.ends_alike(cut, quick)
    # Listed by priority, the first written last: the prompt above.
    found = [retrieval.Candidate(phrase, 1.0, False) for phrase in reversed(STOPPING_PROMPT)]
    monkeypatch.setattr(retrieval, "candidates", lambda *_: found)
    [words] = recognizer.steer([window], shipped, [])
    text = " ".join(word.text for word in words)
    assert asr.sound(words, quick) and "12 months" in text and text.endswith("40 mg.")
