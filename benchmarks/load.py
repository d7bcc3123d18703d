"""Load test of the web chat: N concurrent gradio_client users for a fixed time against `assistant serve`.

    python benchmarks/load.py [--clients 8] [--seconds 60] [--port 8250] [--api /respond]

Loopback only, bounded in time; it starts its own server (on the SQuAD articles, indexed into a
temp folder first) and stops it by its PID. Prints throughput, p50/p95 latency and errors.
"""

from __future__ import annotations

import argparse
import json
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
            run(args, questions, server)
        finally:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
            log.close()


def run(args, questions: list[str], server: subprocess.Popen) -> None:
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

    def user(i: int) -> None:
        client = Client(url, verbose=False)
        n = i
        while time.monotonic() < stop:
            q = questions[n % len(questions)]
            n += args.clients
            t = time.perf_counter()
            try:
                client.predict(q, api_name=args.api)
                with lock:
                    latencies.append((time.perf_counter() - t) * 1000)
            except Exception as exc:  # counted and shown: the load test reports errors, it does not stop
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])

    started = time.monotonic()
    threads = [threading.Thread(target=user, args=(i,)) for i in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    lat = sorted(latencies)
    p95 = lat[min(len(lat) - 1, round(0.95 * (len(lat) - 1)))] if lat else float("nan")
    print(f"{args.clients} clients, {elapsed:.0f} s: {len(lat)} answers, {len(lat) / elapsed:.2f} answers/s, "
          f"p50 {statistics.median(lat) if lat else float('nan'):.0f} ms, p95 {p95:.0f} ms, errors {len(errors)}")
    for e in sorted(set(errors))[:5]:
        print("  error:", e)


if __name__ == "__main__":
    main()
