"""Query latency: p50/p95 of `Assistant.ask` (default path: the reader) at growing index sizes, the reader's own cost, peak memory, cold start.

    python benchmarks/query.py [--chunks 1000 10000 100000] [--questions 100] [--store DIR]

Collections are shuffled sentences of the SQuAD articles; questions are the SQuAD dev questions.
Cold start is the wall time of `assistant ask` from process start to the printed answer (the
process's own exit, a second later, is printed beside it). It runs after the in-process questions,
so the lexical index that process saved is there to load, as it is for any later process.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from assistant import Assistant, Settings  # noqa: E402
from assistant.index.index import Index  # noqa: E402
from assistant.ingest.scan import scan  # noqa: E402

from corpus import SQUAD, write_collection  # noqa: E402

CHUNKS_PER_DOC = 4  # 12 sentences of ~130 characters in 500-character chunks


def questions(n: int) -> list[str]:
    rows = [json.loads(line) for line in (SQUAD.parent / "squad2-dev-golden.jsonl").read_text().splitlines() if line]
    return [r["question"] for r in rows][:n]


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def peak_rss_mib(proc: subprocess.Popen) -> float:
    """The child's own high-water mark, read until it exits. Not getrusage: a child's ru_maxrss
    starts from the forking parent's size (Linux keeps it across exec), here the benchmark's own."""
    peak = 0.0
    while proc.poll() is None:
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
        except OSError:
            break
        found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
        if found:
            peak = max(peak, int(found.group(1)) / 1024)
        time.sleep(0.005)
    return peak


def time_the_reader(bot: Assistant) -> list[tuple[float, int]]:
    """(ms, passages) of every reader call from now on: the reader's own share of `ask`."""
    calls: list[tuple[float, int]] = []
    if bot.reader is None:
        return calls
    inner = bot.reader.read

    def timed(question, passages, *args, **kwargs):
        t = time.perf_counter()
        out = inner(question, passages, *args, **kwargs)
        calls.append(((time.perf_counter() - t) * 1000, len(passages)))
        return out

    bot.reader.read = timed
    return calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--questions", type=int, default=100)
    parser.add_argument("--store", type=Path, help="keep the collection and its index here and reuse them next time "
                        "(building 100k chunks takes most of an hour); default: a temp folder")
    args = parser.parse_args()
    qs = questions(args.questions)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-query-") as tmp:
        root = args.store or Path(tmp)
        folder, index_dir = root / "docs", root / "index"
        for target in sorted(args.chunks):
            # Grow one collection: documents already written and indexed are kept.
            write_collection(folder, max(1, target // CHUNKS_PER_DOC))
            settings = Settings(docs_dir=folder, index_dir=index_dir)
            t = time.perf_counter()
            Index(settings).update(scan(folder)[0])
            build = time.perf_counter() - t
            bot = Assistant(settings, auto_index=False)
            n_chunks = len(bot.index.all_chunks())
            for q in qs[:5]:
                bot.ask(q)  # warm: BM25 built, caches filled
            reading = time_the_reader(bot)
            latencies = []
            for q in qs:
                t = time.perf_counter()
                bot.ask(q)
                latencies.append((time.perf_counter() - t) * 1000)
            cmd = [str(Path(sys.executable).parent / "assistant"), "ask", qs[0], "--docs", str(folder), "--index", str(index_dir)]
            t = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            proc.stdout.readline()  # the answer's first line
            cold = time.perf_counter() - t
            peak = peak_rss_mib(proc)  # the rest of the answer is a few hundred bytes: no pipe stalls
            proc.stdout.read()
            if proc.wait() != 0:
                raise SystemExit(f"{' '.join(cmd)} failed with {proc.returncode}")
            exit_s = time.perf_counter() - t
            read_ms = statistics.median([ms for ms, _ in reading]) if reading else 0.0
            read_n = statistics.mean([n for _, n in reading]) if reading else 0.0
            rows.append((n_chunks, statistics.median(latencies), percentile(latencies, 95), peak, cold, build, read_ms, read_n))
            print(f"{n_chunks:>7} chunks: ask p50 {rows[-1][1]:6.1f} ms, p95 {rows[-1][2]:6.1f} ms; "
                  f"reader p50 {read_ms:5.1f} ms for {read_n:.1f} passages per question; "
                  f"peak RSS of `assistant ask` {peak:6.0f} MiB; cold start {cold:4.1f} s (process exit at {exit_s:4.1f} s); "
                  f"index build {build:6.0f} s", flush=True)
    print("\n| chunks | ask p50 | ask p95 | reader p50 (passages) | peak RSS (`assistant ask`) | cold start |\n"
          "| --- | --- | --- | --- | --- | --- |")
    for n, p50, p95, peak, cold, _, read_ms, read_n in rows:
        print(f"| {n:,} | {p50:.1f} ms | {p95:.1f} ms | {read_ms:.1f} ms ({read_n:.1f}) | {peak:.0f} MiB | {cold:.1f} s |")


if __name__ == "__main__":
    main()
