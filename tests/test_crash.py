"""Crash safety: kill -9 during `assistant index`, then the index opens, answers and completes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from assistant import Assistant, Settings
from assistant.index.sentences import split_sentences

SQUAD = Path(__file__).resolve().parent.parent.parent / "shared" / "eval" / "squad2-dev-docs"
N_DOCS = 200
# Each document is asked for by its own first sentence, to see that it answers: a statement is no
# question for the reader, so sentence scoring answers here (what is under test is the index).
ASKED_BY_SENTENCE = "off"


def make_collection(folder: Path, n: int = N_DOCS) -> dict[str, str]:
    """`n` documents of four real sentences each (from the SQuAD articles); returns name -> first sentence."""
    sentences = []
    for path in sorted(SQUAD.glob("*.txt")):
        sentences += [s.text for s in split_sentences(path.read_text(encoding="utf-8")) if 60 < len(s.text) < 300]
    seen: set[str] = set()
    sentences = [s for s in sentences if not (s in seen or seen.add(s))]
    assert len(sentences) >= 4 * n, "the SQuAD documents in shared/eval are needed for this test"
    folder.mkdir()
    firsts = {}
    for i in range(n):
        part = sentences[4 * i : 4 * i + 4]
        name = f"doc{i:03d}.txt"
        (folder / name).write_text(" ".join(part), encoding="utf-8")
        firsts[name] = part[0]
    return firsts


def assistant_command() -> str:
    return str(Path(sys.executable).parent / "assistant")


@pytest.mark.slow
def test_kill_9_mid_index_then_open_answer_and_complete(tmp_path):
    docs, index_dir = tmp_path / "docs", tmp_path / "index"
    firsts = make_collection(docs)
    cmd = [assistant_command(), "index", "--docs", str(docs), "--index", str(index_dir)]
    # Groups far smaller than the default, so the run commits many times before the kill.
    env = {**os.environ, "ASSISTANT_INDEX_GROUP": "32"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
    progress = {"done": 0, "total": 0}
    reached = threading.Event()

    def watch() -> None:
        buffer = b""
        while chunk := proc.stderr.read1(4096):
            buffer = (buffer + chunk)[-4096:]
            found = re.findall(rb"indexing:[^|]*\|[^|]*\| *(\d+)/(\d+) \[", buffer)  # not the model-loading bar
            if found:
                progress["done"], progress["total"] = map(int, found[-1])
                if progress["done"] >= 0.3 * progress["total"] > 0:
                    reached.set()

    threading.Thread(target=watch, daemon=True).start()
    assert reached.wait(900), f"indexing never got a third of the way: {progress}"
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    assert progress["done"] < progress["total"], "indexing finished before the kill; the test proves nothing"

    bot = Assistant(Settings(docs_dir=docs, index_dir=index_dir, reader=ASKED_BY_SENTENCE), auto_index=False)
    before = set(bot.documents())
    assert 0 < len(before) < N_DOCS
    for name in sorted(before):
        answer = bot.ask(firsts[name])
        assert not answer.abstained and answer.citations[0].source == name, name
        assert bot.document_text(name)[answer.citations[0].start : answer.citations[0].end] == answer.citations[0].quote
    committed = {c.source for c in bot.index.all_chunks()}
    assert committed == before  # chunks of the document cut mid-write stay hidden
    del bot

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr
    assert f"{len(before)} unchanged" in done.stdout and f"{N_DOCS - len(before)} added" in done.stdout
    from assistant.index.index import forget_clients

    # The other process wrote the store: drop this process's clients so it is read afresh.
    forget_clients()
    bot = Assistant(Settings(docs_dir=docs, index_dir=index_dir, reader=ASKED_BY_SENTENCE), auto_index=False)
    assert set(bot.documents()) == set(firsts)
    for name in sorted(set(firsts) - before)[:20]:
        assert bot.ask(firsts[name]).citations[0].source == name
