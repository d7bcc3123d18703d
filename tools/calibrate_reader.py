"""Fit the reader's confidence, choose its abstention threshold and how many passages it reads.

    python tools/calibrate_reader.py ../shared/eval/squad2-dev-golden.jsonl --docs ../shared/eval/squad2-dev-docs
    python tools/calibrate_reader.py ... --passages 5 --each 1 --write     # store the fit in reader.json

Every question's fused top 8 passages and each retriever's top 3 are read once. A passage is a
hit when the sentence(s) around the reader's span hold a gold answer (never, for an unanswerable
question). For each policy (read the fused top n, plus each retriever's top m) a logistic model
of the passage's evidence (`assistant.answer.reader_answerer.evidence`: the reader's margin and how the
passage was retrieved) gives P(hit); the most likely passage answers, and the threshold is the
highest one whose false abstention stays at or below `--max-false`. Articles are split in two
halves and each half's fit is scored on the other, so the printed figures are held out: what to
expect on articles the fit never saw. `--write` stores the fit on the whole file for the policy
given by `--passages` and `--each`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pickle
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant import Assistant, Settings  # noqa: E402
from assistant.answer.reader import META_FILE, Reader, bundled_reader_dir  # noqa: E402
from assistant.answer.reader_answerer import EVIDENCE, ReadPassage, confidence, evidence, quote_bounds, read_passage  # noqa: E402
from assistant.answer.retrieve import with_best_of_each  # noqa: E402
from assistant.eval.metrics import contains_answer  # noqa: E402
from assistant.eval.run import eval_index_dir  # noqa: E402
from assistant.index.terms import terms  # noqa: E402

POOL, EACH_MAX = 8, 3


def read_everything(bot: Assistant, reader: Reader, rows: list[dict]) -> list[dict]:
    """Each question's pool of passages, the reader's reading of each and whether its quote hits."""
    out = []
    lexical = bot.retriever.lexical()
    per_passage = []
    for row in tqdm(rows, unit="q", desc="reading"):
        q = row["question"]
        qvec = bot.embeddings.encode([q])[0]
        pool = bot.retriever.search(q, POOL, query_vector=qvec.tolist(), best_of_each=EACH_MAX)
        t = time.perf_counter()
        readings = reader.read(q, [p.chunk.text for p in pool])
        per_passage.append((time.perf_counter() - t) * 1000 / max(len(pool), 1))
        hits, read = [], []
        asked = set(terms(q))
        for p, r in zip(pool, readings):
            hit = False
            if r is not None and row["answers"]:
                text = bot.index.document_text(p.chunk.source, p.chunk.digest) or ""
                lo, hi = quote_bounds(text, p.chunk.start + r.start, p.chunk.start + r.end, p.chunk.start, p.chunk.end)
                hit = contains_answer(text[lo:hi], row["answers"])
            hits.append(hit)
            read.append(read_passage(p, r, 0, asked, lexical) if r is not None else None)
        out.append({"doc": row["document"], "answerable": bool(row["answers"]), "pool": pool, "read": read, "hits": hits})
    threads = reader.session.get_session_options().intra_op_num_threads
    print(f"reader: {statistics.median(per_passage):.1f} ms per passage (median, {threads} thread(s))")
    return out


def candidates(item: dict, n: int, m: int) -> list[tuple[ReadPassage, bool]]:
    """(read passage, hit) of each passage the policy reads, ranked as the assistant ranks them."""
    index = {id(p): i for i, p in enumerate(item["pool"])}
    out = []
    for rank, p in enumerate(with_best_of_each(item["pool"], n, m)):
        i = index[id(p)]
        if item["read"][i] is not None:
            out.append((dataclasses.replace(item["read"][i], rank=rank), item["hits"][i]))
    return out


def fit(items: list[dict], n: int, m: int, features: tuple[str, ...]) -> dict:
    from sklearn.linear_model import LogisticRegression

    pairs = [c for item in items for c in candidates(item, n, m)]
    x = np.array([[evidence(r)[f] for f in features] for r, _ in pairs])
    y = np.array([h for _, h in pairs])
    model = LogisticRegression(C=1.0, max_iter=2000).fit(x, y)
    return {"bias": float(model.intercept_[0]), **{f: float(w) for f, w in zip(features, model.coef_[0])}}


def outcomes(cal: dict, items: list[dict], n: int, m: int) -> list[tuple[bool, float, bool]]:
    """Per question: answerable, the best passage's confidence, whether that passage hits."""
    out = []
    for item in items:
        scored = [(confidence(cal, r), hit) for r, hit in candidates(item, n, m)]
        conf, hit = max(scored, key=lambda s: s[0]) if scored else (0.0, False)
        out.append((item["answerable"], float(conf), bool(hit)))
    return out


def threshold(results: list[tuple[bool, float, bool]], max_false: float) -> float:
    """The highest threshold leaving at most `max_false` of the answerable questions below it."""
    scores = sorted(conf for answerable, conf, _ in results if answerable)
    allowed = int(np.floor(max_false * len(scores)))
    return float(scores[allowed]) if allowed < len(scores) else 1.0


