"""Ingest throughput: `assistant index` chunks/s against raw SentenceTransformer.encode on the same chunks.

    python benchmarks/ingest.py [--docs 100]

Prints the figures; the ratio is how close indexing gets to the model's limit on this machine: the
raw encode of the same chunks on every core (`index_threads`, the setting an index run uses).
Sentence vectors come from the same forward pass as their chunk's, so the chunk encode is the floor.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import write_collection  # noqa: E402

from assistant import Settings  # noqa: E402
from assistant.chunk import chunk_document  # noqa: E402
from assistant.embed import SentenceEmbeddings  # noqa: E402
from assistant.ingest import scan  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        folder, index_dir = Path(tmp) / "docs", Path(tmp) / "index"
        write_collection(folder, args.docs)
        settings = Settings(docs_dir=folder, index_dir=index_dir)
        docs, _ = scan(folder)
        chunks = [c.text for d in docs for c in chunk_document(d, settings.chunk_size, settings.chunk_overlap)]
        embeddings = SentenceEmbeddings(settings.embedding_model)
        raw = {}
        for threads in sorted({1, settings.index_threads}):
            embeddings.encode(["warm up"], threads=threads)
            t = time.perf_counter()
            embeddings.encode(chunks, threads=threads)
            raw[threads] = time.perf_counter() - t
        raw_chunks = raw[settings.index_threads]

        n_chunks = len(chunks)
        cmd = [str(Path(sys.executable).parent / "assistant"), "index", "--docs", str(folder), "--index", str(index_dir)]
        t = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - t
        # tqdm's final average rate covers the indexing loop itself, without process start-up.
        rates = re.findall(r"([\d.]+)chunk/s", out.stderr)
        loop_s = n_chunks / float(rates[-1]) if rates else wall

    n = len(chunks)
    print(f"collection: {len(docs)} docs, {n} chunks")
    for threads, seconds in raw.items():
        print(f"raw encode, {threads} torch thread(s):     {n / seconds:8.1f} chunks/s ({seconds:.1f} s)")
    print(f"assistant index, indexing loop:   {n / max(loop_s, 1e-9):8.1f} chunks/s ({loop_s:.1f} s, tqdm's average)")
    print(f"assistant index, whole command:   {n / wall:8.1f} chunks/s ({wall:.1f} s incl. process start)")
    print(f"ratio to raw encode on {settings.index_threads} thread(s): {raw_chunks / max(loop_s, 1e-9):6.2f}  (loop)")
    print(f"ratio incl. process start:        {raw_chunks / wall:8.2f}")


if __name__ == "__main__":
    main()
