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