def rates(results: list[tuple[bool, float, bool]], t: float) -> dict:
    ans = [r for r in results if r[0]]
    un = [r for r in results if not r[0]]
    return {
        "quote_hit@1": float(np.mean([hit and conf >= t for _, conf, hit in ans])),
        "quote_hit@1_no_abstention": float(np.mean([hit for _, _, hit in ans])),
        "false_abstention": float(np.mean([conf < t for _, conf, _ in ans])),
        "abstention_recall": float(np.mean([conf < t for _, conf, _ in un])) if un else 0.0,
    }


def held_out(items: list[dict], n: int, m: int, max_false: float, features: tuple[str, ...]) -> dict:
    docs = sorted({i["doc"] for i in items})
    halves = [set(docs[0::2]), set(docs[1::2])]
    scores = []
    for half in halves:
        train = [i for i in items if i["doc"] in half]
        test = [i for i in items if i["doc"] not in half]
        cal = fit(train, n, m, features)
        t = threshold(outcomes(cal, train, n, m), max_false)
        scores.append(rates(outcomes(cal, test, n, m), t))
    return {k: statistics.mean(s[k] for s in scores) for k in scores[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("golden", type=Path)
    parser.add_argument("--docs", type=Path, required=True)
    parser.add_argument("--reader", type=Path, default=bundled_reader_dir(), help="reader folder (default: the shipped one)")
    parser.add_argument("--max-false", type=float, default=0.08, help="false abstention the threshold may cost (default 0.08)")
    parser.add_argument("--passages", type=int, default=2, help="fused top n of the policy --write stores the fit for")
    parser.add_argument("--each", type=int, default=1, help="each retriever's top m of that policy")
    parser.add_argument("--sample", type=int, default=0, help="a seeded sample of the questions (0: all)")
    parser.add_argument("--threads", type=int, default=2, help="reader threads for this measurement")
    parser.add_argument("--features", default=",".join(EVIDENCE), help=f"evidence the fit uses (default: all of {','.join(EVIDENCE)})")
    parser.add_argument("--policies", default="2:0,2:1,3:1,4:1,5:1,8:3", help="fused n:each m pairs measured held out")
    parser.add_argument("--cache", type=Path, help="keep the readings in this file and reuse them (same golden file, docs and reader)")
    parser.add_argument("--write", action="store_true", help="store the whole-file fit and threshold in the reader's reader.json")
    args = parser.parse_args()
    features = tuple(f for f in args.features.split(",") if f)
    unknown = set(features) - set(EVIDENCE)
    if unknown:
        parser.error(f"unknown evidence {sorted(unknown)}; choose from {','.join(EVIDENCE)}")
    rows = [json.loads(line) for line in args.golden.read_text(encoding="utf-8").splitlines() if line.strip()]
    if args.sample:
        import random

        rows = random.Random(0).sample(rows, min(args.sample, len(rows)))
    if args.cache and args.cache.is_file():
        items = pickle.loads(args.cache.read_bytes())
        print(f"readings of {len(items)} questions from {args.cache}")
    else:
        base = Settings(docs_dir=args.docs, reader="off")
        bot = Assistant(base.with_overrides(index_dir=eval_index_dir(base, args.docs)), auto_index=False)
        bot.index_paths([args.docs], prune=True, progress=True)
        items = read_everything(bot, Reader(args.reader, threads=args.threads), rows)
        if args.cache:
            args.cache.parent.mkdir(parents=True, exist_ok=True)
            args.cache.write_bytes(pickle.dumps(items))

    print(f"\nheld out (fit and threshold on one half of the articles, scored on the other; max false abstention {args.max_false}):")
    print("| fused n | each m | passages read | quote_hit@1 | without abstaining | false abstention | abstention recall |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for policy in args.policies.split(","):
        n, m = (int(x) for x in policy.split(":"))
        read = statistics.mean(len(with_best_of_each(i["pool"], n, m)) for i in items)
        r = held_out(items, n, m, args.max_false, features)
        print(f"| {n} | {m} | {read:.2f} | {r['quote_hit@1']:.3f} | {r['quote_hit@1_no_abstention']:.3f} | "
              f"{r['false_abstention']:.3f} | {r['abstention_recall']:.3f} |", flush=True)

    cal = fit(items, args.passages, args.each, features)
    results = outcomes(cal, items, args.passages, args.each)
    cal["threshold"] = threshold(results, args.max_false)
    print(f"\nwhole file, n={args.passages} m={args.each}: {json.dumps({k: round(v, 4) for k, v in cal.items()})}")
    print(f"  -> {json.dumps({k: round(v, 3) for k, v in rates(results, cal['threshold']).items()})}")
    if args.write:
        meta_path = args.reader / META_FILE
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        meta["calibration"] = {**{k: round(v, 6) for k, v in cal.items()}, "features": list(features),
                               "fitted_on": args.golden.name, "questions": len(items), "max_false_abstention": args.max_false,
                               "passages": args.passages, "each": args.each}
        meta_path.write_text(json.dumps(meta, indent=1), encoding="utf-8")
        print(f"wrote the calibration into {meta_path}")


if __name__ == "__main__":
    main()
