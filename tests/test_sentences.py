from hypothesis import given
from hypothesis import strategies as st

from assistant.index.sentences import split_sentences


def texts(text):
    return [s.text for s in split_sentences(text)]


def test_missing_space_after_full_stop_is_a_boundary():
    assert texts("Kremlin fighters are searching for them.The troops were deployed in Kursk.") == [
        "Kremlin fighters are searching for them.",
        "The troops were deployed in Kursk.",
    ]


def test_curly_quotes_close_sentences():
    text = "“It’s about transferring people to the occupying forces.”Andriy Kovalenko told NPR. He said “highly likely”.Ukraine’s minister agreed."
    assert texts(text) == [
        "“It’s about transferring people to the occupying forces.”",
        "Andriy Kovalenko told NPR.",
        "He said “highly likely”.",
        "Ukraine’s minister agreed.",
    ]


def test_abbreviations_initials_and_numbers_do_not_split():
    text = "Dr. Smith moved to St. Louis in the U.S. Army in 1990. It cost 3.5 million.Then J. R. Tolkien wrote."
    assert texts(text) == [
        "Dr. Smith moved to St. Louis in the U.S. Army in 1990.",
        "It cost 3.5 million.",
        "Then J. R. Tolkien wrote.",
    ]


def test_question_marks_and_line_breaks():
    assert texts("Who knows? Nobody!\nA heading\nThe end") == ["Who knows?", "Nobody!", "A heading", "The end"]


@given(st.text(alphabet=st.sampled_from(list("ab .?!”“\nAT1")), max_size=80))
def test_offsets_round_trip_and_cover_all_non_space(text):
    sentences = split_sentences(text)
    for s in sentences:
        assert text[s.start : s.end] == s.text and s.text == s.text.strip() and s.text
    covered = "".join(s.text for s in sentences)
    assert covered.replace(" ", "").replace("\n", "") == text.replace(" ", "").replace("\n", "")
