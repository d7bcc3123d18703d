"""Fit the short-answer span scorer's weights on a golden file, and report held-out figures.

    python tools/calibrate.py ../shared/eval/squad2-dev-golden.jsonl

Uses only each answerable question's evidence paragraph (no retrieval): the sentence holding a gold
answer is parsed, every candidate span gets the general features of `assistant.answer.extract`, and a
logistic model learns which spans match the gold (F1 >= 0.5). Documents are split in two halves:
weights fitted on one half are scored on the other, so the printed held-out F1 is what to expect
on unseen articles. The printed WEIGHTS dict is what `assistant/answer/extract.py` holds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assistant.answer.extract import FEATURES, WEIGHTS, parse, span_candidates  # noqa: E402
from assistant.eval.metrics import best_em_f1  # noqa: E402
from assistant.index.sentences import split_sentences  # noqa: E402


def examples(rows):
    for row in rows:
        answers = row.get("answers") or []
        evidence = row.get("evidence") or ""
        sentence = next((s.text for s in split_sentences(evidence) if any(a in s.text for a in answers)), None)
        if sentence is None:
            continue
        cands = [(sentence[a:b], f) for a, b, _, f in span_candidates(row["question"], parse(sentence)) if f["novelty"] > 0]
        if cands:
            yield row.get("document", ""), [(best_em_f1(text, answers)[1], [f[k] for k in FEATURES]) for text, f in cands]


def held_out_f1(weights: np.ndarray, groups) -> float:
    return float(np.mean([max(g, key=lambda c: np.dot(weights, c[1]))[0] for g in groups])) if groups else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("golden")
    parser.add_argument("--limit", type=int, default=1200, help="answerable questions to use")
    parser.add_argument("--C", type=float, default=1.0, help="inverse L2 strength of the logistic fit")
    args = parser.parse_args()
    from sklearn.linear_model import LogisticRegression

    rows = [json.loads(line) for line in Path(args.golden).read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [r for r in rows if r.get("answers")][: args.limit]
    data = list(examples(rows))
    docs = sorted({d for d, _ in data})
    half = set(docs[::2])
    parts = [[g for d, g in data if d in half], [g for d, g in data if d not in half]]
    current = np.array([WEIGHTS.get(k, 0.0) for k in FEATURES])

    def fit(groups):
        X = np.array([f for g in groups for _, f in g])
        y = np.array([f1 >= 0.5 for g in groups for f1, _ in g])
        return LogisticRegression(C=args.C, max_iter=5000, fit_intercept=False).fit(X, y).coef_[0]

    for i, (train, test) in enumerate([(parts[0], parts[1]), (parts[1], parts[0])]):
        w = fit(train)
        print(f"split {i}: current weights F1 {held_out_f1(current, test):.3f}; fitted on the other half {held_out_f1(w, test):.3f} (n={len(test)})")
    w = fit(parts[0] + parts[1])
    print("WEIGHTS =", {k: round(float(v), 3) for k, v in zip(FEATURES, w) if abs(v) >= 0.001})


if __name__ == "__main__":
    main()
