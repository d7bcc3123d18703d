"""Load test of the web chat: N concurrent gradio_client users for a fixed time against `assistant serve`,
while another process re-indexes changed files.

    python benchmarks/load.py [--clients 8] [--seconds 60] [--port 8250] [--writer 10] [--api /respond]

Loopback only, bounded in time; it starts its own server (on the SQuAD articles, indexed into a
temp folder first) and stops it by its PID. Every `--writer` seconds (0: never) a writer changes
two of the files (a new first line, so every old offset moves) and runs `assistant index` in a
process of its own. Prints throughput, p50/p95 latency, errors, re-index runs, and stale
citations: quotes that are not the cited file's text at their offsets in any version of the file
committed while the answer was being made.
"""

from __future__ import annotations

import argparse
import html
import json
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import SQUAD  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--port", type=int, default=8250)
    parser.add_argument("--api", default="/respond", help="the chat endpoint's api_name (see ui.py)")
    parser.add_argument("--writer", type=float, default=10, help="seconds between re-index runs of changed files (0: none)")
    args = parser.parse_args()
    rows = [json.loads(line) for line in (SQUAD.parent / "squad2-dev-golden.jsonl").read_text().splitlines() if line]
    questions = [r["question"] for r in rows]
    exe = Path(sys.executable).parent / "assistant"
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        docs, index = Path(tmp) / "docs", Path(tmp) / "index"
        shutil.copytree(SQUAD, docs)
        subprocess.run([str(exe), "index", "--docs", str(docs), "--index", str(index)], check=True, capture_output=True)
        log = open(Path(tmp) / "serve.log", "wb")
        server = subprocess.Popen(
            [str(exe), "serve", "--host", "127.0.0.1", "--port", str(args.port), "--docs", str(docs), "--index", str(index)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        try:
            run(args, questions, server, docs, index)
        finally:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
            log.close()


# The newest turn of the source panel (ui_render.source_panel) and its cited passages.
TURN = re.compile(r'<section class="turn" data-turn="\d+">(.*?)</section>', re.DOTALL)
SOURCE = re.compile(
    r'<div class="source-head">\[\d+\] (.*?) · characters (\d+)–(\d+)</div><div class="source-text">.*?<mark>(.*?)</mark>',
    re.DOTALL,
)


class Writer:
    """Changes files and re-indexes them in another process; keeps every committed version."""

    def __init__(self, docs: Path, index: Path, every: float) -> None:
        self.docs, self.index, self.every = docs, index, every
        self.versions: dict[str, list[tuple[float, str]]] = {
            p.name: [(0.0, p.read_text(encoding="utf-8"))] for p in docs.glob("*.txt")
        }
        self.runs: list[float] = []
        self.failures: list[str] = []

    def loop(self, stop: float) -> None:
        rng = random.Random(0)
        exe = Path(sys.executable).parent / "assistant"
        n = 0
        while time.monotonic() + self.every < stop:
            time.sleep(self.every)
            n += 1
            changed = {}
            for name in rng.sample(sorted(self.versions), 2):
                text = f"Revision {n} of this article.\n" + self.versions[name][-1][1]
                (self.docs / name).write_text(text, encoding="utf-8")
                changed[name] = text
            t = time.perf_counter()
            out = subprocess.run([str(exe), "index", "--docs", str(self.docs), "--index", str(self.index)],
                                 capture_output=True, text=True)
            if out.returncode:
                self.failures.append(out.stderr[-300:])
            self.runs.append(time.perf_counter() - t)
            done = time.time()
            for name, text in changed.items():
                self.versions[name].append((done, text))

    def committed_before(self, moment: float) -> bool:
        return any(t and t < moment for versions in self.versions.values() for t, _ in versions)

    def stale(self, source: str, start: int, end: int, quote: str, began: float, ended: float) -> bool:
        """No version of `source` that was current at some moment of [began, ended] holds `quote` there."""
        versions = self.versions.get(source, [])
        live = [text for i, (t, text) in enumerate(versions)
                if t <= ended and (i + 1 == len(versions) or versions[i + 1][0] >= began)]
        return not any(text[start:end] == quote for text in live)


def run(args, questions: list[str], server: subprocess.Popen, docs: Path, index: Path) -> None:
    from gradio_client import Client

    url = f"http://127.0.0.1:{args.port}/"
    deadline = time.monotonic() + 120
    while True:
        if server.poll() is not None:
            raise SystemExit(f"assistant serve exited with {server.returncode}")
        try:
            Client(url, verbose=False)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise SystemExit("assistant serve did not answer within 120 s") from None
            time.sleep(0.5)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop = time.monotonic() + args.seconds
    writer = Writer(docs, index, args.writer)
    counts = [0, 0, 0]  # citations checked, stale ones, ones of answers begun after a re-index committed

    def user(i: int) -> None:
        client = Client(url, verbose=False)
        n = i
        while time.monotonic() < stop:
            q = questions[n % len(questions)]
            n += args.clients
            t = time.perf_counter()
            began = time.time()
            try:
                _, panel, *_ = client.predict(q, api_name=args.api)
                ended = time.time()
                newest = TURN.search(panel or "")
                found = SOURCE.findall(newest.group(1)) if newest else []
                with lock:
                    latencies.append((time.perf_counter() - t) * 1000)
                    for source, start, end, quote in found:
                        counts[0] += 1
                        if writer.stale(html.unescape(source), int(start), int(end), html.unescape(quote), began, ended):
                            counts[1] += 1
                        if writer.committed_before(began):
                            counts[2] += 1
            except Exception as exc:  # counted and shown: the load test reports errors, it does not stop
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])

    started = time.monotonic()
    threads = [threading.Thread(target=user, args=(i,)) for i in range(args.clients)]
    if args.writer > 0:
        threads.append(threading.Thread(target=writer.loop, args=(stop,)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    citations, stale, after = counts
    lat = sorted(latencies)
    p95 = lat[min(len(lat) - 1, round(0.95 * (len(lat) - 1)))] if lat else float("nan")
    print(f"{args.clients} clients, {elapsed:.0f} s: {len(lat)} answers, {len(lat) / elapsed:.2f} answers/s, "
          f"p50 {statistics.median(lat) if lat else float('nan'):.0f} ms, p95 {p95:.0f} ms, errors {len(errors)}")
    if args.writer > 0:
        runs = ", ".join(f"{r:.1f}" for r in writer.runs)
        print(f"writer: {len(writer.runs)} re-index runs of 2 changed files ({runs} s), {len(writer.failures)} failed; "
              f"citations checked {citations} ({after} of answers begun after a re-index had committed), stale {stale}")
    for e in sorted(set(errors))[:5] + writer.failures[:3]:
        print("  error:", e)


if __name__ == "__main__":
    main()
