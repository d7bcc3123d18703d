import json
import os
import subprocess
import sys

from conftest import ROOT, SEEDS

SEED = "000_aa3b016887bfe7d3.txt"


def run(*args, env_extra=None, cwd=None):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "assistant.serve.cli", *args], capture_output=True, text=True, env=env, cwd=cwd or ROOT, timeout=300)


def test_ask_json_shape_and_offsets(tmp_path):
    out = run("ask", "How many soldiers deserted?", "--json", "--index", str(tmp_path / "i"))
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert set(data) >= {"question", "answer", "abstained", "citations", "latency_ms"}
    assert data["question"] == "How many soldiers deserted?" and data["abstained"] is False and "18" in data["answer"]
    top = data["citations"][0]
    assert top["id"] == 1 and top["source"] == SEED
    assert "Some 18 North Korean soldiers are believed to have deserted" in top["quote"]
    text = (SEEDS / SEED).read_text(encoding="utf-8")
    assert text[top["start"] : top["end"]] == top["quote"]
    assert isinstance(top["score"], float) and isinstance(data["latency_ms"], float)


def test_unanswerable_question_abstains(tmp_path):
    out = run("ask", "What is the capital of Mongolia?", "--json", "--index", str(tmp_path / "i"))
    data = json.loads(out.stdout)
    assert data["abstained"] is True and data["citations"] == []


def test_index_reports_bad_files_and_indexes_the_rest(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.txt").write_text("Otters hold hands while they sleep.", encoding="utf-8")
    (docs / "empty.txt").write_bytes(b"")
    (docs / "binary.txt").write_bytes(bytes(range(256)))
    (docs / "latin1.md").write_bytes("na\xefve caf\xe9".encode("latin-1"))
    out = run("index", str(docs), "--index", str(tmp_path / "i"))
    assert out.returncode == 0, out.stderr
    for name in ("empty.txt", "binary.txt", "latin1.md"):
        assert f"skipped {name}" in out.stderr
    assert "1 added" in out.stdout
    again = run("index", str(docs), "--index", str(tmp_path / "i"))
    assert "1 unchanged" in again.stdout and "0 new chunk" in again.stdout


def test_index_fails_only_when_nothing_could_be_indexed(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "empty.txt").write_bytes(b"")
    out = run("index", str(docs), "--index", str(tmp_path / "i"))
    assert out.returncode != 0 and "nothing could be indexed" in out.stderr


def test_missing_docs_folder_is_one_clear_line(tmp_path):
    out = run("index", "--docs", str(tmp_path / "missing"), "--index", str(tmp_path / "i"))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and "does not exist" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_help_on_each_command():
    for cmd in ("index", "ask", "chat", "serve"):
        out = run(cmd, "--help")
        assert out.returncode == 0 and "usage: assistant " + cmd in out.stdout


def test_terminal_chat_answers_follow_ups(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "assistant.serve.cli", "chat", "--index", str(tmp_path / "i")],
        input="How many soldiers deserted?\nWhere were they deployed?\n\n",
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    assert "18" in out.stdout and "Kursk" in out.stdout


def test_index_reports_link_loops_and_odd_names_on_one_line_and_goes_on(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.txt").write_text("Otters hold hands while they sleep.", encoding="utf-8")
    (docs / "a.txt").symlink_to(docs / "b.txt")
    (docs / "b.txt").symlink_to(docs / "a.txt")
    (docs / "loop").symlink_to(docs)
    (docs / "bad\nname.txt").write_bytes(b"")
    out = run("index", "--docs", str(docs), "--index", str(tmp_path / "i"))
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.startswith("skipped")]
    assert sorted(lines) == sorted([
        "skipped a.txt: a broken link or link loop", "skipped b.txt: a broken link or link loop",
        "skipped bad\\nname.txt: empty file", "skipped loop/: a link loop (the folder is already indexed under another name)",
    ])
    assert "indexed 1 document(s)" in out.stdout


def test_bad_settings_name_the_variable_and_flag_in_one_line(tmp_path):
    out = run("ask", "How many soldiers deserted?", "-k", "0", "--index", str(tmp_path / "i"))
    assert out.returncode == 2
    assert out.stderr.strip() == "assistant: ASSISTANT_K (-k): input should be greater than or equal to 1, got 0"
    out = run("ask", "How many soldiers deserted?", "--index", str(tmp_path / "i"), env_extra={"ASSISTANT_READER": "nowhere"})
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert out.stderr.startswith("assistant: ASSISTANT_READER (--reader): must be `on`, `off` or a folder")
