"""Textbook baselines: 1000/200 `RecursiveCharacterTextSplitter` chunks, top-k by BM25 (`rank_bm25`)
or by the same embedding model in Chroma, and the best-matching sentence of the top passages quoted.

They never abstain and answer with the whole quoted sentence. They return the same `Answer` and
`Citation` records as the assistant, so every metric applies to them unchanged. Each baseline cites
its three best sentences (by cosine to the question, among the top-4 passages): generous to the
baseline, so any lead of ours over it is not an artefact of fewer quotes. Questions are embedded
the way ours are (the model's checked ONNX export, `question_embeddings`) and passages the way an
index run embeds ours (torch on the index threads), so latencies compare like with like.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass

import numpy as np
from langchain_chroma import Chroma
from langchain_core.embeddings import Embeddings
from langchain_text_splitters import RecursiveCharacterTextSplitter
from rank_bm25 import BM25Okapi

from ..errors import EvalError
from ..index.embed import SentenceEmbeddings
from ..index.index import HNSW, client_for
from ..index.sentences import split_sentences
from ..ingest.scan import SourceDocument
from ..records import Answer, Citation
from ..settings import Settings

CHUNK_SIZE, CHUNK_OVERLAP = 1000, 200
QUOTE_PASSAGES = 4
QUOTES = 3
KINDS = ("bm25", "dense")
_WORD = re.compile(r"\w+")


def question_embeddings(settings: Settings) -> SentenceEmbeddings:
    """The embedder `Assistant` makes: questions by the ONNX export once there is one (the first
    passage encode writes it), bulk encodes given `threads` by torch."""
    return SentenceEmbeddings(settings.embedding_model, threads=settings.threads, cache_dir=settings.onnx_cache())


class _PassageEmbeddings(Embeddings):
    """Langchain's view of `embeddings` for the dense store: passages by torch on `threads`, as an index run."""

    def __init__(self, embeddings: SentenceEmbeddings, threads: int | None) -> None:
        self.embeddings, self.threads = embeddings, threads

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embeddings.encode(list(texts), threads=self.threads).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embeddings.embed_query(text)


def tokenize(text: str) -> list[str]:
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class BaselineChunk:
    id: str
    source: str
    start: int
    end: int
    text: str


def split(docs: list[SourceDocument]) -> list[BaselineChunk]:
    splitter = RecursiveCharacterTextSplitter(chunk_size=CHUNK_SIZE, chunk_overlap=CHUNK_OVERLAP, add_start_index=True)
    chunks = []
    for doc in docs:
        for piece in splitter.create_documents([doc.text]):
            start = piece.metadata["start_index"]
            if start < 0:  # langchain could not place it; the textbook recipe drops such a piece
                continue
            end = start + len(piece.page_content)
            cid = hashlib.sha1(f"{doc.source}\x00{doc.digest}\x00{start}\x00{end}".encode()).hexdigest()
            chunks.append(BaselineChunk(cid, doc.source, start, end, piece.page_content))
    return chunks


class SentenceBank:
    """Every sentence of the documents with its vector, embedded once per run and shared by both baselines."""

    def __init__(self, docs: list[SourceDocument], embeddings: SentenceEmbeddings, threads: int | None = None) -> None:
        self.texts = {d.source: d.text for d in docs}
        self.by_source: dict[str, list] = {}
        flat = []
        for doc in docs:
            sentences = split_sentences(doc.text)
            self.by_source[doc.source] = [(s, len(flat) + i) for i, s in enumerate(sentences)]
            flat.extend(s.text for s in sentences)
        self.vectors = embeddings.encode(flat, threads=threads)

    def in_chunk(self, chunk: BaselineChunk):
        """Sentences overlapping the chunk, quoted whole from the document (so always verbatim)."""
        return [(s, i) for s, i in self.by_source.get(chunk.source, []) if s.start < chunk.end and s.end > chunk.start]


class TextbookBaseline:
    """`ask(question, k)` like `Assistant.ask`, with the textbook recipe of retrieval `kind`."""

    def __init__(self, kind: str, settings: Settings, docs: list[SourceDocument], embeddings: SentenceEmbeddings,
                 bank: SentenceBank | None = None) -> None:
        if kind not in KINDS:
            raise EvalError(f"unknown baseline {kind!r}; choose one of {', '.join(KINDS)}")
        self.kind = kind
        self.embeddings = embeddings
        self.chunks = split(docs)
        self.bank = bank or SentenceBank(docs, embeddings, settings.index_threads)
        if kind == "bm25":
            self.bm25 = BM25Okapi([tokenize(c.text) or ["\x00"] for c in self.chunks])
        else:
            self.store = self._dense_store(settings)

    def _dense_store(self, settings: Settings) -> Chroma:
        """Its own Chroma collection, updated by content: only new chunk ids are embedded."""
        digest = hashlib.sha1(f"{settings.embedding_model}|{CHUNK_SIZE}|{CHUNK_OVERLAP}".encode()).hexdigest()[:10]
        store = Chroma(
            collection_name=f"baseline-dense-c{CHUNK_SIZE}o{CHUNK_OVERLAP}-{digest}",
            embedding_function=_PassageEmbeddings(self.embeddings, settings.index_threads),
            client=client_for(settings),
            collection_configuration=HNSW,
        )
        have = set(store.get(include=[])["ids"])
        want = {c.id: c for c in self.chunks}
        stale = sorted(have - set(want))
        if stale:
            store.delete(ids=stale)
        new = [c for cid, c in want.items() if cid not in have]
        for i in range(0, len(new), 256):
            part = new[i : i + 256]
            store.add_texts([c.text for c in part], [{"source": c.source, "start": c.start} for c in part], ids=[c.id for c in part])
        self.by_id = want
        return store

    def retrieve(self, question: str, qvec: np.ndarray, k: int) -> list[BaselineChunk]:
        if self.kind == "bm25":
            scores = self.bm25.get_scores(tokenize(question))
            return [self.chunks[i] for i in np.argsort(-scores, kind="stable")[:k]]
        hits = self.store.similarity_search_by_vector(qvec.tolist(), k=k)
        return [self.by_id[d.id] for d in hits if d.id in self.by_id]

    def ask(self, question: str, k: int = 10) -> Answer:
        started = time.perf_counter()
        qvec = self.embeddings.encode([question])[0]
        passages = self.retrieve(question, qvec, k)
        seen: dict[tuple[str, int], tuple] = {}
        for chunk in passages[:QUOTE_PASSAGES]:
            for s, i in self.bank.in_chunk(chunk):
                seen.setdefault((chunk.source, s.start), (chunk.source, s, float(self.bank.vectors[i] @ qvec)))
        ranked = sorted(seen.values(), key=lambda t: -t[2])[:QUOTES]
        citations = [Citation(n, src, s.start, s.end, s.text, round(score, 4)) for n, (src, s, score) in enumerate(ranked, 1)]
        answer = Answer(
            question=question,
            answer=citations[0].quote if citations else "",
            abstained=False,
            citations=citations,
            confidence=max(0.0, min(1.0, ranked[0][2])) if ranked else 0.0,
            query=question,
            passages=[{"source": c.source, "start": c.start, "end": c.end, "id": c.id, "text": c.text} for c in passages],
        )
        answer.latency_ms = (time.perf_counter() - started) * 1000
        return answer
