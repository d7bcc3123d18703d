"""Two real processes on one collection: one answers in a loop while the other changes a document
and re-indexes it. Every citation the first returns once the change is committed matches the file
on disk (the embedded store, and a real `chroma run` server)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from assistant_server import serving

from chroma_server import chroma_server

HERE = Path(__file__).resolve().parent

ANSWER_LOOP = r"""
import json, sys, time
from pathlib import Path
from assistant import Assistant
bot = Assistant()
questions = sys.argv[1:-1]
stop = Path(sys.argv[-1])
print(json.dumps({"ready": True}), flush=True)
i = 0
while not stop.exists():
    q = questions[i % len(questions)]
    i += 1
    started = time.time()
    try:
        answer = bot.ask(q)
        row = {"started": started, "question": q, "answer": answer.answer,
               "citations": [c.to_dict() for c in answer.citations]}
    except Exception as exc:
        row = {"started": started, "question": q, "error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(row), flush=True)
"""

OLD = (
    "The night ferry to Mariehamn leaves at 21:45 from pier 3. Tickets cost 19 euros and are sold on board. "
    "The crossing takes six hours in calm weather."
)
NEW = (
    "Timetables were revised for the summer season after complaints about late arrivals. "
    "The night ferry to Mariehamn now leaves at 22:10 from pier 5. Tickets cost 24 euros and are sold online. "
    "The crossing takes five hours in calm weather."
)
QUESTIONS = ["When does the night ferry to Mariehamn leave?", "How much do the ferry tickets cost?",
             "How long does the crossing take?"]


def run_the_race(docs: Path, env: dict) -> tuple[list[dict], float]:
    """Process A answers in a loop; this process rewrites the ferry file and has process B index
    it; returns A's rows and the time B's commit was done."""
    stop = docs.parent / "stop"
    a = subprocess.Popen([sys.executable, "-c", ANSWER_LOOP, *QUESTIONS, str(stop)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert json.loads(a.stdout.readline()).get("ready"), a.stderr.read()
        rows = [json.loads(a.stdout.readline()) for _ in range(6)]  # answering the old version
        (docs / "ferry.txt").write_text(NEW, encoding="utf-8")
        b = subprocess.run([sys.executable, "-m", "assistant.serve.cli", "index"], env=env, capture_output=True, text=True, timeout=300)
        assert b.returncode == 0, b.stderr
        committed = time.time()
        while True:
            rows.append(json.loads(a.stdout.readline()))
            if rows[-1]["started"] > committed + 3 and len([r for r in rows if r["started"] > committed]) >= 9:
                break
    finally:
        stop.touch()
        a.wait(60)
    return rows, committed


def check(rows: list[dict], committed: float, docs: Path) -> None:
    assert not [r for r in rows if "error" in r], [r["error"] for r in rows if "error" in r][:3]
    after = [r for r in rows if r["started"] > committed]
    assert len(after) >= 9
    texts = {p.name: p.read_text(encoding="utf-8") for p in docs.iterdir()}
    stale = [
        (r["question"], c["quote"]) for r in after for c in r["citations"]
        if texts[c["source"]][c["start"] : c["end"]] != c["quote"]
    ]
    assert stale == [], f"{len(stale)} citations after the commit do not match the file: {stale[:3]}"
    ferry = [r for r in after if r["question"] == QUESTIONS[0] and r["citations"]]
    assert ferry and all("22:10" in r["citations"][0]["quote"] for r in ferry[-2:])


@pytest.fixture
def docs(tmp_path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "ferry.txt").write_text(OLD, encoding="utf-8")
    (folder / "notes.txt").write_text(
        "The harbour office opens at eight. Parking near the terminal is limited to two hours.", encoding="utf-8"
    )
    return folder


def environment(docs: Path, **extra: str) -> dict:
    return {**os.environ, "ASSISTANT_DOCS_DIR": str(docs), "ASSISTANT_INDEX_DIR": str(docs.parent / "index"), **extra}


@pytest.mark.slow
def test_a_running_process_quotes_the_new_version_after_another_reindexes(docs):
    env = environment(docs)
    subprocess.run([sys.executable, "-m", "assistant.serve.cli", "index"], env=env, check=True, capture_output=True, timeout=300)
    rows, committed = run_the_race(docs, env)
    check(rows, committed, docs)


@pytest.mark.slow
@pytest.mark.server
def test_the_same_with_a_chroma_server(docs, tmp_path):
    with chroma_server(tmp_path / "chroma") as port:
        env = environment(docs, ASSISTANT_CHROMA_HOST="127.0.0.1", ASSISTANT_CHROMA_PORT=str(port))
        subprocess.run([sys.executable, "-m", "assistant.serve.cli", "index"], env=env, check=True, capture_output=True, timeout=300)
        rows, committed = run_the_race(docs, env)
        check(rows, committed, docs)


@pytest.mark.slow
def test_the_web_chat_answers_about_documents_another_process_indexed(docs, tmp_path):
    """`assistant serve` keeps running while `assistant index` adds one document and changes another."""
    from gradio_client import Client

    env = environment(docs)
    with serving(docs, docs.parent / "index", tmp_path, range(8710, 8730)) as url:
        client = Client(url, verbose=False)

        def ask(question: str) -> str:
            messages, panel, *_ = client.predict(question, api_name="/respond")
            return json.dumps(messages[-1]["content"]) + str(panel)  # gradio may give the content as parts

        assert "21:45" in ask(QUESTIONS[0])
        (docs / "ferry.txt").write_text(NEW, encoding="utf-8")
        (docs / "museum.txt").write_text("The maritime museum on Storgatan opens at ten and closes at four. "
                                         "Entry is free on Sundays.", encoding="utf-8")
        b = subprocess.run([sys.executable, "-m", "assistant.serve.cli", "index"], env=env, capture_output=True, text=True, timeout=300)
        assert b.returncode == 0, b.stderr
        time.sleep(5)  # what the issue allows for the running process to learn of the commit
        assert "22:10" in ask(QUESTIONS[0])
        assert "Storgatan" in ask("When does the maritime museum open?")
