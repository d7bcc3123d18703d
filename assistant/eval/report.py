"""Reports of eval runs: the terminal table, the JSON file, the self-contained HTML page, comparisons."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime
from pathlib import Path

from ..errors import EvalError
from .metrics import DEFINITIONS, HEADLINE, Metric, abstention_curve, flat, recall_curve
from .run import RunResult

ORDER = [
    "recall@1", "recall@5", "recall@10", "quote_hit@1", "quote_hit@3", "mean_quote_chars", "answer_em", "answer_f1",
    "false_abstention", "abstention_recall", "squad2_f1", "quote_validity", "latency_p50_ms", "latency_p95_ms",
    "turn_quote_hit@1_first", "turn_quote_hit@1_followup",
]
NOT_FRACTIONS = {"mean_quote_chars", "latency_p50_ms", "latency_p95_ms"}
# Lower is better for these: a ratio ours/baseline below 1 is the good direction.
LOWER_IS_BETTER = {"false_abstention", "mean_quote_chars", "latency_p50_ms", "latency_p95_ms"}
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
MAX_FAILURES_SHOWN = 300


def metric_names(results: list[RunResult]) -> list[str]:
    names = {n for r in results for n in r.metrics}
    return [n for n in ORDER if n in names] + sorted(n for n in names if n not in ORDER)


def fmt_value(name: str, value) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if name in NOT_FRACTIONS else f"{value:.3f}"


def fmt_metric(m: Metric | None) -> str:
    if m is None or m.value is None:
        return "-"
    text = fmt_value(m.name, m.value)
    if m.ci95:
        text += f" [{fmt_value(m.name, m.ci95[0])}-{fmt_value(m.name, m.ci95[1])}]"
    return text


# Terminal ---------------------------------------------------------------------------------------


def table(results: list[RunResult]) -> str:
    """Metrics side by side with their n, and ours/baseline ratios when baselines ran too."""
    head = ["metric", "n"] + [r.answerer for r in results]
    first = results[0]
    ratio_cols = results[1:] if first.answerer == "ours" else []
    head += [f"{first.answerer}/{r.answerer}" for r in ratio_cols]
    rows = [head]
    for name in metric_names(results):
        ns = {r.metrics[name].n for r in results if name in r.metrics}
        row = [name, "/".join(str(n) for n in sorted(ns))] + [fmt_metric(r.metrics.get(name)) for r in results]
        for r in ratio_cols:
            a, b = first.metrics.get(name), r.metrics.get(name)
            ok = a and b and a.value is not None and b.value
            row.append(f"{a.value / b.value:.2f}x" if ok else "-")
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.append("fractions in 0..1; [a-b] = 95% bootstrap interval; definitions: assistant eval --help or the README")
    return "\n".join(lines)


# JSON -------------------------------------------------------------------------------------------


def run_json(result: RunResult) -> dict:
    max_k = max((len(r["passages"]) for r in result.records), default=0)
    return {
        "metrics": flat(result.metrics),
        "settings": result.settings,
        "curves": {"recall_at_k": recall_curve(result.records, max_k), "abstention": abstention_curve(result.records)},
        "records": result.records,
    }


def to_json(results: list[RunResult]) -> dict:
    """The first run at the top level (`metrics`, `settings`, `records`); the others under `baselines`."""
    out = run_json(results[0])
    out["created"] = datetime.now(UTC).isoformat(timespec="seconds")
    if len(results) > 1:
        out["baselines"] = {r.answerer: run_json(r) for r in results[1:]}
    return out


def write_json(results: list[RunResult], path: Path) -> None:
    Path(path).write_text(json.dumps(to_json(results), ensure_ascii=False, indent=1), encoding="utf-8")


# Compare ----------------------------------------------------------------------------------------


def load_run(spec: str | Path) -> dict:
    """A run from a `--json` file; `FILE#bm25` picks a baseline stored beside the main run."""
    path, _, pick = str(spec).partition("#")
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise EvalError(f"{path} not found; write one with `assistant eval GOLDEN.jsonl --json {path}`") from exc
    except json.JSONDecodeError as exc:
        raise EvalError(f"{path} is not JSON ({exc.msg}); pass a file written by `assistant eval --json`") from exc
    if not isinstance(data, dict) or "metrics" not in data or "records" not in data:
        raise EvalError(f"{path} is not an eval result; pass a file written by `assistant eval --json`")
    if pick and pick != data.get("settings", {}).get("answerer"):
        runs = data.get("baselines", {})
        if pick not in runs:
            raise EvalError(f"{path} holds no run {pick!r}; it has: {', '.join([data['settings'].get('answerer', '?'), *runs])}")
        return runs[pick]
    return data


def success(record: dict) -> bool:
    """The hit used for hit<->miss changes: quote_hit@1 when answerable, abstention when not."""
    return bool(record.get("quote_hit@1")) if record.get("answerable") else bool(record.get("abstained"))


def compare(a: dict, b: dict, name_a: str = "A", name_b: str = "B") -> str:
    ma, mb = a["metrics"], b["metrics"]
    names = [n for n in ORDER if n in ma or n in mb]
    names += sorted(n for n in set(ma) | set(mb) if n not in names and not re.search(r"_(n|ci95)$", n))
    rows = [["metric", name_a, name_b, "B-A", "n A/B"], []]
    for n in names:
        va, vb = ma.get(n), mb.get(n)
        diff = f"{vb - va:+.3f}" if isinstance(va, (int, float)) and isinstance(vb, (int, float)) else "-"
        rows.append([n, fmt_value(n, va), fmt_value(n, vb), diff, f"{ma.get(n + '_n', '-')}/{mb.get(n + '_n', '-')}"])
    widths = [max(len(r[i]) for r in rows if r) for i in range(5)]
    rows[1] = ["-" * w for w in widths]
    out = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    by_id = {r["id"]: r for r in a["records"]}
    lost, won = [], []
    for rb in b["records"]:
        ra = by_id.get(rb["id"])
        if ra is None or success(ra) == success(rb):
            continue
        (won if success(rb) else lost).append(rb)
    common = sum(1 for r in b["records"] if r["id"] in by_id)
    out.append(f"\n{common} questions in both; {len(won)} miss->hit, {len(lost)} hit->miss "
               "(hit = quote_hit@1 if answerable, abstained if not)")
    for title, items in (("hit -> miss", lost), ("miss -> hit", won)):
        if items:
            out.append(f"\n{title}:")
            out += [f"  {r['id']}: {r['question']}" for r in items]
    return "\n".join(out)


# HTML -------------------------------------------------------------------------------------------


def esc(text) -> str:
    return html.escape(str(text), quote=True)


def highlight(text: str, answers) -> str:
    """Escaped `text` with every occurrence of a gold answer (case-insensitive) in <mark>."""
    spans = []
    for g in answers:
        g = g.strip()
        if g:
            spans += [(m.start(), m.end()) for m in re.finditer(re.escape(g), text, re.IGNORECASE)]
    merged: list[list[int]] = []
    for s, e in sorted(spans):
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    out, pos = [], 0
    for s, e in merged:
        out += [esc(text[pos:s]), "<mark>", esc(text[s:e]), "</mark>"]
        pos = e
    return "".join(out) + esc(text[pos:])


def line_chart(series: dict[str, list[tuple[float, float]]], xlabel: str, ylabel: str, xmax: float = 1.0,
               ymax: float = 1.0, xmin: float = 0.0, points: bool = True) -> str:
    w, h, left, bottom, top, right = 420, 280, 50, 40, 15, 15
    pw, ph = w - left - right, h - top - bottom

    def x(v):
        return left + (v - xmin) / ((xmax - xmin) or 1) * pw

    def y(v):
        return top + ph - v / (ymax or 1) * ph

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img">',
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>']
    for i in range(6):
        yv = ymax * i / 5
        parts.append(f'<text x="{left - 5}" y="{y(yv) + 4:.1f}" font-size="10" text-anchor="end">{yv:.2g}</text>')
        xv = xmin + (xmax - xmin) * i / 5
        parts.append(f'<text x="{x(xv):.1f}" y="{top + ph + 14}" font-size="10" text-anchor="middle">{xv:.2g}</text>')
    parts.append(f'<text x="{left + pw / 2}" y="{h - 5}" font-size="11" text-anchor="middle">{esc(xlabel)}</text>')
    mid = top + ph / 2
    parts.append(f'<text x="12" y="{mid}" font-size="11" text-anchor="middle" transform="rotate(-90 12 {mid})">{esc(ylabel)}</text>')
    for i, (name, pts) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        pts = [(a, b) for a, b in pts if a is not None and b is not None]
        if not pts:
            continue
        path = " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in pts)
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}"/>')
        if points:
            parts += [f'<circle cx="{x(a):.1f}" cy="{y(b):.1f}" r="2.5" fill="{color}"/>' for a, b in pts]
        parts.append(f'<text x="{left + 8}" y="{top + 14 + 13 * i}" font-size="11" fill="{color}">{esc(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def histogram(values: list[float], label: str, bins: int = 30) -> str:
    w, h, left, bottom, top = 420, 200, 50, 40, 15
    pw, ph = w - left - 15, h - top - bottom
    if not values:
        return "<p>no latencies</p>"
    cap = sorted(values)[min(len(values) - 1, int(0.99 * len(values)))] or 1.0  # the top 1% would flatten the rest
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int(v / cap * bins))] += 1
    peak = max(counts) or 1
    bw = pw / bins
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img">']
    for i, c in enumerate(counts):
        bh = c / peak * ph
        parts.append(f'<rect x="{left + i * bw:.1f}" y="{top + ph - bh:.1f}" width="{bw - 1:.1f}" height="{bh:.1f}" '
                     f'fill="#1f77b4"><title>{c}</title></rect>')
    for i in range(6):
        parts.append(f'<text x="{left + pw * i / 5:.1f}" y="{top + ph + 14}" font-size="10" text-anchor="middle">{cap * i / 5:.0f}</text>')
    parts.append(f'<text x="{left - 5}" y="{top + 8}" font-size="10" text-anchor="end">{peak}</text>')
    parts.append(f'<text x="{left + pw / 2}" y="{h - 5}" font-size="11" text-anchor="middle">{esc(label)}</text></svg>')
    return "".join(parts)


def _failures(result: RunResult) -> tuple[list[dict], int]:
    failed = [r for r in result.records if not success(r) or r.get("error") or not all(c["valid"] for c in r["citations"])]
    return failed[:MAX_FAILURES_SHOWN], len(failed)


def _failure_html(r: dict) -> str:
    gold = ", ".join(f"“{esc(g)}”" for g in r["gold"]) or "<em>unanswerable: should abstain</em>"
    quotes = "".join(
        f'<li class="{"hit" if c["hit"] else ""}{"" if c["valid"] else " invalid"}">'
        f'<span class="src">{esc(c["source"])} {c["start"]}-{c["end"]} ({len(c["quote"])} chars{"" if c["valid"] else ", NOT VERBATIM"})</span> '
        f'{highlight(c["quote"], r["gold"])}</li>'
        for c in r["citations"]
    )
    where = f" · conversation {esc(r['conversation'])}, turn {r['turn']}" if r.get("conversation") else ""
    rank = f" · gold in passage {r['gold_rank']}" if r.get("gold_rank") else (" · gold in no retrieved passage" if r["answerable"] else "")
    return (
        f'<div class="fail"><div class="q"><b>{esc(r["id"])}</b>{where}: {esc(r["question"])}</div>'
        f'<div>gold: {gold}</div>'
        f'<div>answer: {"<em>abstained</em>" if r["abstained"] else esc(r["answer"])} · confidence {r["confidence"]:.3f}{rank}</div>'
        + (f'<div class="invalid">error: {esc(r["error"])}</div>' if r.get("error") else "")
        + f"<ol>{quotes}</ol></div>"
    )


CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}
td.num{text-align:right;font-variant-numeric:tabular-nums}.def{color:#555}
.charts{display:flex;flex-wrap:wrap;gap:1em}.fail{border-top:1px solid #ddd;padding:.5em 0;font-size:13px}
mark{background:#ffe066}li.hit{border-left:3px solid #2ca02c;padding-left:4px}.invalid{color:#b00}.src{color:#777;font-size:11px}
"""


