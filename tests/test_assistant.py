import json

import pytest

from assistant import Assistant, Settings
from assistant.answer.cite import QuoteMismatch, verify
from assistant.records import Answer, Citation

from conftest import GOLDEN, SEEDS

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


def test_index_paths_is_the_one_write_path(tmp_path, docs):
    """Folders and files in one call, unreadable files reported, and the next search sees the result
    without anyone invalidating the retriever by hand."""
    from assistant.errors import UsageError

    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "zeppelins.md").write_text("The Graf Quokka zeppelin carried 40 jars of marmalade to Oulu.\n", encoding="utf-8")
    (extra / "empty.txt").write_text("", encoding="utf-8")
    bot = Assistant(docs_dir=docs, index_dir=tmp_path / "index", auto_index=False)
    report = bot.index_paths([docs, extra / "zeppelins.md", extra / "empty.txt"])
    assert sorted(report.added) == sorted([SEED, "zeppelins.md"])
    assert [s.reason for s in bot.skipped] == ["empty file"]
    assert bot.retrieve("marmalade jars Oulu", k=1)[0].chunk.source == "zeppelins.md"

    # Nothing readable: with `require`, an error before anything is written or pruned.
    with pytest.raises(UsageError, match="nothing could be indexed"):
        bot.index_paths([extra / "empty.txt"], prune=True, require=True)
    assert set(bot.documents()) == {SEED, "zeppelins.md"}

    assert bot.index_paths([docs], prune=True).removed == ["zeppelins.md"]  # mirrored
    assert all(p.chunk.source == SEED for p in bot.retrieve("marmalade jars Oulu"))


def test_an_llm_goes_in_through_the_constructor_or_with_llm(seed_bot):
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    from assistant.errors import UsageError

    model = GenericFakeChatModel(messages=iter([AIMessage(content="ANSWER: Not found in the documents.")]))
    other = seed_bot.with_llm("local", model, llm_timeout=5)
    assert other.llm_model() is model and other.settings.llm_timeout == 5 and seed_bot.settings.llm == "extractive"
    assert other.index is seed_bot.index and other.reader is seed_bot.reader  # shared, not reloaded
    assert other.ask("How many soldiers deserted?").answerer == "local"
    with pytest.raises(UsageError, match="llm_"):
        seed_bot.with_llm("local", k=3)
    with pytest.raises(UsageError, match="other than extractive"):
        seed_bot.with_llm("extractive", model)
    with pytest.raises(UsageError, match="other than extractive"):
        Assistant(seed_bot.settings, auto_index=False, llm_model=model)


def test_a_conversation_also_reads_the_document_it_is_about(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "farm.txt").write_text("Tom keeps goats on his farm near the river. The goats sleep in the red barn.\n")
    (docs / "zoo.txt").write_text("The city zoo keeps goats in a petting enclosure. Zoo goats sleep in a heated shed by the zoo gate.\n")
    question = "Where do the zoo goats sleep?"

    def read(anchor, **settings):
        bot = Assistant(Settings(docs_dir=docs, index_dir=tmp_path / "index", reader_passages=1, reader_each=0, **settings))
        _, candidates = bot._passages(question, 5, bot.embeddings.encode([question])[0], anchor)
        return {p.chunk.source for p in candidates}

    assert read(None) == {"zoo.txt"}
    assert read("farm.txt") == {"zoo.txt", "farm.txt"}  # the fused best still read, the conversation's document too
    assert read("farm.txt", reader_anchor=0) == {"zoo.txt"}

    # Which document: the one the conversation's questions find together, whatever it answered.
    bot = Assistant(Settings(docs_dir=docs, index_dir=tmp_path / "index"))
    zoo = (docs / "zoo.txt").read_text()
    answered_from_the_zoo = Answer("Where does Tom keep his goats?", "petting enclosure", False,
                                   [Citation(1, "zoo.txt", 0, 47, zoo[:47], 0.5)])
    assert bot.conversation_document("Where do they sleep?", [answered_from_the_zoo]) == "farm.txt"
    assert bot.conversation_document("Where do they sleep?", []) is None


def test_a_follow_up_that_leans_on_the_conversation_has_its_own_threshold(seed_index_dir):
    # Every standalone answer abstains at 0.99; a leaning follow-up is held to 0.
    bot = Assistant(Settings(docs_dir=SEEDS, index_dir=seed_index_dir, min_confidence=0.99, followup_min_confidence=0.0))
    chat = bot.chat()
    assert chat.ask("How many soldiers deserted?").abstained
    follow = chat.ask("Where were they deployed?")
    assert not follow.abstained and "Kursk" in follow.citations[0].quote
    assert chat.ask("What is the capital of Mongolia?").abstained  # stands on its own: the usual threshold
