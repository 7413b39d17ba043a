"""PHI identification: the rules on written transcripts, and a real dictation through the engine."""

from __future__ import annotations

import pytest
from test_jobs import start, transcript_of, upload, wait

from medscribe import phi


def items(text: str) -> list[dict]:
    """AWS-shaped items for ``text``, one word every 0.4 s."""
    made: list[dict] = []
    for index, word in enumerate(text.split()):
        core = word.rstrip(".,?!")
        made.append(
            {
                "start_time": f"{index * 0.4:.1f}",
                "end_time": f"{index * 0.4 + 0.3:.1f}",
                "type": "pronunciation",
                "alternatives": [{"confidence": "0.9", "content": core}],
            }
        )
        made += [
            {"type": "punctuation", "alternatives": [{"confidence": "0.0", "content": mark}]}
            for mark in word[len(core) :]
        ]
    return made


def found(text: str) -> list[str]:
    return [entity["content"] for entity in phi.identify(items(text))]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The patient is Maria Gonzalez, a 52-year-old woman.", ["Maria Gonzalez", "52-year-old"]),
        ("Born on March 14th, 1962.", ["March 14th 1962"]),
        ("Date of birth the fourth of July nineteen eighty one.",
         ["fourth of July nineteen eighty one"]),
        ("Her phone is five five five, one two three four.", ["five five five one two three four"]),
        ("My number is five five five eight six seven five three oh nine.",
         ["five five five eight six seven five three oh nine"]),
        ("Fax 555 222 1111 or email john.smith@gmail.com.", ["555 222 1111", "john.smith@gmail.com"]),
        ("Email me at jane dot doe at gmail dot com.", ["jane dot doe at gmail dot com"]),
        ("Social security number is 123-45-6789.", ["123-45-6789"]),
        ("She lives at 42 Oak Street, Springfield, Illinois 62704.",
         ["42 Oak Street", "Springfield Illinois 62704"]),
        ("Seen at Saint Mary's Hospital yesterday.", ["Saint Mary's Hospital"]),
        ("Medical record number MRN 48213377. Insurance ID is XJ4 882 913.",
         ["MRN 48213377", "XJ4 882 913"]),
        ("License plate is 7 ABC 123.", ["7 ABC 123"]),
        ("Visit www.mercyclinic.org or 192.168.1.20.", ["www.mercyclinic.org", "192.168.1.20"]),
        ("Thank you, Doctor Patel. I'm Sarah.", ["Doctor Patel", "Sarah"]),
        ("Hello, Mr. Thompson, how are you?", ["Mr Thompson"]),
        # A title spelled out, as a prompt holding "Mister Thompson" makes Whisper write it.
        ("Good morning, Mister Thompson, how are you?", ["Mister Thompson"]),
        ("Thanks, Missus Delgado.", ["Missus Delgado"]),
        ("How old are you? I'm 28.", ["28"]),
        ("How old are you now, sir? 79. Any chest pain?", ["79"]),
        ("I live at Fortwell Maple Avenue in Springfield, Illinois.",
         ["Fortwell Maple Avenue", "Springfield Illinois"]),
        ("They changed my plan in January.", []),
        ("The pharmacy on Oak Street.", ["Oak Street"]),
        ("Try the address 10 0.4.12 at work.", ["10 0.4.12"]),
        ("Ethan, open your mouth.", ["Ethan"]),
        ("It is 1-2-3, for 5-6-7-8-9.", ["1-2-3 for 5-6-7-8-9"]),
        ("So you are 66 now. Any bleeding?", ["66"]),
        ("A fifty-two-year-old man.", ["fifty-two-year-old"]),
        ("Send it to peter.delgado at yahoo.com please.", ["peter.delgado at yahoo.com"]),
        ("Portland, Oregon. Postal code 97214.", ["Portland Oregon", "97214"]),
        ("Is this Mrs. delgato? My name is denise.", ["Mrs delgato", "denise"]),
        ("It is robert.coms and that gmail.com.", ["robert.coms and that gmail.com"]),
        ("Our sheet has her at 1-85-wheel court, right?", ["1-85-wheel court"]),
        ("It is D417228, 9-0-3.", ["D417228 9-0-3"]),
        ("Mr. and Mrs. said the doctor told us. Walk 2 blocks down the road.", []),
        ("A 20 minute drive, 2 pills the same way.", []),
        ("And he You can go back to school.", []),
        ("We live at 77 Harbour Road, Lip Cove 02139, my phone.", ["77 Harbour Road", "02139"]),
        ("Yes, Walter Lothman.", ["Walter Lothman"]),
        ("I turned 75 this summer.", ["75"]),
        ("It is 1eG-40A5 MK-72.", ["1eG-40A5 MK-72"]),
        ("COVID-19 vaccine, H1N1, A1C of 7.2 and B12.", []),
        ("Is the address a 1120 pine hill drive?", ["1120 pine hill drive"]),
        ("It is a 20-minute drive, 2 blocks that way, 3 miles down the road.", []),
        ("And my account number with you is 440-91266.", ["440-91266"]),
        ("Take metformin 500 milligrams twice daily. Blood pressure 132 over 84.", []),
        ("Systolic from 120 to 140 this week.", []),
        ("Follow up in three months with a chest x-ray.", []),
    ],
)  # fmt: skip
def test_spoken_and_written_phi_is_found(text, expected):
    assert found(text) == expected


def test_entities_have_aws_shape_and_item_times():
    entity = phi.identify(items("Call John Smith today."))[0]
    assert entity == {
        "content": "John Smith",
        "category": "PHI",
        "startTime": 0.4,
        "endTime": 1.1,
        "confidence": entity["confidence"],
    }
    assert 0 < entity["confidence"] <= 1


DICTATION = (
    "The patient is John Smith, born on March fourth, nineteen sixty two. "
    "His phone number is five five five, two one two, three four five six. "
    "Blood pressure is stable."
)


def test_a_dictation_gets_its_name_birth_date_and_phone(stack, dictation):
    transcribe = stack.client("transcribe")
    path = dictation(DICTATION, ".wav")
    uri = upload(stack, path, "phi/visit.wav")
    start(transcribe, "phi-visit", uri, ContentIdentificationType="PHI")
    job = wait(transcribe, "phi-visit")
    assert job["TranscriptionJobStatus"] == "COMPLETED", job.get("FailureReason")
    assert job["ContentIdentificationType"] == "PHI"
    document = transcript_of(stack, job)
    entities = document["results"]["entities"]
    duration = max(float(i["end_time"]) for i in document["results"]["items"] if "end_time" in i)
    contents = " | ".join(entity["content"] for entity in entities)
    assert "John Smith" in contents
    assert "1962" in contents or "sixty two" in contents
    assert any(sum(c.isdigit() for c in e["content"]) == 10 for e in entities), contents
    for entity in entities:
        assert entity["category"] == "PHI"
        assert 0 <= entity["startTime"] < entity["endTime"] <= duration
