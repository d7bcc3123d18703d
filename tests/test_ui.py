"""Web chat handlers, called as plain functions: streaming, escaping, upload, removal, sessions."""

from __future__ import annotations

import re

import pytest

from assistant import Assistant, Settings
from assistant.records import Answer, Citation
from assistant.serve.ui import ChatHandlers
from assistant.serve.ui_render import documents_table, escape, source_panel


@pytest.fixture
def handlers(tmp_path, docs):
    return ChatHandlers(Assistant(Settings(docs_dir=docs, index_dir=tmp_path / "index")))


def last(generator):
    steps = list(generator)
    return steps, steps[-1]


def test_answers_stream_and_the_source_panel_highlights_the_quote(handlers):
    steps, (messages, panel, session_id, box) = last(handlers.respond("How many soldiers deserted?", [], None, 5))
    assert len(steps) > 3  # the answer grows over several updates
    assert [m["role"] for m in messages] == ["user", "assistant"] and box == ""
    assert 'data-cite="cite-1-1"' in messages[-1]["content"]
    assert re.search(r'id="cite-1-1".*<mark>Some 18 North Korean soldiers', panel, re.S)
    # The next question in the same tab is a follow-up in the same session.
    _, (messages, panel, same_id, _) = last(handlers.respond("Where were they deployed?", messages, session_id, 5))
    assert same_id == session_id and len(messages) == 4
    assert "<mark>The troops were deployed" in panel and 'id="cite-2-1"' in panel


def test_each_tab_has_its_own_conversation(handlers):
    _, (_, _, first_tab, _) = last(handlers.respond("How many soldiers deserted?", [], None))
    _, (_, panel, second_tab, _) = last(handlers.respond("Who reported it?", [], None))
    assert first_tab != second_tab
    assert len(handlers.session(second_tab).history) == 1 and handlers.session(second_tab).history[0].query == "Who reported it?"


def test_questions_and_document_text_are_escaped():
    answer = Answer("<script>alert(1)</script> ![x](http://evil/x.png)", "<b>x</b>", False,
                    [Citation(1, "<img src=x>.txt", 0, 8, "<script>")])
    panel = source_panel([answer], lambda source: "<script>alert(1)</script>")
    assert "<script>" not in panel and "&lt;script&gt;" in panel and "<img" not in panel
    shown = escape("![x](http://evil/x.png) <script>")
    assert "<script>" not in shown and "![" not in shown and "](" not in shown
    assert "<td>&lt;b&gt;.txt</td>" in documents_table({"<b>.txt": 1})


def test_upload_indexes_at_once_and_rejects_with_the_reason(handlers, tmp_path):
    good = tmp_path / "zebras.md"
    good.write_text("The zebra crossing in Quillfield was painted violet in 1987 by the council.", encoding="utf-8")
    bad = tmp_path / "table.csv"
    bad.write_text("a,b\n1,2\n", encoding="utf-8")
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    status, table, names = handlers.upload([str(good), str(bad), str(empty)])
    status = status.replace("\\", "")  # markdown escapes
    assert "zebras.md: indexed" in status
    assert re.search(r"table\.csv: rejected — unsupported file type", status.replace("\\", ""))
    assert "empty.txt: rejected — empty file" in status.replace("\\", "")
    assert "uploads/zebras.md" in names and "<td>uploads/zebras.md</td>" in table
    _, (messages, panel, _, _) = last(handlers.respond("What colour was the crossing in Quillfield painted?", [], None))
    assert "zebras.md" in panel and "<mark>The zebra crossing in Quillfield" in panel


def test_uploads_are_kept_with_the_documents_and_survive_a_mirroring_index_run(handlers, tmp_path, docs):
    first = tmp_path / "a" / "quince.txt"
    first.parent.mkdir()
    first.write_text("The Brindlemoor orchard grows 73 varieties of quince.", encoding="utf-8")
    handlers.upload([str(first)])
    assert (docs / "uploads" / "quince.txt").read_text(encoding="utf-8") == first.read_text(encoding="utf-8")
    other = tmp_path / "b" / "quince.txt"  # the same name, other content: kept apart, nothing overwritten
    other.parent.mkdir()
    other.write_text("The Hollowmere orchard grows 12 varieties of medlar.", encoding="utf-8")
    status, _, names = handlers.upload([str(other)])
    assert "uploads/quince-2.txt" in status.replace("\\", "") and {"uploads/quince.txt", "uploads/quince-2.txt"} <= set(names)
    assert "73 varieties" in (docs / "uploads" / "quince.txt").read_text(encoding="utf-8")
    handlers.assistant.index_folder()  # what `assistant index` does: mirror the docs folder
    assert {"uploads/quince.txt", "uploads/quince-2.txt"} <= set(handlers.document_names())
    status, _, names = handlers.remove("uploads/quince-2.txt")
    assert "uploads/quince-2.txt" not in names and not (docs / "uploads" / "quince-2.txt").exists()
    assert "documents folder" in status


