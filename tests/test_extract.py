from assistant.answer.extract import answer_span, expected_types

DESERTION = "Some 18 North Korean soldiers are believed to have deserted the Russian frontline."
WIANKI = "Thousands of people gather on the banks of the Vistula on midsummer night for a festival called Wianki (Polish for Wreaths)."


def short(question: str, sentence: str) -> str | None:
    span = answer_span(question, sentence)
    return sentence[span.start : span.end] if span else None


def test_question_wording_sets_the_expected_type():
    assert "CARDINAL" in expected_types("How many soldiers deserted?")
    assert "DATE" in expected_types("When did the war end?")
    assert "PERSON" in expected_types("Who founded the firm?")
    assert "GPE" in expected_types("Where were they deployed?")
    assert expected_types("Describe the bridge.") == set()


def test_span_answers_with_new_words_of_the_expected_type():
    assert short("How many soldiers deserted?", DESERTION) == "18"


def test_no_span_leaves_a_bracket_open():
    for question in ("What is the festival on the Vistula called?", "How many people gather along the Vistula?"):
        answer = short(question, WIANKI)
        assert answer and answer.count("(") == answer.count(")"), answer
