"""Golden files: questions and conversations, unknown fields ignored, bad lines named by number."""

from __future__ import annotations

import json

import pytest

from assistant.eval.golden import Conversation, GoldenFileError, load_golden

from conftest import GOLDEN, SHARED_EVAL


def write(tmp_path, lines) -> str:
    path = tmp_path / "g.jsonl"
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    return path


def test_questions_and_conversations_load_with_unknown_fields_ignored(tmp_path):
    path = write(tmp_path, [
        {"id": "a", "question": "Who?", "answers": ["Kim"], "evidence": "Kim did", "document": "d.txt", "title": "x"},
        "",
        {"id": "b", "question": "What?", "answers": [], "is_impossible": True},
        {"id": "c", "turns": [{"question": "How many?", "answers": ["18"]}, {"question": "Where?", "answers": []}]},
    ])
    golden = load_golden(path)
    assert [q.id for q in golden.questions] == ["a", "b"]
    assert golden.questions[0].answers == ("Kim",) and golden.questions[0].document == "d.txt"
    assert golden.questions[0].answerable and not golden.questions[1].answerable
    (conv,) = golden.conversations
    assert isinstance(conv, Conversation) and [t.question for t in conv.turns] == ["How many?", "Where?"]
    assert len(golden) == 4
    assert len(golden.limited(1)) == 1 and len(golden.limited(3)) == 4


@pytest.mark.parametrize(
    "bad, message",
    [
        ("{not json", "not valid JSON"),
        ('["a list"]', "expected a JSON object"),
        ('{"id": "x", "answers": []}', "`question`"),
        ('{"id": "x", "question": "Q?", "answers": "18"}', "`answers` must be a list"),
        ('{"id": "x", "turns": []}', "`turns`"),
        ('{"id": "x", "turns": [{"question": "Q?"}]}', "turn 1"),
        ('{"id": "s01", "question": "Again?", "answers": []}', "duplicate id"),
    ],
)
def test_a_malformed_line_is_reported_with_its_line_number(tmp_path, bad, message):
    path = write(tmp_path, ['{"id": "s01", "question": "Q?", "answers": ["a"]}', bad])
    with pytest.raises(GoldenFileError) as err:
        load_golden(path)
    assert f"{path}:2" in str(err.value) and message in str(err.value)


def test_missing_file_says_what_to_pass(tmp_path):
    with pytest.raises(GoldenFileError, match="not found"):
        load_golden(tmp_path / "nope.jsonl")


def test_the_seed_golden_file_loads():
    golden = load_golden(GOLDEN / "seed-golden.jsonl")
    assert len(golden.questions) == 6
    assert sum(q.answerable for q in golden.questions) == 5


def test_the_squad_dev_golden_file_loads_whole():
    path = SHARED_EVAL / "squad2-dev-golden.jsonl"
    if not path.exists():
        pytest.skip(f"SQuAD-derived eval data not present at {path} (kept outside the repository)")
    golden = load_golden(path)
    assert len(golden.questions) == 4151
    assert sum(q.answerable for q in golden.questions) == 2092


def test_a_sample_is_fixed_by_its_seed_and_keeps_file_order(tmp_path):
    path = write(tmp_path, [{"id": f"q{i}", "question": f"Q{i}?", "answers": []} for i in range(50)])
    golden = load_golden(path)
    a, b, c = golden.sampled(10, seed=1), golden.sampled(10, seed=1), golden.sampled(10, seed=2)
    ids = [q.id for q in a.questions]
    assert len(ids) == 10 and ids == [q.id for q in b.questions] and ids != [q.id for q in c.questions]
    assert ids == sorted(ids, key=lambda x: int(x[1:]))
    assert golden.sampled(None) is golden and golden.sampled(99) is golden