def to_html(results: list[RunResult], title: str = "Evaluation report") -> str:
    names = metric_names(results)
    head = "".join(f"<th>{esc(r.answerer)}</th>" for r in results)
    rows = []
    for n in names:
        cells = "".join(f'<td class="num">{esc(fmt_metric(r.metrics.get(n)))}</td>' for r in results)
        ns = "/".join(str(x) for x in sorted({r.metrics[n].n for r in results if n in r.metrics}))
        star = " ★" if n in HEADLINE else ""
        rows.append(f'<tr><td>{esc(n)}{star}</td><td class="num">{ns}</td>{cells}<td class="def">{esc(DEFINITIONS.get(n, ""))}</td></tr>')
    max_k = max((len(rec["passages"]) for r in results for rec in r.records), default=0)
    recall = line_chart({r.answerer: recall_curve(r.records, max_k) for r in results}, "k (passages retrieved)",
                        "recall@k", xmin=1, xmax=max(max_k, 2))
    tradeoff = line_chart(
        {r.answerer: [(p["false_abstention"], p["abstention_recall"]) for p in abstention_curve(r.records)] for r in results},
        "false_abstention (answerable, abstained)", "abstention_recall (unanswerable)", points=False)
    hists = "".join(
        f"<div><b>{esc(r.answerer)}</b><br>{histogram([x['latency_ms'] for x in r.records if x['latency_ms'] is not None], 'latency, ms')}</div>"
        for r in results)
    settings = "".join(f"<h3>{esc(r.answerer)}</h3><pre>{esc(json.dumps(r.settings, indent=1))}</pre>" for r in results)
    sections = []
    for r in results:
        shown, total = _failures(r)
        sections.append(f"<h3>{esc(r.answerer)}: {total} failed of {len(r.records)}"
                        f"{f' (first {len(shown)} shown)' if total > len(shown) else ''}</h3>"
                        + "".join(_failure_html(x) for x in shown))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title><style>{CSS}</style></head><body>
<h1>{esc(title)}</h1>
<p>{len(results[0].records)} questions · {esc(results[0].settings.get("golden", ""))} · documents {esc(results[0].settings.get("docs", ""))}</p>
<h2>Metrics</h2>
<p>Fractions in 0..1; [a-b] is a 95% bootstrap interval (fixed seed); ★ headline metrics.</p>
<table><tr><th>metric</th><th>n</th>{head}<th>definition</th></tr>{"".join(rows)}</table>
<h2>Charts</h2><div class="charts"><div><b>recall@k against k</b><br>{recall}</div>
<div><b>abstention trade-off over confidence thresholds</b><br>{tradeoff}</div></div>
<h2>Latency</h2><div class="charts">{hists}</div>
<h2>Failed questions</h2><p>Answerable: the first quote holds no gold answer; unanswerable: not abstained.
Gold answers are <mark>highlighted</mark> in the quotes; a green bar marks a quote that counts as a hit.</p>
{"".join(sections)}
<h2>Settings</h2>{settings}
</body></html>
"""


def write_html(results: list[RunResult], path: Path) -> None:
    Path(path).write_text(to_html(results), encoding="utf-8")
