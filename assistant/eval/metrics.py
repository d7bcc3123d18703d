"""Metric definitions: SQuAD 2.0 EM/F1, retrieval recall, quote hits, abstention, validity, latency.

`score_record` turns one answered golden question into flags; `compute_metrics` aggregates them.
Every metric is a `Metric` with its value, its count n and, for the headline ones, a 95% bootstrap
interval with a fixed seed (the same records always give the same interval).
"""

from __future__ import annotations

import collections
import re
import string
from dataclasses import dataclass

import numpy as np

MAX_QUOTE_CHARS = 400
RECALL_KS = (1, 5, 10)
BOOTSTRAP_SEED = 20241124
BOOTSTRAP_RESAMPLES = 1000
HEADLINE = (
    "recall@5", "quote_hit@1", "quote_hit@3", "answer_em", "answer_f1",
    "false_abstention", "abstention_recall", "squad2_f1",
)

# Definitions shown in the terminal legend, the HTML report and the README.
DEFINITIONS = {
    "recall@1": "answerable: a gold answer occurs in the top-1 retrieved passage",
    "recall@5": "answerable: a gold answer occurs in the top-5 retrieved passages",
    "recall@10": "answerable: a gold answer occurs in the top-10 retrieved passages",
    "quote_hit@1": f"answerable: a gold answer occurs in the first cited quote (quotes over {MAX_QUOTE_CHARS} chars never count)",
    "quote_hit@3": f"answerable: a gold answer occurs in one of the first three cited quotes (same {MAX_QUOTE_CHARS}-char rule)",
    "mean_quote_chars": "mean length in characters of all cited quotes",
    "answer_em": "answerable: exact match of the short answer, SQuAD 2.0 normalisation, max over gold (0 if abstained)",
    "answer_f1": "answerable: token F1 of the short answer, SQuAD 2.0 normalisation, max over gold (0 if abstained)",
    "false_abstention": "answerable: share where the assistant abstained",
    "abstention_recall": "unanswerable: share where the assistant abstained",
    "squad2_f1": "all: answerable F1 (0 if abstained), unanswerable 1 if abstained else 0",
    "quote_validity": "all citations: share whose quote equals source[start:end]; below 1.0 fails the run",
    "latency_p50_ms": "median time to answer one question, ms",
    "latency_p95_ms": "95th percentile time to answer one question, ms",
    "disagreement_flagged": "answered questions whose answer says the sources differ (on a file with one answer per question: false alarms)",
    "turn_quote_hit@1_first": "conversations, answerable first turns: quote_hit@1",
    "turn_quote_hit@1_followup": "conversations, answerable later turns: quote_hit@1",
}


# SQuAD 2.0 official normalisation and scores (evaluate-v2.0.py) -----------------------------------

