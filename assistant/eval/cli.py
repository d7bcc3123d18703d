"""`assistant eval`: run golden questions through the assistant (and baselines), report, gate, compare."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .metrics import DEFINITIONS

ALWAYS_REQUIRED = {"quote_validity": 1.0}  # a quote that is not verbatim is a bug, whatever the bars say


def parse_bar(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        if not sep:
            raise ValueError
        return name.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: write a bar as METRIC=VALUE, e.g. quote_hit@1=0.8") from None


def check_bars(metrics: dict, bars: list[tuple[str, float]]) -> list[str]:
    """Failures, one line each: a metric below its bar, a bar on an unknown metric, or quote_validity < 1."""
    failures = []
    for name, bar in list(ALWAYS_REQUIRED.items()) + list(bars):
        m = metrics.get(name)
        if m is None:
            if name in ALWAYS_REQUIRED:
                continue
            failures.append(f"{name}: no such metric in this run; known: {', '.join(sorted(metrics))}")
        elif m.value is None:
            if name not in ALWAYS_REQUIRED:
                failures.append(f"{name}: no questions to measure it on (n=0), so the bar {bar} cannot be met")
        elif m.value < bar:
            failures.append(f"{name} = {m.value:.4f} is below the bar {bar} (n={m.n})")
    return failures


def cmd_eval(args: argparse.Namespace) -> int:
    from ..errors import UsageError
    from ..settings import Settings
    from . import report

    if args.compare:
        a, b = (report.load_run(p) for p in args.compare)
        print(report.compare(a, b, Path(args.compare[0]).name, Path(args.compare[1]).name))
        return 0
    if not args.golden:
        raise UsageError("pass a golden file (assistant eval GOLDEN.jsonl) or --compare A.json B.json")
    from .golden import load_golden
    from .run import eval_index_dir, evaluate

    golden = load_golden(args.golden).sampled(args.sample, args.seed).limited(args.limit)
    base = Settings(**{name: value for name, value in (("docs_dir", args.docs), ("llm", args.llm)) if value})
    index_dir = Path(args.index) if args.index else eval_index_dir(base, base.docs_dir)
    settings = base.with_overrides(index_dir=index_dir)
    answerers = [args.baseline] if args.baseline else ["ours"]
    if args.with_baselines:
        others = ("sentences", "bm25", "dense") if settings.reader != "off" else ("bm25", "dense")
        answerers += [b for b in others if b not in answerers]
    print(f"eval: {len(golden)} question(s) from {args.golden}; documents {settings.docs_dir}; store {index_dir}",
          file=sys.stderr)
    results = evaluate(golden, Path(args.golden), settings, answerers, k=args.k, progress=not args.quiet,
                       warn=lambda m: print(m, file=sys.stderr))
    for r in results:
        r.settings["questions"] = {"asked": len(golden), "limit": args.limit, "sample": args.sample,
                                   "seed": args.seed if args.sample else None}
    print(report.table(results))
    if args.json:
        report.write_json(results, Path(args.json))
        print(f"wrote {args.json}", file=sys.stderr)
    if args.report:
        report.write_html(results, Path(args.report))
        print(f"wrote {args.report}", file=sys.stderr)
    failures = [f"{results[0].answerer}: {f}" for f in check_bars(results[0].metrics, args.fail_under)]
    # The baselines' figures are not gated, but their quotes must be verbatim too.
    failures += [f"{r.answerer}: {f}" for r in results[1:] for f in check_bars(r.metrics, [])]
    for f in failures:
        print(f"FAIL {f}", file=sys.stderr)
    return 1 if failures else 0


def add_eval_parser(subparsers) -> argparse.ArgumentParser:
    legend = "\n".join(f"  {name:26s} {text}" for name, text in DEFINITIONS.items())
    p = subparsers.add_parser(
        "eval",
        help="evaluate on golden questions: metrics, reports, baselines, CI bars",
        description="Ask every question of a golden JSONL file, score the answers and citations, report.",
        epilog="metrics (fractions in 0..1):\n" + legend,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("golden", nargs="?", help="golden JSONL: {id, question, answers[, evidence, document]} or {id, turns}")
    p.add_argument("--docs", help="documents the questions are about (default: ASSISTANT_DOCS_DIR or seeds/)")
    p.add_argument("--index", help="the eval's store (default: <index dir>/eval/<docs folder>-<hash>); reused across runs")
    p.add_argument("--json", metavar="OUT", help="write metrics, settings and per-question records as JSON")
    p.add_argument("--report", metavar="OUT.html", help="write a self-contained HTML report")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N questions (conversations count as one)")
    p.add_argument("--sample", type=int, metavar="N", help="a random N of the questions (fixed by --seed), spanning all documents")
    p.add_argument("--seed", type=int, default=0, help="seed of --sample (default 0)")
    p.add_argument("--fail-under", type=parse_bar, action="append", default=[], metavar="METRIC=VALUE",
                   help="exit 1 when METRIC is below VALUE (repeatable); quote_validity < 1 always fails")
    p.add_argument("--baseline", choices=["sentences", "bm25", "dense"],
                   help="answer with a baseline instead of ours: a textbook pipeline, or ours with the reader off (sentences)")
    p.add_argument("--with-baselines", action="store_true",
                   help="also run ours with the reader off (sentences) and both textbook baselines, beside the first run")
    p.add_argument("-k", type=int, default=10, help="passages retrieved per question (default 10: recall@10 needs them)")
    p.add_argument("--compare", nargs=2, metavar=("A.json", "B.json"),
                   help="compare two --json results instead of running (FILE#bm25 picks a baseline run stored in FILE)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument("--llm", help="answerer of 'ours': extractive, local, openai:<model> or ollama:<model> (default: ASSISTANT_LLM)")
    p.set_defaults(func=cmd_eval)
    return p
