import json

import pytest

from assistant import Assistant
from assistant.cite import QuoteMismatch, verify
from assistant.records import Answer, Citation

from conftest import GOLDEN

SEED = "000_aa3b016887bfe7d3.txt"


def golden(name):
    return [json.loads(line) for line in (GOLDEN / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def test_desertion_question_quotes_the_sentence_at_exact_offsets(seed_bot):
    ans = seed_bot.ask("How many soldiers deserted?")
    assert not ans.abstained and "18" in ans.answer
    top = ans.citations[0]
    assert top.source == SEED
    assert "Some 18 North Korean soldiers are believed to have deserted" in top.quote
    text = (seed_bot.settings.docs_dir / SEED).read_text(encoding="utf-8")
    assert text[top.start : top.end] == top.quote


def test_unrelated_question_abstains(seed_bot):
    ans = seed_bot.ask("What is the capital of Mongolia?")
    assert ans.abstained and ans.citations == [] and "not found" in ans.answer.lower()


@pytest.mark.parametrize("case", golden("seed-golden.jsonl"), ids=lambda c: c["id"])
def test_seed_golden_questions(seed_bot, case):
    ans = seed_bot.ask(case["question"])
    if not case["answers"]:
        assert ans.abstained
        return
    assert not ans.abstained
    quote = ans.citations[0].quote.lower()
    assert any(gold.lower() in quote for gold in case["answers"]), (ans.citations[0].quote, case["answers"])


def test_every_answer_is_verified(seed_bot):
    good = seed_bot.ask("What did Kim Jong Un call Putin?")
    verify(good, seed_bot.document_text)
    c = good.citations[0]
    forged = Answer(good.question, good.answer, False, [Citation(1, c.source, c.start, c.end, c.quote + "!", c.score)])
    with pytest.raises(QuoteMismatch):
        verify(forged, seed_bot.document_text)
    shifted = Answer(good.question, good.answer, False, [Citation(1, c.source, c.start + 1, c.end + 1, c.quote, c.score)])
    with pytest.raises(QuoteMismatch):
        verify(shifted, seed_bot.document_text)


def test_to_dict_is_the_documented_json_shape(seed_bot):
    data = seed_bot.ask("How many soldiers deserted?").to_dict()
    assert {"question", "answer", "abstained", "citations", "latency_ms"} <= set(data)
    assert set(data["citations"][0]) >= {"id", "source", "start", "end", "quote", "score"}
    assert json.loads(json.dumps(data)) == data
    assert Answer.from_dict(data).to_dict() == data


def test_builds_its_index_when_missing(tmp_path, docs):
    bot = Assistant(docs_dir=docs, index_dir=tmp_path / "fresh")
    assert bot.documents() == {SEED: bot.documents()[SEED]} and bot.documents()[SEED] > 0


def test_a_multi_turn_chat_session(seed_bot):
    chat = seed_bot.chat()
    first = chat.ask("How many soldiers deserted?")
    second = chat.ask("Where were they deployed?")
    assert "18" in first.answer
    assert not second.abstained and second.query != second.question
    assert any("Kursk" in c.quote for c in second.citations)
    reloaded = seed_bot.chat(chat.session_id)
    assert [a.to_dict() for a in reloaded.history] == [first.to_dict(), second.to_dict()]


def test_empty_question_is_refused(seed_bot):
    with pytest.raises(ValueError, match="empty"):
        seed_bot.ask("   ")
