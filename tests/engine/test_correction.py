"""The correction pass respells near-miss terms and never drops what was said."""

from medscribe.correction import snap
from medscribe.words import Word

VOCABULARY = ["metformin", "milligrams", "methotrexate"]


def words(*pairs: tuple[str, float]) -> list[Word]:
    return [
        Word(text, index, index + 1.0, confidence) for index, (text, confidence) in enumerate(pairs)
    ]


def texts(result: list[Word]) -> list[str]:
    return [word.text for word in result]


def test_a_near_miss_run_becomes_the_term_it_sounds_like() -> None:
    heard = words(("take", 0.99), ("met", 0.4), ("formen,", 0.3), ("daily", 0.95))
    assert texts(snap(heard, VOCABULARY)) == ["take", "metformin,", "daily"]


def test_a_dose_change_keeps_every_number_and_word() -> None:
    # Recognized as said; "to 20 milligrams" once snapped to "milligrams" and lost the dose.
    heard = words(
        ("from", 0.99), ("15", 0.97), ("to", 0.75), ("20", 1.0), ("milligrams", 0.35),
        ("weekly,", 0.88),
    )  # fmt: skip
    assert texts(snap(heard, VOCABULARY)) == ["from", "15", "to", "20", "milligrams", "weekly,"]


def test_a_word_that_already_is_a_term_is_never_swallowed_by_its_neighbours() -> None:
    heard = words(("to", 0.5), ("milligrams", 0.4), ("daily", 0.99))
    assert texts(snap(heard, VOCABULARY)) == ["to", "milligrams", "daily"]


def test_a_term_heard_right_is_kept_whole() -> None:
    # "vitamin" alone resembles "vitamin D": it once became "vitamin D D".
    heard = words(("low", 0.99), ("vitamin", 0.39), ("D", 0.96), ("is", 0.99))
    assert texts(snap(heard, ["vitamin D"])) == ["low", "vitamin", "D", "is"]


def test_a_sure_word_stays_as_the_terms_own_word() -> None:
    heard = words(("the", 0.99), ("terminal", 0.99), ("alium", 0.29), ("shows", 0.98))
    assert texts(snap(heard, ["terminal ileum"])) == ["the", "terminal ileum", "shows"]
    # A sure word that the term does not have is never respelled.
    heard = words(("are", 0.52), ("negative.", 0.99))
    assert texts(snap(heard, ["Rh negative"])) == ["are", "negative."]


def test_a_term_split_into_other_words_is_written_as_the_term() -> None:
    heard = words(("Fecal", 0.31), ("CalProtect", 0.70), ("in", 0.37), ("the", 0.99))
    assert texts(snap(heard, ["fecal calprotectin"])) == ["fecal calprotectin", "the"]


def test_a_long_term_heard_as_english_words_a_letter_apart_is_written_as_the_term() -> None:
    # Natural voice, long-17: sure of each word, and each word English, yet "bicarbonate".
    vocabulary = ["sodium", "bicarbonate", "sodium bicarbonate", "vitamin D level", "heparin"]
    heard = words(("sodium", 0.998), ("by", 0.841), ("carbonate", 0.962), ("650", 0.907))
    assert texts(snap(heard, vocabulary)) == ["sodium", "bicarbonate", "650"]
    # A term that adds a word is another, and a short one is often English said as heard.
    for heard in (
        words(("vitamin", 0.5), ("level", 0.6), ("today", 0.99)),
        words(("hear", 0.6), ("in", 0.6), ("the", 0.99)),
    ):
        assert snap(heard, vocabulary) == heard


def test_a_snap_never_adds_or_drops_a_word() -> None:
    vocabulary = ["CT chest", "lipid panel", "malnutrition"]
    for heard in (
        words(("chest", 0.6), ("pain", 0.99)),
        words(("a", 0.74), ("lipid", 0.95), ("panel.", 0.8)),
        words(("Nutrition", 0.84), ("referral", 0.99)),
    ):
        assert snap(heard, vocabulary) == heard


def test_an_english_word_in_another_form_of_a_term_is_kept() -> None:
    # Said "end expiratory wheeze" and "Epworth Sleepiness Score": the terms are other words.
    vocabulary = ["expiratory wheezing", "Epworth Sleepiness Scale", "metoprolol"]
    for heard in (
        words(("expiratory", 0.46), ("wheeze", 0.76), ("on", 0.99)),
        words(("Epworth", 0.6), ("Sleepiness", 0.7), ("Score", 0.6)),
    ):
        assert snap(heard, vocabulary) == heard
    # A word no one writes, misspelt at its end, is still respelled.
    assert texts(snap(words(("metoprolal", 0.4)), vocabulary)) == ["metoprolol"]


def test_a_lost_first_sound_is_restored() -> None:
    heard = words(("and", 0.89), ("oxycycline.", 0.61), ("He", 0.99))
    assert texts(snap(heard, ["doxycycline"])) == ["and", "doxycycline.", "He"]


