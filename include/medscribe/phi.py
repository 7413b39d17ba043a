"""PHI identification over a finished transcript, offline, the way Transcribe Medical labels it.

A transcript says numbers the way people speak them ("five five five, one two three four",
"nineteen sixty two"), so every word is first put in a written form (digits, "@", ".") and
the recognizers run over that text. Each match is mapped back to the items it covers, which
give the entity its times. Names come from the US census lists shipped in the ``names``
package; numbers, dates, addresses and identifiers from patterns with their spoken cues.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

UNITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TEENS = [
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
ORDINALS = {
    "first": "1st", "second": "2nd", "third": "3rd", "fourth": "4th", "fifth": "5th",
    "sixth": "6th", "seventh": "7th", "eighth": "8th", "ninth": "9th", "tenth": "10th",
    "eleventh": "11th", "twelfth": "12th", "thirteenth": "13th", "fourteenth": "14th",
    "fifteenth": "15th", "sixteenth": "16th", "seventeenth": "17th", "eighteenth": "18th",
    "nineteenth": "19th", "twentieth": "20th", "thirtieth": "30th",
}  # fmt: skip
TOP_DOMAINS = {"com", "org", "net", "edu", "gov", "io", "us"}
SPOKEN_SYMBOLS = {"dot": ".", "point": ".", "at": "@", "dash": "-", "hyphen": "-", "slash": "/"}
#: Words a recognizer writes for a digit it heard among digits said one by one
#: ("1-2-3, for 5-6"); between numbers ("120 to 140") they stay words.
DIGIT_HOMOPHONES = {"for": "4", "to": "2", "too": "2"}
#: Digits said one by one, as one word: "5", "1-2-3".
SPELLED_DIGITS = re.compile(r"\d(?:[,.-]\d)*")
#: A word that holds digits only, with the separators a recognizer puts between them.
DIGIT_GROUP = re.compile(r"[\d,.-]*\d[\d,.-]*")
#: A word that ends in a top-level domain: "gmail.com".
DOMAIN_END = re.compile(r"\.(?:com|org|net|edu|gov|io|us)\W*$")

MONTHS = (
    "January|February|March|April|May|June|July|August|September|October|November|December"
    "|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec"
)
TITLES = {"mr", "mrs", "ms", "miss", "mister", "missus", "dr", "doctor", "nurse", "patient"}
#: Titles said only before a surname: the next word is a name even when the recognizer
#: wrote it in lower case or as a word no name list holds ("Mrs. del gato").
HONORIFICS = {"mr", "mrs", "mister", "missus"}
#: Words that follow a title or "my name is" without being a name.
NOT_NAME_WORDS = {
    "a", "an", "the", "and", "or", "but", "is", "was", "are", "will", "can", "said", "says",
    "to", "of", "in", "on", "at", "for", "with", "who", "what", "here", "there", "please",
}  # fmt: skip
#: Cues after which the next word is a name, whatever its spelling: "my name is", "named".
NAME_IS = re.compile(r"\b(?:name is|name's|named)$", re.I)
#: Words that introduce a name: "my name is", "this is", "I'm".
NAME_CUES = re.compile(r"\b(?:name is|named|name's|this is|I'm|I am|called|ask for)$", re.I)
#: Capitalized words that are never names, whatever the census lists say.
NOT_NAMES = {
    "I", "I'm", "I've", "I'll", "OK", "Okay", "Yes", "No", "Hello", "Hi", "Thank", "Thanks",
    "Good", "Well", "So", "And", "But", "The", "A", "An", "Doctor", "Dr", "Mr", "Mrs", "Ms",
    "Miss", "Mister", "Missus", "Nurse", "Patient", "Monday", "Tuesday", "Wednesday",
    "Thursday", "Friday", "Saturday", "Sunday", "Street", "Avenue", "Road", "Hospital",
    "Clinic", "Center", "English", "You", "He", "She", "We", "They", "It", "My", "Your", "His",
    "Her", "Our", "Their",
}  # fmt: skip
FACILITY_WORDS = (
    r"(?:Hospital|Medical Center|Health Center|Clinic|Infirmary|Medical Group|Health System"
    r"|Memorial|Healthcare|Health)"
)
STREET_WORDS = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Drive|Lane|Ln|Boulevard|Blvd|Court|Ct|Way|Place|Terrace"
    r"|Parkway|Circle|Highway|Trail)"
)
#: After a house number and a few words, a street word makes an address however it is
#: spelled, unless those words measure something ("a 20-minute drive", "2 blocks that way").
HOUSE_STREET_WORDS = (
    r"(?:street|avenue|road|lane|boulevard|court|terrace|parkway|drive|way|place|circle|trail)"
)
MEASURES = r"(?:minute|hour|mile|block|day|week|month|year|time|step|foot|feet|yard)s?"
US_STATES = (
    "Alabama|Alaska|Arizona|Arkansas|California|Colorado|Connecticut|Delaware|Florida|Georgia"
    "|Hawaii|Idaho|Illinois|Indiana|Iowa|Kansas|Kentucky|Louisiana|Maine|Maryland"
    "|Massachusetts|Michigan|Minnesota|Mississippi|Missouri|Montana|Nebraska|Nevada"
    "|New Hampshire|New Jersey|New Mexico|New York|North Carolina|North Dakota|Ohio|Oklahoma"
    "|Oregon|Pennsylvania|Rhode Island|South Carolina|South Dakota|Tennessee|Texas|Utah"
    "|Vermont|Virginia|Washington|West Virginia|Wisconsin|Wyoming"
)


def _run(low: int, high: int) -> str:
    """``low`` to ``high`` digits, each pair maybe apart by a space, comma, dot or dash."""
    return rf"\d(?:[ ,.-]{{0,2}}\d){{{low - 1},{high - 1}}}"


def _digits(low: int, high: int) -> str:
    """A run of digits that is a whole number of its own, not part of a longer one."""
    return rf"(?<![\w.]){_run(low, high)}(?!\w)"


_ID_VALUE = r"(?:[A-Z]{1,3}[ -]?)?\d(?:[ ,-]{0,2}(?:\d|[A-Z](?![a-z']))){3,}"
_DAY = r"\d(?: ?\d)?(?:st|nd|rd|th)?"
_YEAR = r"(?:1 ?9|2 ?0) ?\d ?\d"

#: (pattern over the written-form text, confidence); group "phi" when only part is PHI.
PATTERNS: list[tuple[re.Pattern[str], float]] = [
    (re.compile(p, f), score)
    for p, f, score in [
        # Identifiers named by what they are: record, account, insurance, licence, plate.
        (
            r"(?i:\b(?:social security|SSN|medical record|MRN|record|account|policy|member|"
            r"insurance|subscriber|license|licence|certificate|plate|VIN|vehicle identification"
            r"|chart|ID|identification)(?: number| no\.?| #| ID)?(?:(?: [\w']+){0,3}? is| was| of)?"
            r"[:,]?) "
            rf"(?P<phi>{_ID_VALUE})",
            0,
            0.95,
        ),
        # An identifier by its shape: letters, then six digits or more ("D417228 9-0-3"), or
        # letters and four digits or more mixed in a word ("1eG-40A5 MK-72"), not "COVID-19".
        (rf"(?<![\w.])[A-Z]{{1,3}}[ -]?{_run(6, 14)}(?!\w)", 0, 0.85),
        (
            r"(?<![\w.])(?=(?:[a-z-]*\d){4})(?=(?:[\d-]*[a-z]){2})[a-z\d]+(?:-[a-z\d]+)+"
            r"(?: (?=[a-z-]*\d)[a-z\d]+(?:-[a-z\d]+)*)*",
            re.I,
            0.85,
        ),
        # Social security (9 digits), phone and fax numbers (7, 10 or 11), however said.
        (_digits(9, 11), 0, 0.9),
        (_digits(7, 7), 0, 0.85),
        (r"\b[\w+-]+(?: ?\. ?[\w+-]+)* ?@ ?[\w-]+(?: ?\. ?[a-z0-9-]+)+", 0, 0.95),
        # An address the recognizer wrote with its "at" misheard, after what introduces it:
        # "It is robert.coms and that gmail.com".
        (
            r"\b(?:is|to|email|address)[:,]? (?P<phi>[\w-]+\.[\w.-]*\w(?: [\w'-]+){1,3}"
            r" [\w-]+ ?\. ?(?:com|org|net|edu|gov|io|us))\b",
            re.I,
            0.85,
        ),
        (r"\b(?:https?://\S+|www ?\. ?[\w-]+(?: ?\. ?[a-z0-9-]+)+)", 0, 0.95),
        (r"\b[\w-]+(?: ?\. ?[\w-]+)* ?\. ?(?:com|org|net|edu|gov|io|us)\b(?! ?@)", re.I, 0.9),
        # IP addresses: four numbers, at least one dot said between them.
        (r"(?<![\d.])(?=[\d .]*\.)\d{1,3}(?:(?: ?\. ?| )\d{1,3}){3}(?![\d.])", 0, 0.95),
        # Dates: "March 14th, 1962", "the 14th of March", "03/14/1962", "born in 1962".
        (
            rf"\b(?:{MONTHS})\.?(?: (?:the )?{_DAY}(?:,? (?:of )?{_YEAR})?|,? (?:of )?{_YEAR})"
            r"(?=\W|$)",
            0,
            0.9,
        ),
        (rf"\b{_DAY} of (?:{MONTHS})(?:,? {_YEAR})?", 0, 0.9),
        (r"\b\d{1,2}[/-]\d{1,2}[/-]\d{2,4}\b", 0, 0.95),
        (rf"\b(?:born|birth|birthday|DOB)(?: in| on| was| is)? (?P<phi>{_YEAR})\b", re.I, 0.9),
        # Ages: "52-year-old", "age 52", "52 years of age".
        (
            r"(?<![\w.])(?P<phi>\d(?: ?\d){0,2})[ -]years?[ -]old|\bage(?:d| of)? (?P<phi2>\d\d?)\b"
            r"|\b(?:I am|I'm|you are|you're|he is|he's|she is|she's) (?P<phi4>\d(?: ?\d){0,2})"
            r"(?: now| this year)?(?=[.!?,]|$)"
            r"|\bhow old [^.?!]*\? (?P<phi5>\d(?: ?\d){0,2})(?=[.!?]|$)"
            r"|\b(?:turned|turns|will be) (?P<phi6>\d\d?)(?: (?:this|last|next) \w+)?(?=[.!?,]|$)"
            r"|(?P<phi3>\d\d?) years of age",
            re.I,
            0.9,
        ),
        # Addresses: "twelve Oak Street", "Springfield, Illinois 62704", a zip code.
        (rf"\b(?:\d(?: ?\d){{0,5}} )?(?:[A-Z][a-z]+ ){{1,3}}{STREET_WORDS}\b\.?", 0, 0.9),
        (rf"\b(?:live|lives|living) at (?P<phi>(?:[\w'-]+ ){{1,4}}{STREET_WORDS})\b", re.I, 0.9),
        # A house number and a street, whatever the recognizer made of its name: "1-85-wheel court".
        (
            rf"(?<![\w.])(?![\d-]*{MEASURES}\b)\d[\w'-]*"
            rf"(?: (?!(?:{'|'.join(NOT_NAME_WORDS)}|{MEASURES})\b)[\w'-]+){{0,3}} "
            rf"{HOUSE_STREET_WORDS}\b",
            re.I,
            0.85,
        ),
        (rf"\b(?:[A-Z][a-z]+,? )?(?:{US_STATES})(?:,? {_run(5, 5)})?", 0, 0.8),
        (rf"\bzip(?: code)?(?: is)? (?P<phi>{_run(5, 9)})", re.I, 0.95),
        # A zip code said after the state or the street, in the next few words: "Oregon. The
        # zip is 97214", "77 Harbour Road, Lip Cove 02139".
        (
            rf"\b(?:{US_STATES}|{STREET_WORDS})\W* (?:[A-Za-z']+ ){{1,4}}"
            r"(?P<phi>\d{5}(?:-\d{4})?)\b",
            0,
            0.85,
        ),
        # Medical centers: "Saint Mary's Hospital", "Lakeside Medical Center".
        (rf"\b(?:(?:St\.?|Saint|[A-Z][\w']+) ){{1,4}}{FACILITY_WORDS}\b", 0, 0.9),
    ]
]


@dataclass(frozen=True)
class Token:
    """A pronunciation item: its words as said, as written for matching, and its times."""

    content: str
    written: str
    start: float
    end: float
    sentence_start: bool


def _spoken_numbers(words: list[str]) -> list[str]:
    """Number words to digits, one token at a time ("twenty one" -> "2", "1"); inside a
    hyphenated word too ("fifty-two-year-old" -> "52-year-old")."""
    lowered = [word.lower() for word in words]
    written = []
    for index, word in enumerate(lowered):
        if "-" in word.strip("-"):
            written.append(_hyphenated(words[index]))
            continue
        after = lowered[index + 1] if index + 1 < len(lowered) else ""
        before = lowered[index - 1] if index else ""
        if word in UNITS:
            written.append(str(UNITS.index(word)))
        elif word in TEENS:
            written.append(str(10 + TEENS.index(word)))
        elif word in TENS:
            tens = str(2 + TENS.index(word))
            written.append(tens if after in UNITS[1:] or after in ORDINALS else tens + "0")
        elif word in ("oh", "o") and (_is_number(before) or _is_number(after)):
            written.append("0")
        elif word in DIGIT_HOMOPHONES and all(
            w in UNITS or SPELLED_DIGITS.fullmatch(w) for w in (before, after)
        ):
            written.append(DIGIT_HOMOPHONES[word])
        elif word == "hundred" and _is_number(before):
            written.append("00" if not _is_number(after) else "0" if after in UNITS else "")
        elif word in ORDINALS:
            written.append(ORDINALS[word])
        elif word in SPOKEN_SYMBOLS and _symbol_context(lowered, index):
            written.append(SPOKEN_SYMBOLS[word])
        else:
            written.append(words[index])
    return written


def _hyphenated(word: str) -> str:
    """A hyphenated word with its number words as digits, a tens and its unit joined."""
    parts = _spoken_numbers(word.split("-"))
    joined = parts[0]
    for before, part in itertools.pairwise(parts):
        joined += ("" if before.isdigit() and part.isdigit() and len(part) == 1 else "-") + part
    return joined


def _is_number(word: str) -> bool:
    word = word.lower()
    return bool(DIGIT_GROUP.fullmatch(word)) or word in UNITS or word in TEENS or word in TENS


def _symbol_context(words: list[str], index: int) -> bool:
    """The words "dot" and "at" are symbols only between digits or inside an address that ends in a
    domain ("jane dot doe at gmail dot com", "www dot clinic dot org")."""
    before = words[index - 1] if index else ""
    after = words[index + 1] if index + 1 < len(words) else ""
    if not (before and after):
        return False
    if _is_number(before) and _is_number(after):
        return True
    ahead = words[index + 1 : index + 6]
    between_words = bool(re.fullmatch(r"[\w.+-]*\w", before) and re.match(r"\w", after))
    return between_words and any(w in TOP_DOMAINS or DOMAIN_END.search(w) for w in ahead)


def tokens(items: list[dict[str, Any]]) -> list[Token]:
    """The pronunciation items of a transcript, with their written forms."""
    spoken: list[tuple[dict[str, Any], bool]] = []
    marks: list[str] = []
    sentence_start = True
    for item in items:
        content = item["alternatives"][0]["content"]
        if item["type"] == "punctuation":
            # "Mr." or "Dr." ends no sentence.
            after_title = (
                bool(spoken) and spoken[-1][0]["alternatives"][0]["content"].lower() in TITLES
            )
            sentence_start = sentence_start or (content in ".?!" and not after_title)
            if marks:
                marks[-1] += content
            continue
        spoken.append((item, sentence_start))
        marks.append("")
        sentence_start = False
    # A mark stays on the written form, so no pattern runs across the end of a sentence.
    written = [
        form + mark
        for form, mark in zip(
            _spoken_numbers([item["alternatives"][0]["content"] for item, _ in spoken]),
            marks,
            strict=True,
        )
    ]
    return [
        Token(
            item["alternatives"][0]["content"],
            form,
            float(item["start_time"]),
            float(item["end_time"]),
            starts,
        )
        for (item, starts), form in zip(spoken, written, strict=True)
    ]


@dataclass(frozen=True)
class Entity:
    first: int  #: index of the first token covered
    last: int  #: index of the last token covered
    confidence: float


def _spans(text: str, offsets: list[int]) -> Iterator[Entity]:
    """Every pattern match, as the range of tokens it touches."""
    for pattern, score in PATTERNS:
        for match in pattern.finditer(text):
            # The named group that matched (a pattern's alternatives each name their own).
            group = next((name for name, value in match.groupdict().items() if value), 0)
            start, end = match.span(group)
            yield Entity(_token_at(offsets, start), _token_at(offsets, end - 1), score)


def _token_at(offsets: list[int], char: int) -> int:
    index = 0
    while index + 1 < len(offsets) and offsets[index + 1] <= char:
        index += 1
    return index


@cache
def _census(name: str, top: int) -> frozenset[str]:
    """The ``top`` most common names of one census list shipped by the ``names`` package."""
    text = resources.files("names").joinpath(name).read_text()
    return frozenset(line.split()[0].title() for line in text.splitlines()[:top])


def _first_names() -> frozenset[str]:
    return _census("dist.male.first", 1219) | _census("dist.female.first", 4275)


def _last_names() -> frozenset[str]:
    return _census("dist.all.last", 20000)


def _is_capitalized(token: Token) -> bool:
    word = token.content.removesuffix("'s").removesuffix("’s")
    return (
        word[:1].isupper()
        and word[1:].islower()
        and word not in NOT_NAMES
        and word not in MONTHS.split("|")
    )


def _names(found: list[Token]) -> Iterator[Entity]:
    """People's names: capitalized words after a title or cue, or found in the census lists."""
    firsts, lasts = _first_names(), _last_names()
    index = 0
    while index < len(found):
        token = found[index]
        # Any sentence starts with a capital: there a name must start with a first name.
        if not _is_capitalized(token) or (token.sentence_start and token.content not in firsts):
            first = _named_by_cue(found, index)
            if first is not None:
                yield Entity(first, index, 0.9)
            index += 1
            continue
        end = index
        while (
            end - index < 2
            and end + 1 < len(found)
            and _is_capitalized(found[end + 1])
            and not found[end + 1].sentence_start
        ):
            end += 1
        words = [t.content.split("'")[0] for t in found[index : end + 1]]
        before = found[index - 1].content.lower().rstrip(".") if index else ""
        cue = " ".join(t.content for t in found[max(0, index - 3) : index])
        known = sum(w in firsts or w in lasts for w in words)
        score = 0.0
        if before in TITLES or NAME_CUES.search(cue):
            score = 0.95
        elif words[0] in firsts and len(words) > 1 and known == len(words):
            score = 0.9
        elif words[0] in firsts and len(words) > 1:
            score = 0.75  # a surname no list holds, or one the recognizer misspelled
        elif known == len(words) and (not token.sentence_start or len(words) > 1):
            score = 0.8
        elif words[0] in firsts and found[end].written.endswith(","):
            score = 0.8  # someone spoken to: "Ethan, open your mouth."
        if score:
            # The title goes with the name: it is said with it, and where the recognizer
            # timed the name too short, the title's time holds its audio.
            yield Entity(index - (before in TITLES - {"patient"}), end, score)
        index = end + 1


