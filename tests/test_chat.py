"""Conversations: follow-up rewriting, sessions saved and reloaded, and the golden conversations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant import Assistant, Settings
from assistant.chat import ChatSession, depends_on_context, key_terms, rewrite
from assistant.eval.golden import load_golden
from assistant.eval.metrics import contains_answer
from assistant.records import Answer

from conftest import GOLDEN, SHARED_EVAL

SQUAD_DOCS = SHARED_EVAL / "squad2-dev-docs"


def test_follow_ups_depend_on_context_and_standalone_questions_do_not():
    assert depends_on_context("Where were they deployed when they deserted?")
    assert depends_on_context("Who reported it?")
    assert depends_on_context("and in Bryansk?")
    assert depends_on_context("What about that number?")
    assert not depends_on_context("How many North Korean soldiers deserted the Russian frontline?")


def test_rewrite_carries_nouns_and_names_of_the_previous_turn_below_the_own_terms():
    history = [Answer("How many North Korean soldiers deserted?", "18", False)]
    query = rewrite("Where were they deployed?", history)
    own, carried = query.split("?", 1)
    assert own == "Where were they deployed"
    assert "soldiers" in carried and "korean" in carried
    # The previous answer's number and the earlier verb are not carried: they pull back the old quote.
    assert "18" not in carried.split() and "deserted" not in carried
    # Own words appear twice (the question and its repetition), carried words once.
    assert query.lower().count("deployed") == 2 and query.lower().count("soldiers") == 1


def test_a_standalone_question_is_not_polluted_by_earlier_turns():
    history = [Answer("What did Kim Jong Un call Putin?", "closest comrade", False)]
    question = "How many North Korean soldiers deserted the Russian frontline?"
    assert rewrite(question, history) == question


def test_key_terms_are_nouns_and_names():
    assert key_terms("What did Kim Jong Un send Vladimir Putin?") == ["kim", "jong", "un", "vladimir", "putin"]


def test_the_three_turn_conversation_quotes_the_right_sentences(seed_bot):
    chat = seed_bot.chat()
    first = chat.ask("How many soldiers deserted?")
    second = chat.ask("Where were they deployed?")
    third = chat.ask("Who reported it?")
    assert "18" in first.citations[0].quote
    assert second.citations[0].quote.startswith("The troops were deployed in Russia’s Kursk and Bryansk oblasts")
    assert "Suspilne" in third.citations[0].quote
    assert second.query != second.question and second.to_dict()["query"] == second.query


def test_a_standalone_question_in_a_chat_is_answered_as_if_asked_alone(seed_bot):
    chat = seed_bot.chat()
    chat.ask("How many soldiers deserted?")
    # The seed invites this question but does not answer it: asked alone it abstains, and a chat
    # must not draw it to the document the conversation is about into a wrong answer.
    question = "How much is Russia paying the North Korean soldiers?"
    alone, in_chat = seed_bot.ask(question), chat.ask(question)
    assert alone.abstained and in_chat.abstained and in_chat.query == question
    assert in_chat.confidence == alone.confidence


def test_a_leaning_follow_up_is_drawn_to_the_conversations_document(seed_bot, seed_index_dir):
    def follow_up(bot):
        chat = bot.chat()
        chat.ask("How many soldiers deserted?")
        return chat.ask("Who reported it?")

    drawn = follow_up(seed_bot)
    plain = follow_up(Assistant(Settings(docs_dir=seed_bot.settings.docs_dir, index_dir=seed_index_dir, reader_anchor_prior=0)))
    assert drawn.evidence["conversation"] == seed_bot.settings.reader_anchor_prior > 0
    assert "conversation" not in plain.evidence and plain.confidence < drawn.confidence
    assert drawn.citations[0].source == plain.citations[0].source and "Suspilne" in drawn.answer


def test_sessions_are_saved_and_reload_with_citations(seed_bot):
    chat = seed_bot.chat()
    chat.ask("How many soldiers deserted?")
    chat.ask("Where were they deployed when they deserted?")
    path = Path(seed_bot.settings.index_dir) / "sessions" / f"{chat.session_id}.json"
    assert json.loads(path.read_text(encoding="utf-8"))["id"] == chat.session_id
    again = ChatSession(seed_bot, chat.session_id)
    assert [a.to_dict() for a in again.history] == [a.to_dict() for a in chat.history]
    text = seed_bot.document_text(again.history[1].citations[0].source)
    c = again.history[1].citations[0]
    assert text[c.start : c.end] == c.quote
    # A reloaded session goes on in context: the same conversation's document, the same answer.
    resumed, live = again.ask("Who reported it?"), chat.ask("Who reported it?")
    assert "Suspilne" in resumed.citations[0].quote
    assert (resumed.answer, resumed.confidence, resumed.evidence) == (live.answer, live.confidence, live.evidence)


def test_a_session_reloaded_after_its_document_changed_marks_those_citations(tmp_path, docs):
    from assistant import Assistant, Settings

    bot = Assistant(Settings(docs_dir=docs, index_dir=tmp_path / "index"))
    chat = bot.chat()
    first = chat.ask("How many soldiers deserted?")
    assert first.citations and not first.citations[0].changed
    seed = docs / first.citations[0].source
    seed.write_text("A new opening paragraph moves every offset.\n\n" + seed.read_text(encoding="utf-8"), encoding="utf-8")
    bot.index_folder()
    again = ChatSession(bot, chat.session_id)
    assert again.history[0].citations[0].changed
    assert "changed" in again.history[0].citations[0].to_dict()
    from assistant.serve.ui_render import render_answer

    assert "the source has changed since" in render_answer(again.history[0], 1)


def test_bad_session_ids_are_refused(seed_bot):
    with pytest.raises(ValueError, match="session id"):
        ChatSession(seed_bot, "../escape")


def run_conversations(bot: Assistant, path: Path) -> tuple[list[bool], list[bool]]:
    """turn_quote_hit@1 per turn: does a gold answer occur in the first citation's quote?"""
    first, follow = [], []
    for conversation in load_golden(path).conversations:
        chat = bot.chat()
        for n, turn in enumerate(conversation.turns):
            answer = chat.ask(turn.question)
            hit = bool(answer.citations) and contains_answer(answer.citations[0].quote, turn.answers)
            (first if n == 0 else follow).append(hit)
    return first, follow