def test_a_number_is_never_respelled_nor_invented() -> None:
    heard = words(("radiation", 0.88), ("three", 0.88), ("weeks", 0.99))
    assert snap(heard, ["radiation therapy"]) == heard
    heard = words(("two", 0.99), ("plus-pitting", 0.76), ("edema", 0.76))
    assert snap(heard, ["1 plus pitting edema"]) == heard


def test_english_words_the_model_was_fairly_sure_of_are_kept() -> None:
    vocabulary = ["consolidation", "measles", "propofol", "forced vital capacity"]
    # Each of these once became the term it resembles, a term that was never said.
    for heard in (
        words(("no", 0.99), ("consultation", 0.77), ("needed", 0.98)),
        words(("with", 0.99), ("meals,", 0.87), ("daily", 0.98)),
    ):
        assert texts(snap(heard, vocabulary)) == texts(heard)
    # A word no English speaker writes, or one the model was unsure of, is still respelled.
    heard = words(("under", 0.99), ("propafall", 0.42), ("sedation", 0.98))
    assert texts(snap(heard, vocabulary)) == ["under", "propofol", "sedation"]
    heard = words(("Force", 0.22), ("vital", 0.9), ("capacity", 0.95))
    assert texts(snap(heard, vocabulary)) == ["forced vital capacity"]


def test_where_the_closest_term_is_refused_no_other_term_is_taken() -> None:
    # "atrial fibrillation" only adds a letter to what was heard, so it is refused; its
    # runner-up, "ventricular fibrillation", was once written in its place.
    heard = words(("natrial", 0.3), ("fibrillation", 0.4), ("today", 0.99))
    vocabulary = ["atrial fibrillation", "ventricular fibrillation"]
    assert texts(snap(heard, vocabulary)) == ["natrial", "fibrillation", "today"]


def test_a_run_about_as_like_two_terms_is_left_as_heard() -> None:
    # Said "hyperkalemia" on a telephone line; snapped, it was once written hyperglycemia.
    heard = words(("mild", 0.9), ("hyperglymia,", 0.49), ("and", 0.99))
    assert texts(snap(heard, ["hyperglycemia"])) == ["mild", "hyperglycemia,", "and"]
    assert texts(snap(heard, ["hyperglycemia", "hyperkalemia"])) == texts(heard)
    # The same term in another form is no rival.
    heard = words(("seborrheic", 0.6), ("karatosis", 0.4))
    vocabulary = ["seborrheic keratosis", "seborrheic keratoses"]
    assert texts(snap(heard, vocabulary)) == ["seborrheic keratosis"]


def test_a_run_only_somewhat_like_a_term_is_left_as_heard() -> None:
    # Each scored 0.82 to 0.845 and was once written as a term that was never said.
    vocabulary = ["nebulizer", "Rh positive", "gastroenteritis"]
    for heard in (
        words(("Nebulized", 0.39), ("albuterol", 0.98)),
        words(("serapositive", 0.69), ("arthritis", 0.97)),
        words(("viral", 0.9), ("gastroenterine", 0.26)),
    ):
        assert texts(snap(heard, vocabulary)) == texts(heard)


def test_an_abbreviation_with_a_number_is_written_as_listed() -> None:
    vocabulary = ["PHQ 9", "PD L1", "CA 19 9"]
    heard = words(("the", 0.99), ("pH-Q9", 0.52), ("score,", 0.9), ("PDL1", 0.71))
    assert texts(snap(heard, vocabulary)) == ["the", "PHQ 9", "score,", "PD L1"]
    # Its number is never regrouped.
    assert texts(snap(words(("CA-199,", 0.3)), vocabulary)) == ["CA-199,"]


def test_an_abbreviation_no_vocabulary_lists_is_left_as_heard() -> None:
    # Many real ones differ from a listed one in a letter whose name rhymes (CBT and CBC,
    # SDH and LDH, PET and PTT): a misheard "LBL" stays rather than a said CBT becoming CBC.
    vocabulary = ["LDL", "CBC", "LDH", "PTT"]
    heard = words(("LBL", 0.5), ("CBT", 0.6), ("SDH", 0.6), ("PET", 0.6))
    assert texts(snap(heard, vocabulary)) == ["LBL", "CBT", "SDH", "PET"]


def test_english_words_are_not_merged_into_a_one_word_term_they_do_not_spell() -> None:
    # "start in" was "start" before a drug misheard (three times in the benchmark), not statin.
    heard = words(("start", 0.42), ("in", 0.33), ("40", 0.99))
    assert texts(snap(heard, ["statin", "atorvastatin"])) == ["start", "in", "40"]
    # Words that are not all English still make a one-word term ("cefanol in", cefazolin).
    heard = words(("cefanol", 0.17), ("in", 0.43), ("given", 0.99))
    assert texts(snap(heard, ["cefazolin"])) == ["cefazolin", "given"]
