"""Reports: the terminal table, the HTML page (escaped, self-contained) and comparisons."""

from __future__ import annotations

from assistant.eval.metrics import score_record
from assistant.eval.report import compare, highlight, table, to_html, to_json
from assistant.eval.run import RunResult


def rec(id_, gold, answer, abstained, quote, confidence=0.5):
    flags = score_record(gold, answer, abstained, [quote] if quote else [], [quote] if quote else [])
    cites = [{"id": 1, "source": "d.txt", "start": 0, "end": len(quote), "quote": quote, "score": 1.0, "valid": True,
              "hit": bool(flags.get("quote_hit@1"))}] if quote else []
    return {"id": id_, "question": f"question {id_}?", "gold": gold, "answer": answer, "confidence": confidence,
            "citations": cites, "passages": [{"source": "d.txt", "start": 0, "end": len(quote)}] if quote else [],
            "latency_ms": 12.0, **flags}


def result(name, records):
    return RunResult(name, records, {"answerer": name, "golden": "g.jsonl", "docs": "docs"})


def test_highlight_marks_gold_and_escapes_everything_else():
    out = highlight("<b>Some 18</b> men & 18 more", ["18"])
    assert out == "&lt;b&gt;Some <mark>18</mark>&lt;/b&gt; men &amp; <mark>18</mark> more"
    assert highlight("<script>", []) == "&lt;script&gt;"


def test_html_escapes_document_text_and_lists_failures():
    evil = "<script>alert(1)</script> 18 & co"
    ours = result("ours", [rec("q1", ["Kim"], evil, False, evil), rec("q2", ["18"], "18", False, "Some 18 men.")])
    page = to_html([ours, result("bm25", [rec("q1", ["Kim"], "x", False, "Kim said.")])])
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "ours: 1 failed of 2" in page and "q1" in page
    assert page.count("<svg") >= 3 and "<link" not in page and "src=" not in page


def test_table_shows_runs_side_by_side_with_ratios():
    ours = result("ours", [rec("q1", ["18"], "18", False, "Some 18 men.")])
    base = result("bm25", [rec("q1", ["18"], "x", False, "Nothing here."), rec("q2", ["18"], "18", False, "Some 18.")])
    text = table([ours, base])
    line = next(row for row in text.splitlines() if row.startswith("quote_hit@1"))
    assert "1/2" in line and "1.000" in line and "0.500" in line and "2.00x" in line


def test_compare_names_questions_that_flip():
    a = to_json([result("ours", [rec("q1", ["18"], "18", False, "Some 18."), rec("q2", [], "", True, "")])])
    b = to_json([result("ours", [rec("q1", ["18"], "x", False, "No."), rec("q2", [], "", True, "")])])
    out = compare(a, b)
    assert "0 miss->hit, 1 hit->miss" in out and "q1" in out.split("hit -> miss:")[1]
    assert "-1.000" in out


def test_load_run_picks_a_baseline_stored_beside_the_main_run(tmp_path):
    import json

    import pytest

    from assistant.eval.report import load_run

    data = to_json([result("ours", [rec("q1", ["18"], "18", False, "Some 18.")]),
                    result("bm25", [rec("q1", ["18"], "x", False, "No.")])])
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    assert load_run(str(path))["settings"]["answerer"] == "ours"
    assert load_run(f"{path}#bm25")["settings"]["answerer"] == "bm25"
    with pytest.raises(ValueError, match="holds no run 'dense'"):
        load_run(f"{path}#dense")
