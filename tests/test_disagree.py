import pytest

from assistant.answer.disagree import differ, quantities, stated


def claim(text: str, span: str) -> tuple[str, int, int, int]:
    at = text.index(span)
    return text, at, at + len(span), 0


@pytest.mark.parametrize("a, b, expected", [
    (("The army is forming a unit of some 3,000 North Koreans.", "3,000"),
     ("They were “absolutely nowhere near 3,000”.", "3,000"), True),            # one side negates the same number
    (("Some 18 soldiers deserted.", "18"), ("About 20 soldiers deserted.", "20"), True),   # different quantities
    (("Some 18 soldiers deserted.", "18"), ("Reports say 18 soldiers left.", "18"), False),  # agree
    (("It was built in Warsaw.", "Warsaw"), ("The plant is in Warsaw.", "Warsaw"), False),
    (("It was not built in Warsaw.", "Warsaw"), ("The plant is in Warsaw.", "Warsaw"), True),
    (("It was built in Warsaw.", "Warsaw"), ("It was built in Gdańsk.", "Gdańsk"), False),  # no numbers, no negation: not judged
])
def test_differ(a, b, expected):
    assert differ(claim(*a), claim(*b)) is expected


def test_quantities_ignore_thousands_separators():
    assert quantities("3,000 or 3000") == {"3000"}


def test_a_negated_span_is_stated_with_its_negation():
    text = "Other than that they were “absolutely nowhere near 3,000”."
    at = text.index("3,000")
    assert stated(text, at, at + 5, 0) == "nowhere near 3,000"
    plain = "A unit of some 3,000 North Koreans."
    assert stated(plain, plain.index("3,000"), plain.index("3,000") + 5, 0) == "3,000"