def test_remove_takes_a_document_out(handlers):
    source = handlers.document_names()[0]
    status, table, names = handlers.remove(source)
    assert source not in names and "Removed" in status
    _, (messages, _, _, _) = last(handlers.respond("How many soldiers deserted?", [], None))
    assert "Not found in the documents" in messages[-1]["content"]


def test_a_saved_session_resumes_with_its_citations(handlers):
    _, (_, _, session_id, _) = last(handlers.respond("How many soldiers deserted?", [], None))
    messages, panel, resumed, status = handlers.resume(session_id)
    assert resumed == session_id and "1 turns" in status
    assert 'data-cite="cite-1-1"' in messages[1]["content"] and "<mark>Some 18 North Korean soldiers" in panel
    assert "Cannot open" in handlers.resume("../../etc")[3]


def test_the_app_builds(handlers):
    from assistant.serve.ui import build_app

    assert build_app(handlers.assistant) is not None


def test_llm_notes_and_unsupported_claims_are_shown_escaped():
    from assistant.records import Answer, Citation
    from assistant.serve.ui_render import escape, render_answer

    answer = Answer(
        "q?", "Eighteen <b>deserted</b>", False,
        [Citation(1, "report.pdf", 10, 20, "Some 18 ok", 0.5, page=4)],
        unsupported=["They fled to <script>x</script> Mongolia"], note="the LLM timed out",
    )
    html_text = render_answer(answer, 1)
    assert escape("report.pdf p. 4") in html_text
    assert "Unsupported" in html_text and "&lt;script&gt;" in html_text and "<script>" not in html_text
    assert "the LLM timed out" in html_text


def test_a_tab_may_pick_the_answerer_when_an_llm_is_configured(seed_bot):
    import copy

    from assistant.serve.ui import ChatHandlers

    assert ChatHandlers(seed_bot).answerers() == ["extractive"]
    with_llm = copy.copy(seed_bot)
    with_llm.settings = seed_bot.settings.model_copy(update={"llm": "openai:none", "llm_base_url": "http://127.0.0.1:9/v1", "llm_timeout": 2})
    handlers = ChatHandlers(with_llm)
    assert handlers.answerers() == ["extractive", "openai:none"]
    assert handlers.assistant_for("extractive").settings.llm == "extractive"
    assert handlers.assistant_for("extractive").index is with_llm.index  # one store for all answerers
    *_, (messages, _, _, _) = handlers.respond("How many soldiers deserted?", [], None, 5, "extractive")
    assert "18" in messages[-1]["content"]


def _streaming_handlers(seed_bot, reply: str):
    """Handlers over the seed whose LLM is a scripted chat model streaming `reply` word by word
    (the real model's streaming is in tests/test_llm.py)."""
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    return ChatHandlers(seed_bot.with_llm("local", GenericFakeChatModel(messages=iter([AIMessage(content=reply)]))))


def _snapshots(updates) -> list[tuple]:
    """Each update as the page received it (the handler edits one message list in place)."""
    import copy

    return [copy.deepcopy(update) for update in updates]


def _partials(steps) -> list[str]:
    from assistant.serve.ui import WRITING

    return [m[-1]["content"] for m, *_ in steps if m and m[-1]["content"].endswith(WRITING)]


def test_an_llm_answer_is_shown_as_it_is_written_then_checked(seed_bot):
    from assistant.serve.ui import WRITING

    question = "How many soldiers deserted?"
    n = next(i for i, p in enumerate(seed_bot.retrieve(question), 1) if "18 North Korean soldiers" in p.chunk.text)
    reply = f'ANSWER: Some 18 soldiers deserted after the fighting [{n}].\nQUOTE [{n}]: "Some 18 North Korean soldiers are believed to have deserted"'
    steps = _snapshots(_streaming_handlers(seed_bot, reply).respond(question, [], None))
    partials = _partials(steps)
    assert len(partials) >= 3  # one update per piece the model wrote, before any checking
    assert all(b.startswith(a.removesuffix(WRITING)) for a, b in zip(partials, partials[1:]))  # text only grows
    assert "Some 18 soldiers" in partials[-1] and "data-cite" not in partials[-1]
    messages, panel, _, _ = steps[-1]
    final = messages[-1]["content"]
    assert final.startswith("Some 18 soldiers deserted after the fighting") and 'data-cite="cite-1-1"' in final
    assert "Sources:" in final and "<mark>Some 18 North Korean soldiers are believed to have deserted" in panel


def test_an_llm_answer_whose_quotes_fail_is_replaced_by_the_checked_answer(seed_bot):
    handlers = _streaming_handlers(seed_bot, 'ANSWER: Four hundred soldiers deserted [1].\nQUOTE [1]: "four hundred men left the front"')
    steps = _snapshots(handlers.respond("How many soldiers deserted?", [], None))
    assert any("Four hundred" in p for p in _partials(steps))
    final = steps[-1][0][-1]["content"]
    assert "Four hundred" not in final and "18" in final and "no quote found verbatim" in final.replace("\\", "")
