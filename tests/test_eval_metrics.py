"""Metric definitions pinned on small hand-made cases."""

from __future__ import annotations

import json

import pytest

from assistant.eval.golden import load_golden
from assistant.eval.metrics import (
    MAX_QUOTE_CHARS,
    abstention_curve,
    best_em_f1,
    bootstrap_ci,
    compute_metrics,
    contains_answer,
    exact_match,
    f1,
    flat,
    normalize_answer,
    recall_curve,
    score_record,
)

from conftest import SHARED_EVAL


def test_squad_normalisation_drops_case_punctuation_articles_and_extra_space():
    assert normalize_answer("The  Eiffel-Tower, in Paris!") == "eiffeltower in paris"
    assert normalize_answer("an apple a day") == "apple day"
    assert normalize_answer("theatre") == "theatre"  # articles only as whole words
    assert normalize_answer("“closest comrade”") == "“closest comrade”"  # only ASCII punctuation goes


def test_exact_match_and_f1():
    assert exact_match("the 18 soldiers", "18 Soldiers") == 1
    assert exact_match("18", "eighteen") == 0
    assert f1("some 3,000 North Koreans", "3,000") == pytest.approx(2 * (1 / 4) * 1 / (1 / 4 + 1))
    assert f1("x y y", "y y z") == pytest.approx(2 / 3)  # tokens counted as a multiset
    assert f1("a b b", "b b c") == pytest.approx(0.8)  # "a" is an article: dropped
    assert f1("", "") == 1.0 and f1("x", "") == 0.0 and f1("", "x") == 0.0


def test_scores_take_the_max_over_gold_and_unanswerable_wants_an_empty_prediction():
    assert best_em_f1("Buryat battalion", ["a “special Buryat battalion,”", "Buryat battalion"]) == (1, 1.0)
    assert best_em_f1("", []) == (1, 1.0)
    assert best_em_f1("Ulaanbaatar", []) == (0, 0.0)
    assert best_em_f1("", ["the", "18"]) == (0, 0.0)  # "the" normalises to "" and is dropped


def test_containment_respects_word_edges_but_not_glued_sentences():
    assert contains_answer("Some 18 North Korean soldiers", ["18"])
    assert not contains_answer("some 180 men", ["18"])
    assert contains_answer("searching for them.The troops", ["searching for them"])
    assert contains_answer("his “closest comrade”.Ukraine’s", ["his “closest comrade”"])
    assert not contains_answer("anything", [])


def test_quote_length_rule_long_quotes_never_count():
    gold = ["18"]
    short = "Some 18 soldiers deserted."
    long = "Some 18 soldiers deserted. " + "x" * MAX_QUOTE_CHARS
    assert score_record(gold, "18", False, [short], [])["quote_hit@1"]
    flags = score_record(gold, "18", False, [long, short], [])
    assert not flags["quote_hit@1"] and flags["quote_hit@3"] and flags["quote_rank"] == 2
    assert not score_record(gold, "18", False, [long, "a", "b", short], [])["quote_hit@3"]


def test_recall_at_k_uses_the_first_passage_holding_gold():
    flags = score_record(["Kim"], "Kim", False, [], ["nothing", "x", "y", "z", "w", "Kim said"])
    assert flags["gold_rank"] == 6
    assert not flags["recall@1"] and not flags["recall@5"] and flags["recall@10"]


def test_abstention_scoring():
    answerable_abstained = score_record(["18"], "Not found in the documents.", True, [], [])
    assert answerable_abstained["f1"] == 0.0 and answerable_abstained["squad2_f1"] == 0.0 and answerable_abstained["em"] == 0
    assert score_record([], "Not found in the documents.", True, [], [])["squad2_f1"] == 1.0
    assert score_record([], "Ulaanbaatar", False, [], [])["squad2_f1"] == 0.0
    assert score_record(["18"], "18", False, [], [])["squad2_f1"] == 1.0


def record(gold, answer, abstained, quotes=(), valid=True, confidence=0.5, **extra):
    flags = score_record(gold, answer, abstained, list(quotes), list(quotes))
    citations = [{"quote": q, "valid": valid} for q in quotes]
    return {"citations": citations, "latency_ms": 10.0, "confidence": confidence, **flags, **extra}


