"""Lexical index: BM25 over the committed chunks, kept on disk so a new process starts fast.

Chroma has no BM25, so every process builds one from all committed chunks. At 100k chunks that
build is most of a process's start-up; a copy saved under the index folder, named by the set of
committed documents it covers, is loaded instead whenever that set has not changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import threading
from pathlib import Path

import bm25s
import numpy as np

from ..atomic import new_folder
from .chunk import Chunk
from .terms import terms

log = logging.getLogger(__name__)

CACHE_FORMAT = "1"


class LexicalIndex:
    """BM25 over the committed chunks, with the term statistics sentence scoring reuses."""

    def __init__(self, chunks: list[Chunk], bm25: bm25s.BM25 | None = None, df: dict[str, int] | None = None) -> None:
        self.chunks = chunks
        self.by_id = {c.id: i for i, c in enumerate(chunks)}
        if bm25 is None or df is None:
            tokens = [terms(c.text) or ["\x00"] for c in chunks]
            bm25 = bm25s.BM25()
            if chunks:
                bm25.index(tokens, show_progress=False)
            df = {}
            for toks in tokens:
                for t in set(toks):
                    df[t] = df.get(t, 0) + 1
        self.bm25, self._df, self._n = bm25, df, max(len(chunks), 1)

    def idf(self, term: str) -> float:
        return math.log(1 + (self._n - self._df.get(term, 0) + 0.5) / (self._df.get(term, 0) + 0.5))

    def coverage(self, query_terms: set[str], text: str) -> float:
        """The share of the query's terms, weighted by idf, that `text` holds: a passage about
        another name than the one asked for lacks the rarest term even when everything else fits."""
        total = sum(self.idf(t) for t in query_terms)
        if not total:
            return 0.0
        present = set(terms(text))
        return sum(self.idf(t) for t in query_terms if t in present) / total

    def search(self, query_terms: list[str], k: int) -> list[tuple[int, float]]:
        if not self.chunks or not query_terms:
            return []
        scores = self.bm25.get_scores(query_terms)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [(int(i), float(scores[i])) for i in top if scores[i] > 0]

    # On disk -----------------------------------------------------------------------------------

    def save(self, folder: Path) -> None:
        """Write to `folder` whole or not at all (a temp folder renamed into place)."""
        try:
            with new_folder(folder) as tmp:
                if self.chunks:
                    self.bm25.save(str(tmp / "bm25"), show_progress=False)
                with open(tmp / "chunks.jsonl", "w", encoding="utf-8") as f:
                    for c in self.chunks:
                        f.write(json.dumps([c.id, c.source, c.digest, c.start, c.end, c.text], ensure_ascii=False) + "\n")
                (tmp / "df.json").write_text(json.dumps(self._df, ensure_ascii=False), encoding="utf-8")
        except OSError:
            if not folder.is_dir():  # another process may have saved the same one first
                raise

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex:
        with open(folder / "chunks.jsonl", encoding="utf-8") as f:
            chunks = [Chunk(*json.loads(line)) for line in f]
        df = json.loads((folder / "df.json").read_text(encoding="utf-8"))
        bm25 = bm25s.BM25.load(str(folder / "bm25"), show_progress=False) if chunks else bm25s.BM25()
        return cls(chunks, bm25, df)


def cache_key(signature: frozenset) -> str:
    """Names the committed documents (source, digest) a lexical index covers."""
    text = "\n".join(f"{s}\x1f{d}" for s, d in sorted(signature))
    return hashlib.sha1(f"{CACHE_FORMAT}\n{text}".encode()).hexdigest()[:20]


class LexicalCache:
    """Saved lexical indexes of one collection, one folder per set of committed documents."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def get(self, signature: frozenset) -> LexicalIndex | None:
        path = self.folder / cache_key(signature)
        if not path.is_dir():
            return None
        try:
            return LexicalIndex.load(path)
        except Exception as exc:  # a damaged copy costs a rebuild, never an answer
            log.warning("ignoring the saved lexical index %s (%s); rebuilding it", path, exc)
            shutil.rmtree(path, ignore_errors=True)
            return None

    def put(self, signature: frozenset, lexical: LexicalIndex) -> threading.Thread:
        """Save in the background, then drop the copies of older states."""
        thread = threading.Thread(target=self._save, args=(cache_key(signature), lexical), daemon=True, name="lexical-save")
        thread.start()
        return thread

    def _save(self, key: str, lexical: LexicalIndex) -> None:
        try:
            path = self.folder / key
            if not path.is_dir():
                lexical.save(path)
            for old in self.folder.iterdir():
                if old.name != key and not old.name.startswith(".tmp-"):
                    shutil.rmtree(old, ignore_errors=True)
        except OSError as exc:  # a read-only or full disk: the next process builds its own
            log.warning("could not save the lexical index under %s: %s", self.folder, exc)
