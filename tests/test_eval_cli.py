"""`assistant eval` end to end on the seed golden file, through the same code path users run."""

from __future__ import annotations

import json

import pytest

from assistant.eval.cli import check_bars
from assistant.eval.metrics import Metric
from assistant.serve.cli import main

from conftest import GOLDEN, SEEDS

SEED_GOLDEN = GOLDEN / "seed-golden.jsonl"
# Bars the seed questions meet today (quote_hit@1 is 5/5, the unanswerable one abstains).
SEED_BARS = ["quote_hit@1=1.0", "quote_hit@3=1.0", "recall@10=1.0", "abstention_recall=1.0", "squad2_f1=0.3"]


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory):
    """One eval of the seed file with bars, JSON and HTML; reused by the checks below."""
    tmp = tmp_path_factory.mktemp("seed-eval")
    out, html = tmp / "out.json", tmp / "out.html"
    args = ["eval", str(SEED_GOLDEN), "--docs", str(SEEDS), "--index", str(tmp / "idx"), "-q",
            "--json", str(out), "--report", str(html)]
    for bar in SEED_BARS:
        args += ["--fail-under", bar]
    status = main(args)
    return tmp, status, json.loads(out.read_text(encoding="utf-8")), html.read_text(encoding="utf-8")


def test_seed_golden_meets_its_bars(seed_run):
    _, status, data, _ = seed_run
    assert status == 0, data["metrics"]
    m = data["metrics"]
    assert m["quote_validity"] == 1.0 and m["quote_hit@1_n"] == 5 and m["abstention_recall_n"] == 1
    assert m["squad2_f1_n"] == 6 and len(m["quote_hit@1_ci95"]) == 2


def test_json_holds_metrics_settings_and_records(seed_run):
    _, _, data, _ = seed_run
    assert data["settings"]["answerer"] == "ours" and data["settings"]["k"] == 10
    assert {"embedding_model", "chunking", "versions", "min_confidence"} <= set(data["settings"])
    fractions = [v for n, v in data["metrics"].items()
                 if n.startswith(("quote_hit", "recall", "answer_", "squad2")) and not n.endswith(("_n", "_ci95"))]
    assert len(fractions) == 8 and all(0 <= v <= 1 for v in fractions)
    records = {r["id"]: r for r in data["records"]}
    assert set(records) == {"s01", "s02", "s03", "s04", "s05", "s06"}
    r = records["s01"]
    assert {"question", "gold", "answer", "abstained", "confidence", "citations", "latency_ms", "quote_hit@1", "recall@5"} <= set(r)
    assert records["s06"]["answerable"] is False
    text = (SEEDS / r["citations"][0]["source"]).read_text(encoding="utf-8")
    assert all(text[c["start"] : c["end"]] == c["quote"] and c["valid"] for c in r["citations"])
    assert len(data["curves"]["recall_at_k"]) == max(len(r["passages"]) for r in data["records"])
    assert len(data["curves"]["abstention"]) > 10


def test_html_report_is_self_contained(seed_run):
    _, _, _, page = seed_run
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in page
    assert "quote_hit@1" in page and "recall@k against k" in page and "abstention trade-off" in page


def test_a_second_run_reuses_the_index_and_a_missed_bar_fails(seed_run, capsys):
    tmp, _, _, _ = seed_run
    out = tmp / "again.json"
    status = main(["eval", str(SEED_GOLDEN), "--docs", str(SEEDS), "--index", str(tmp / "idx"), "-q", "--limit", "2",
                   "--json", str(out), "--fail-under", "answer_em=1.01", "--fail-under", "no_such_metric=0.5"])
    assert status == 1
    err = capsys.readouterr().err
    assert "answer_em" in err and "below the bar 1.01" in err and "no_such_metric: no such metric" in err
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["settings"]["indexing"]["unchanged"] == 1 and data["settings"]["indexing"]["chunks"] == 0
    assert len(data["records"]) == 2


def test_compare_lists_metric_differences_and_changed_questions(seed_run, capsys):
    tmp, _, data, _ = seed_run
    a = tmp / "out.json"
    worse = json.loads(json.dumps(data))
    worse["metrics"]["quote_hit@1"] = 0.8
    flipped = next(r for r in worse["records"] if r["answerable"])
    flipped["quote_hit@1"] = False
    b = tmp / "worse.json"
    b.write_text(json.dumps(worse), encoding="utf-8")
    assert main(["eval", "--compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "quote_hit@1" in out and "-0.200" in out
    assert "1 hit->miss" in out and flipped["id"] in out


def test_conversations_report_quote_hits_by_turn(tmp_path):
    conv = tmp_path / "conv.jsonl"
    conv.write_text(json.dumps({"id": "c1", "turns": [
        {"question": "How many soldiers deserted?", "answers": ["18"]},
        {"question": "Where were they deployed when they deserted?", "answers": ["Kursk and Bryansk oblasts"]},
    ]}) + "\n", encoding="utf-8")
    out = tmp_path / "c.json"
    assert main(["eval", str(conv), "--docs", str(SEEDS), "--index", str(tmp_path / "idx"), "-q", "--json", str(out)]) == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["metrics"]["turn_quote_hit@1_first_n"] == 1 and data["metrics"]["turn_quote_hit@1_followup_n"] == 1
    assert [(r["conversation"], r["turn"]) for r in data["records"]] == [("c1", 1), ("c1", 2)]
    assert data["records"][1].get("query", "").startswith("Where were they deployed")  # searched with the earlier turn


def test_with_baselines_runs_all_three_with_verbatim_quotes(tmp_path, capsys):
    out = tmp_path / "b.json"
    status = main(["eval", str(SEED_GOLDEN), "--docs", str(SEEDS), "--index", str(tmp_path / "idx"), "-q",
                   "--with-baselines", "--json", str(out)])
    assert status == 0
    table = capsys.readouterr().out
    assert "ours/bm25" in table and "ours/dense" in table
    data = json.loads(out.read_text(encoding="utf-8"))
    for kind in ("bm25", "dense"):
        run = data["baselines"][kind]
        assert run["settings"]["chunking"]["size"] == 1000 and run["metrics"]["quote_validity"] == 1.0
        assert not any(r["abstained"] for r in run["records"])  # the textbook recipe never abstains


def test_quote_validity_below_one_always_fails():
    ok = {"quote_validity": Metric("quote_validity", 1.0, 10)}
    assert check_bars(ok, []) == []
    bad = {"quote_validity": Metric("quote_validity", 0.9, 10)}
    (failure,) = check_bars(bad, [])
    assert "quote_validity" in failure and "below the bar 1.0" in failure


def test_bad_bar_and_missing_golden_are_usage_errors(capsys):
    with pytest.raises(SystemExit):
        main(["eval", "x.jsonl", "--fail-under", "quote_hit@1"])
    assert "METRIC=VALUE" in capsys.readouterr().err
    assert main(["eval", "/nonexistent/golden.jsonl"]) == 2
    assert "not found" in capsys.readouterr().err
