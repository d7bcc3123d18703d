"""Retrieve: hybrid search, BM25 and dense vectors fused by reciprocal rank, as a langchain retriever."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, PrivateAttr

from ..index.chunk import Chunk
from ..index.index import Index
from ..index.lexical import LexicalCache, LexicalIndex
from ..index.terms import terms

RRF_K = 60
REFRESH_SECONDS = 1.0


@dataclass
class Passage:
    """A retrieved chunk with the evidence for it: each retriever's rank and score, and the fusion."""

    chunk: Chunk
    score: float
    dense: float = 0.0
    bm25: float = 0.0
    dense_rank: int | None = None
    bm25_rank: int | None = None


def with_best_of_each(ranked: list[Passage], k: int, each: int) -> list[Passage]:
    """The fused top `k` of `ranked`, then, in fused order, any later passage that BM25 or dense
    search alone ranks in its top `each`."""
    extra = [
        p for p in ranked[k:]
        if (p.bm25_rank is not None and p.bm25_rank < each) or (p.dense_rank is not None and p.dense_rank < each)
    ]
    return ranked[:k] + extra


class HybridRetriever(BaseRetriever):
    """Top-k passages by reciprocal rank fusion of BM25 and dense similarity.

    `search` returns `Passage` records with every score; `invoke` (the langchain API) returns
    `Document`s whose metadata carries the same figures.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    index: Index
    k: int = 5
    fetch: int = 30
    _lexical: LexicalIndex | None = PrivateAttr(default=None)
    _signature: frozenset = PrivateAttr(default=frozenset())
    _stamp: str | None = PrivateAttr(default=None)
    _checked: float = PrivateAttr(default=0.0)
    _stale: bool = PrivateAttr(default=False)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def invalidate(self) -> None:
        """Read the committed state again on the next search (the last stamp seen is kept, so a
        commit by another process is still recognised as one)."""
        self._checked, self._stale = 0.0, True

    def lexical(self) -> LexicalIndex:
        """The BM25 index, rebuilt when the committed documents changed (checked once a second)."""
        with self._lock:
            now = time.monotonic()
            if self._lexical is None or now - self._checked > REFRESH_SECONDS:
                stamp = self.index.stamp()
                if self._stamp is not None and stamp != self._stamp:
                    self.index.changed_elsewhere(stamp)
                if self._lexical is None or stamp != self._stamp or self._stale:
                    committed = self.index.committed()
                    signature = frozenset((s, m["digest"]) for s, m in committed.items())
                    if self._lexical is None or signature != self._signature:
                        self._lexical = self._load_or_build(committed, signature)
                        self._signature = signature
                    self._stamp, self._stale = stamp, False
                self._checked = now
            return self._lexical

    def _load_or_build(self, committed: dict[str, dict], signature: frozenset) -> LexicalIndex:
        cache = LexicalCache(self.index.settings.index_dir / "lexical" / self.index.name)
        lexical = cache.get(signature)
        if lexical is None:
            lexical = LexicalIndex(self.index.all_chunks(committed))
            cache.put(signature, lexical)
        return lexical

    def search(self, query: str, k: int | None = None, query_vector: list[float] | None = None, best_of_each: int = 0) -> list[Passage]:
        """The fused top `k`, then any further passage that BM25 or dense search alone ranks in
        its top `best_of_each` (fusion can drop a passage only one of them finds)."""
        k = k or self.k
        return with_best_of_each(self.ranked(query, query_vector, max(self.fetch, 3 * k)), k, best_of_each)

    def ranked(self, query: str, query_vector: list[float] | None = None, fetch: int | None = None) -> list[Passage]:
        """Every passage BM25 or dense search ranks in its top `fetch` (default `self.fetch`), in fused order."""
        fetch = fetch or self.fetch
        lexical = self.lexical()
        if not lexical.chunks:
            return []
        passages: dict[str, Passage] = {}
        for rank, (i, score) in enumerate(lexical.search(terms(query), fetch)):
            chunk = lexical.chunks[i]
            passages[chunk.id] = Passage(chunk, 1 / (RRF_K + rank + 1), bm25=score, bm25_rank=rank)
        vector = query_vector if query_vector is not None else self.index.embeddings.embed_query(query)
        rank = 0
        for chunk_id, similarity in self.index.nearest(vector, fetch):
            pos = lexical.by_id.get(chunk_id)
            if pos is None:
                continue  # not committed yet, or already replaced
            chunk = lexical.chunks[pos]
            p = passages.setdefault(chunk.id, Passage(chunk, 0.0))
            p.score += 1 / (RRF_K + rank + 1)
            p.dense, p.dense_rank = float(similarity), rank
            rank += 1
        return sorted(passages.values(), key=lambda p: -p.score)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [
            Document(
                page_content=p.chunk.text,
                id=p.chunk.id,
                metadata={**p.chunk.metadata(), "score": p.score, "dense": p.dense, "bm25": p.bm25},
            )
            for p in self.search(query)
        ]