def test_aggregates_with_counts():
    records = [
        record(["18"], "18", False, ["Some 18 soldiers."]),
        record(["Kim"], "x", False, ["Putin spoke."]),
        record(["3,000"], "", True, confidence=0.1),
        record([], "", True, confidence=0.1),
        record([], "Mongolia", False, ["Mongolia is big."]),
    ]
    m = compute_metrics(records)
    assert m["quote_hit@1"].value == pytest.approx(1 / 3) and m["quote_hit@1"].n == 3
    assert m["false_abstention"].value == pytest.approx(1 / 3)
    assert m["abstention_recall"].value == 0.5 and m["abstention_recall"].n == 2
    assert m["answer_em"].value == pytest.approx(1 / 3)
    assert m["squad2_f1"].value == pytest.approx((1 + 0 + 0 + 1 + 0) / 5) and m["squad2_f1"].n == 5
    assert m["quote_validity"].value == 1.0 and m["quote_validity"].n == 3
    assert m["mean_quote_chars"].value == pytest.approx((17 + 12 + 16) / 3)
    assert m["latency_p50_ms"].value == 10.0
    lo, hi = m["squad2_f1"].ci95
    assert lo <= m["squad2_f1"].value <= hi
    out = flat(m)
    assert out["quote_hit@1_n"] == 3 and len(out["squad2_f1_ci95"]) == 2
    json.dumps(out)


def test_an_invalid_quote_or_a_withheld_answer_lowers_quote_validity():
    m = compute_metrics([record(["18"], "18", False, ["Some 18."]), record(["18"], "18", False, ["Some 18!"], valid=False)])
    assert m["quote_validity"].value == 0.5
    m = compute_metrics([record(["18"], "18", False, ["Some 18."]), record(["18"], "", True, error="QuoteMismatch")])
    assert m["quote_validity"].value == 0.5


def test_turn_quote_hit_splits_first_turns_from_follow_ups():
    records = [
        record(["18"], "18", False, ["18 men."], conversation="c", turn=1),
        record(["Kursk"], "x", False, ["Moscow."], conversation="c", turn=2),
        record(["Kursk"], "Kursk", False, ["in Kursk."], conversation="d", turn=2),
    ]
    m = compute_metrics(records)
    assert m["turn_quote_hit@1_first"].value == 1.0 and m["turn_quote_hit@1_first"].n == 1
    assert m["turn_quote_hit@1_followup"].value == 0.5 and m["turn_quote_hit@1_followup"].n == 2


def test_bootstrap_interval_bounds():
    assert bootstrap_ci([]) is None
    assert bootstrap_ci([1, 1, 1, 1]) == (1.0, 1.0)
    values = [1] * 30 + [0] * 70
    lo, hi = bootstrap_ci(values)
    assert 0 <= lo < 0.3 < hi <= 1
    assert bootstrap_ci(values) == (lo, hi)  # fixed seed: the same records give the same interval
    wide = bootstrap_ci([1] * 3 + [0] * 7)
    assert wide[1] - wide[0] > hi - lo  # fewer questions, wider interval


def test_curves():
    records = [record(["Kim"], "Kim", False, [], confidence=0.9),
               record([], "", True, confidence=0.2), record([], "x", False, confidence=0.6)]
    records[0]["gold_rank"] = 2
    assert recall_curve(records, 3) == [(1, 0.0), (2, 1.0), (3, 1.0)]
    curve = {round(p["threshold"], 2): p for p in abstention_curve(records)}
    assert curve[0.0]["abstention_recall"] == 0 and curve[0.0]["false_abstention"] == 0
    assert curve[0.5]["abstention_recall"] == 0.5 and curve[0.5]["false_abstention"] == 0
    assert curve[1.0]["abstention_recall"] == 1 and curve[1.0]["false_abstention"] == 1


def test_every_squad_gold_answer_is_contained_in_its_evidence():
    path = SHARED_EVAL / "squad2-dev-golden.jsonl"
    if not path.exists():
        pytest.skip(f"SQuAD-derived eval data not present at {path} (kept outside the repository)")
    answerable = [q for q in load_golden(path).questions if q.answerable]
    missed = [q.id for q in answerable if not contains_answer(q.evidence, q.answers)]
    assert not missed, f"containment misses gold that is verbatim in its evidence: {missed[:5]}"