_PUNCT = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(s: str) -> str:
    """Lower case, drop ASCII punctuation, drop the words a/an/the, collapse white space."""
    s = "".join(ch for ch in s.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", s).split())


def exact_match(prediction: str, gold: str) -> int:
    return int(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction: str, gold: str) -> float:
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred or not ref:
        return float(pred == ref)
    common = collections.Counter(pred) & collections.Counter(ref)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def usable_gold(answers) -> list[str]:
    """Gold answers that normalise to something; empty for an unanswerable question."""
    return [a for a in answers if normalize_answer(a)]


def best_em_f1(prediction: str, answers) -> tuple[int, float]:
    """Max EM and F1 over the gold answers; an unanswerable question's only gold is ""."""
    golds = usable_gold(answers) or [""]
    return max(exact_match(prediction, g) for g in golds), max(f1(prediction, g) for g in golds)


def _containment_form(s: str) -> str:
    # Like normalize_answer, but punctuation becomes a space: scraped text glues sentences
    # ("them.The"), and deleting the stop would weld the words together.
    s = "".join(" " if ch in _PUNCT else ch for ch in s.lower())
    return " ".join(_ARTICLES.sub(" ", s).split())


def contains_answer(text: str, answers) -> bool:
    """Does a gold answer occur in `text`? Both lower-cased, punctuation and a/an/the dropped; a match
    may not run on into a letter or digit ("18" is not in "180"), other characters bound it."""
    hay = _containment_form(text)
    for gold in usable_gold(answers):
        needle = _containment_form(gold)
        if not needle:
            continue
        for m in re.finditer(re.escape(needle), hay):
            before = hay[m.start() - 1] if m.start() > 0 else " "
            after = hay[m.end()] if m.end() < len(hay) else " "
            if (not needle[0].isalnum() or not before.isalnum()) and (not needle[-1].isalnum() or not after.isalnum()):
                return True
    return False


# One record -------------------------------------------------------------------------------------


def first_rank(texts, answers, max_chars: int | None = None) -> int | None:
    """1-based rank of the first text holding a gold answer (texts over `max_chars` are skipped)."""
    for rank, text in enumerate(texts, 1):
        if max_chars is not None and len(text) > max_chars:
            continue
        if contains_answer(text, answers):
            return rank
    return None


def score_record(answers, answer_text: str, abstained: bool, quotes: list[str], passages: list[str]) -> dict:
    """The per-question flags every metric is built from."""
    answerable = bool(usable_gold(answers))
    prediction = "" if abstained else answer_text
    em, f = best_em_f1(prediction, answers)
    flags = {"answerable": answerable, "abstained": abstained, "em": em, "f1": f, "squad2_f1": f}
    if answerable:
        flags["gold_rank"] = first_rank(passages, answers)
        flags["quote_rank"] = first_rank(quotes, answers, MAX_QUOTE_CHARS)
        for k in RECALL_KS:
            flags[f"recall@{k}"] = flags["gold_rank"] is not None and flags["gold_rank"] <= k
        flags["quote_hit@1"] = flags["quote_rank"] == 1
        flags["quote_hit@3"] = flags["quote_rank"] is not None and flags["quote_rank"] <= 3
    else:
        flags["squad2_f1"] = 1.0 if abstained else 0.0
    return flags


# Aggregates -------------------------------------------------------------------------------------


@dataclass
class Metric:
    name: str
    value: float | None
    n: int
    ci95: tuple[float, float] | None = None


def bootstrap_ci(values, seed: int = BOOTSTRAP_SEED, resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[float, float] | None:
    """95% percentile bootstrap interval of the mean of `values` (None when there are none)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return None
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for i in range(resamples):  # in a loop: a resamples x n matrix would not fit for large runs
        means[i] = x[rng.integers(0, x.size, x.size)].mean()
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def mean_metric(name: str, values, ci: bool | None = None) -> Metric:
    values = [float(v) for v in values]
    ci = name in HEADLINE if ci is None else ci
    value = float(np.mean(values)) if values else None
    return Metric(name, value, len(values), bootstrap_ci(values) if ci else None)


def compute_metrics(records: list[dict]) -> dict[str, Metric]:
    """Aggregate per-question records (as built by the runner) into the named metrics."""
    answerable = [r for r in records if r["answerable"]]
    unanswerable = [r for r in records if not r["answerable"]]
    out: dict[str, Metric] = {}

    def add(metric: Metric) -> None:
        out[metric.name] = metric

    for k in RECALL_KS:
        add(mean_metric(f"recall@{k}", [r[f"recall@{k}"] for r in answerable]))
    add(mean_metric("quote_hit@1", [r["quote_hit@1"] for r in answerable]))
    add(mean_metric("quote_hit@3", [r["quote_hit@3"] for r in answerable]))
    add(mean_metric("mean_quote_chars", [len(c["quote"]) for r in records for c in r["citations"]]))
    add(mean_metric("answer_em", [r["em"] for r in answerable]))
    add(mean_metric("answer_f1", [r["f1"] for r in answerable]))
    add(mean_metric("false_abstention", [r["abstained"] for r in answerable]))
    add(mean_metric("abstention_recall", [r["abstained"] for r in unanswerable]))
    add(mean_metric("squad2_f1", [r["squad2_f1"] for r in records]))
    if any("disagreement" in r for r in records):
        add(mean_metric("disagreement_flagged", [bool(r.get("disagreement")) for r in records if not r["abstained"]]))
    checks = [c["valid"] for r in records for c in r["citations"]] + [False for r in records if r.get("error")]
    add(mean_metric("quote_validity", checks))
    latencies = [r["latency_ms"] for r in records if r.get("latency_ms") is not None]
    for q in (50, 95):
        value = float(np.percentile(latencies, q)) if latencies else None
        add(Metric(f"latency_p{q}_ms", value, len(latencies)))
    turns = [r for r in answerable if r.get("turn")]
    if turns:
        add(mean_metric("turn_quote_hit@1_first", [r["quote_hit@1"] for r in turns if r["turn"] == 1], ci=True))
        add(mean_metric("turn_quote_hit@1_followup", [r["quote_hit@1"] for r in turns if r["turn"] > 1], ci=True))
        for position in sorted({r["turn"] for r in turns}):
            add(mean_metric(f"turn_quote_hit@1_t{position}", [r["quote_hit@1"] for r in turns if r["turn"] == position]))
    return out


def recall_curve(records: list[dict], max_k: int) -> list[tuple[int, float]]:
    """recall@k for k = 1..max_k on answerable questions (for the report's plot)."""
    ranks = [r.get("gold_rank") for r in records if r["answerable"]]
    if not ranks:
        return []
    return [(k, sum(1 for g in ranks if g is not None and g <= k) / len(ranks)) for k in range(1, max_k + 1)]


def abstention_curve(records: list[dict], steps: int = 50) -> list[dict]:
    """For thresholds t over `confidence`: abstain iff confidence < t. Only the confidence is needed,
    so the curve holds for any threshold, not just the one the run used."""
    pos = [r["confidence"] for r in records if not r["answerable"]]
    neg = [r["confidence"] for r in records if r["answerable"]]
    curve = []
    for i in range(steps + 1):
        t = i / steps
        curve.append({
            "threshold": t,
            "abstention_recall": sum(c < t for c in pos) / len(pos) if pos else None,
            "false_abstention": sum(c < t for c in neg) / len(neg) if neg else None,
        })
    return curve


def flat(metrics: dict[str, Metric]) -> dict[str, object]:
    """The JSON form: name -> value, `<name>_n` -> count, `<name>_ci95` -> [lo, hi]."""
    out: dict[str, object] = {}
    for m in metrics.values():
        out[m.name] = None if m.value is None else round(m.value, 6)
        out[f"{m.name}_n"] = m.n
        if m.ci95 is not None:
            out[f"{m.name}_ci95"] = [round(m.ci95[0], 6), round(m.ci95[1], 6)]
    return out
