"""Ingest throughput: `assistant index` chunks/s against raw SentenceTransformer.encode on the same chunks.

    python benchmarks/ingest.py [--docs 100] [--repeat 3]

Prints the figures; the ratio is how close indexing gets to the model's limit on this machine: the
raw encode of the same chunks on every core (`index_threads`, the setting an index run uses).
Sentence vectors come from the same forward pass as their chunk's, so the chunk encode is the floor.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from assistant import Settings  # noqa: E402
from assistant.index.chunk import chunk_document  # noqa: E402
from assistant.index.embed import SentenceEmbeddings  # noqa: E402
from assistant.ingest.scan import scan  # noqa: E402

from corpus import write_collection  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3, help="alternating rounds of raw encode and index run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        folder = Path(tmp) / "docs"
        write_collection(folder, args.docs)
        settings = Settings(docs_dir=folder, index_dir=Path(tmp) / "index")
        docs, _ = scan(folder)
        chunks = [c.text for d in docs for c in chunk_document(d, settings.chunk_size, settings.chunk_overlap)]
        embeddings = SentenceEmbeddings(settings.embedding_model)
        model = embeddings.model
        threads = settings.index_threads
        torch.set_num_threads(1)
        t = time.perf_counter()
        model.encode(chunks)
        one_thread = time.perf_counter() - t
        torch.set_num_threads(threads)
        # Raw encode and index run alternate, so a slow spell of the machine hits both alike.
        rounds = []
        for r in range(args.repeat):
            # sentence-transformers as it comes (batches of 32), and at the index run's batch size.
            t = time.perf_counter()
            model.encode(chunks)
            raw_default = time.perf_counter() - t
            t = time.perf_counter()
            model.encode(chunks, batch_size=embeddings.batch_size)
            raw = time.perf_counter() - t
            index_dir = Path(tmp) / f"index{r}"
            cmd = [str(Path(sys.executable).parent / "assistant"), "index", "--docs", str(folder), "--index", str(index_dir)]
            t = time.perf_counter()
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            wall = time.perf_counter() - t
            # tqdm's final average rate covers the indexing loop itself, without process start-up.
            rates = re.findall(r"([\d.]+)chunk/s", out.stderr)
            loop = len(chunks) / float(rates[-1]) if rates else wall
            rounds.append((raw_default, raw, loop, wall))
            shutil.rmtree(index_dir)

    n = len(chunks)
    bs = embeddings.batch_size
    print(f"collection: {len(docs)} docs, {n} chunks; {args.repeat} rounds; raw encodes warmed up by a 1-thread pass "
          f"({n / one_thread:.1f} chunks/s)")
    for r, (raw_default, raw, loop, wall) in enumerate(rounds, 1):
        print(
            f"round {r}: SentenceTransformer.encode on {threads} thread(s): {n / raw_default:6.1f} chunks/s (batch 32), "
            f"{n / raw:6.1f} (batch {bs}); assistant index loop {n / loop:6.1f} chunks/s (whole command {n / wall:5.1f})"
        )
    for label, col in (("batch 32, sentence-transformers' default", 0), (f"batch {bs}, the index run's", 1)):
        ratios = sorted(r[col] / r[2] for r in rounds)
        print(f"ratio of the indexing loop to the raw encode ({label}): median {statistics.median(ratios):.2f} "
              f"(range {ratios[0]:.2f}-{ratios[-1]:.2f})")
    print(f"ratio incl. process start (batch {bs}), median: {statistics.median(r[1] / r[3] for r in rounds):.2f}")

if __name__ == "__main__":
    main()