def _named_by_cue(found: list[Token], index: int) -> int | None:
    """Where a name starts that a cue announces, however the recognizer spelled it (a word
    right after an honorific or "my name is" that never is a word of another kind): with
    the honorific, which is said with it."""
    if not index:
        return None
    word = found[index].content.strip("'").lower()
    before = found[index - 1].content.lower().rstrip(".")
    mark = found[index - 1].written.removeprefix(found[index - 1].content)
    cue = " ".join(t.content for t in found[max(0, index - 2) : index])
    if not word.isalpha() or word in NOT_NAME_WORDS:
        return None
    if before in HONORIFICS and mark in ("", "."):
        return index - 1
    return index if not mark and NAME_IS.search(cue) else None


def identify(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``results.entities`` for a transcript's items, in AWS's shape, in time order."""
    found = tokens(items)
    if not found:
        return []
    offsets: list[int] = []
    text = ""
    for token in found:
        offsets.append(len(text))
        text += token.written + " "
    entities = sorted(
        [*_spans(text, offsets), *_names(found)], key=lambda e: (e.first, -e.last, -e.confidence)
    )
    merged: list[Entity] = []
    for entity in entities:
        if merged and entity.first <= merged[-1].last:
            last = merged[-1]
            merged[-1] = Entity(
                last.first, max(last.last, entity.last), max(last.confidence, entity.confidence)
            )
        else:
            merged.append(entity)
    return [
        {
            "content": " ".join(t.content for t in found[e.first : e.last + 1]),
            "category": "PHI",
            "startTime": found[e.first].start,
            "endTime": found[e.last].end,
            "confidence": e.confidence,
        }
        for e in merged
    ]
