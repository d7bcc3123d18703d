"""Synthetic collections from real text: the SQuAD articles' sentences, shuffled into documents."""

from __future__ import annotations

import random
from pathlib import Path

from assistant.index.sentences import split_sentences

SQUAD = Path(__file__).resolve().parent.parent.parent / "shared" / "eval" / "squad2-dev-docs"


def real_sentences() -> list[str]:
    out: list[str] = []
    for path in sorted(SQUAD.glob("*.txt")):
        out += [s.text for s in split_sentences(path.read_text(encoding="utf-8")) if 40 < len(s.text) < 400]
    if not out:
        raise SystemExit(f"no SQuAD documents in {SQUAD}; the benchmarks build their collections from them")
    return out


def write_collection(folder: Path, n_docs: int, sentences_per_doc: int = 12, seed: int = 0) -> list[Path]:
    """`n_docs` documents of shuffled real sentences; a numbered lead sentence makes each distinct."""
    rng = random.Random(seed)
    pool = real_sentences()
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n_docs):
        body = rng.sample(pool, sentences_per_doc)
        path = folder / f"doc{i:06d}.txt"
        path.write_text(f"Record {i} of the synthetic archive. " + " ".join(body), encoding="utf-8")
        paths.append(path)
    return paths
