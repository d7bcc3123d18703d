"""Recall under churn: after rounds of re-indexing changed files, is every unchanged chunk still
the first dense hit for its own text?

Unchanged chunks are those of files never changed; each is searched by its own vector.

    python benchmarks/churn.py [--chunks 10000] [--rounds 20] [--change 0.05]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from assistant import Settings  # noqa: E402
from assistant.index.index import Index  # noqa: E402
from assistant.ingest.scan import scan  # noqa: E402

from corpus import write_collection  # noqa: E402

CHUNKS_PER_DOC = 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--change", type=float, default=0.05, help="share of files changed per round")
    args = parser.parse_args()
    rng = random.Random(1)
    with tempfile.TemporaryDirectory(prefix="bench-churn-") as tmp:
        folder = Path(tmp) / "docs"
        paths = write_collection(folder, max(1, args.chunks // CHUNKS_PER_DOC))
        index = Index(Settings(docs_dir=folder, index_dir=Path(tmp) / "index"))
        t = time.perf_counter()
        index.update(scan(folder)[0])
        print(f"built {len(index.all_chunks())} chunks in {time.perf_counter() - t:.0f} s", flush=True)
        changed: set[Path] = set()
        for r in range(args.rounds):
            for path in rng.sample(paths, max(1, int(args.change * len(paths)))):
                path.write_text(f"Revision {r} of this record. " + path.read_text(encoding="utf-8"), encoding="utf-8")
                changed.add(path)
            t = time.perf_counter()
            report = index.update(scan(folder)[0])
            print(f"round {r + 1}: {len(report.updated)} files re-indexed in {time.perf_counter() - t:.0f} s", flush=True)
        names = {p.name for p in changed}
        chunks = index.all_chunks()
        # Shuffled sentences repeat across documents, so some short chunks have a twin with the same
        # text (and vector): either twin first is a hit, and twins are counted apart.
        copies = Counter(c.text for c in chunks)
        texts = {c.id: c.text for c in chunks}
        stable = [c for c in chunks if c.source not in names]
        vectors = index.embeddings.encode([c.text for c in stable])
        misses = 0
        for chunk, vector in zip(stable, vectors):
            hit = index.nearest(vector.tolist(), 1)
            misses += not hit or (hit[0][0] != chunk.id and texts.get(hit[0][0]) != chunk.text)
    twins = sum(copies[c.text] > 1 for c in stable)
    print(f"unchanged chunks: {len(stable)} ({twins} with a twin of the same text); first hit for their own text: "
          f"{len(stable) - misses}; misses: {misses} ({args.rounds} rounds, {len(changed)} files changed at least once)")


if __name__ == "__main__":
    main()