def report(name: str, first: list[bool], follow: list[bool]) -> tuple[float, float]:
    f, u = sum(first) / len(first), sum(follow) / len(follow)
    print(f"\n{name}: turn_quote_hit@1 first turns {f:.3f} ({len(first)}), follow-ups {u:.3f} ({len(follow)})")
    return f, u


def test_golden_conversations_over_the_seed(seed_bot):
    first, follow = run_conversations(seed_bot, GOLDEN / "conversations-seed.jsonl")
    f, u = report("seed conversations", first, follow)
    assert u >= 0.8 and u >= f - 0.05


@pytest.mark.slow
def test_golden_conversations_over_squad_docs(tmp_path_factory):
    if not SQUAD_DOCS.is_dir():
        pytest.skip(f"{SQUAD_DOCS} is absent: the SQuAD 2.0 dev documents live outside the repository (../shared/eval)")
    bot = Assistant(Settings(docs_dir=SQUAD_DOCS, index_dir=tmp_path_factory.mktemp("squad-index")))
    first, follow = run_conversations(bot, GOLDEN / "conversations-squad-docs.jsonl")
    seed_first, seed_follow = run_conversations(
        Assistant(Settings(docs_dir=GOLDEN.parent.parent / "seeds", index_dir=tmp_path_factory.mktemp("seed-conv"))),
        GOLDEN / "conversations-seed.jsonl",
    )
    report("SQuAD-doc conversations", first, follow)
    f, u = report("all golden conversations", first + seed_first, follow + seed_follow)
    assert u >= 0.8 and u >= f - 0.05


def _with_model(seed_bot, replies):
    """The seed assistant with a scripted chat model as its LLM (the real models are exercised in
    test_llm.py; here the point is what the session does with what a model says)."""
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    return seed_bot.with_llm("local", GenericFakeChatModel(messages=iter([AIMessage(content=r) for r in replies])))


def test_with_an_llm_a_follow_up_is_rewritten_by_the_model(seed_bot):
    chat = _with_model(seed_bot, ["Where were the North Korean soldiers who deserted deployed?"]).chat()
    chat.history.append(seed_bot.ask("How many soldiers deserted?"))
    query = chat.query_for("Where were they deployed?")
    assert query.startswith("Where were the North Korean soldiers who deserted deployed?")
    assert query.endswith(rewrite("Where were they deployed?", chat.history))  # the rule-based words stay too
    assert chat.query_for("What did Kim Jong Un call Putin?") == "What did Kim Jong Un call Putin?"  # no model call


def test_a_rambling_model_rewrite_is_ignored(seed_bot):
    chat = _with_model(seed_bot, ["x" * 400]).chat()
    chat.history.append(seed_bot.ask("How many soldiers deserted?"))
    assert chat.query_for("Where were they deployed?") == rewrite("Where were they deployed?", chat.history)


def test_a_failing_llm_rewrite_is_logged_and_the_rule_based_one_stands(caplog):
    import logging

    from langchain_core.runnables import RunnableLambda

    from assistant.chat import llm_rewrite

    def refused(_):
        raise ConnectionError("connection refused")

    history = [Answer("How many soldiers deserted?", "18", False)]
    with caplog.at_level(logging.WARNING, logger="assistant.chat"):
        assert llm_rewrite(RunnableLambda(refused), "Where were they deployed?", history) is None
    assert "ConnectionError: connection refused" in caplog.text


def test_a_follow_up_leans_on_its_history_with_or_without_words_to_carry(seed_bot):
    # A follow-up whose query the caller did not rewrite (the API's `history=`, or a chat whose
    # previous turn named nothing to carry) still leans on the conversation's document.
    first = seed_bot.ask("How many soldiers deserted?")
    follow = seed_bot.ask("Who reported it?", history=[first])
    assert follow.query == "Who reported it?"
    assert follow.evidence["conversation"] == seed_bot.settings.reader_anchor_prior
    assert "Suspilne" in follow.answer + follow.citations[0].quote
    standalone = seed_bot.ask("How much is Russia paying the North Korean soldiers?", history=[first])
    assert standalone.abstained and "conversation" not in standalone.evidence
