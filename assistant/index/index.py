"""Embed and index: chunks, their sentences and the documents themselves in Chroma.

Three collections share one name stem (which hashes the model and chunking settings):
`<stem>` holds the chunks (the passages retrieval returns), `<stem>-sentences` the sentence
vectors used to pick quotes, and `<stem>-documents` one record per document with its full text.
A document record is written last and removed first: it is the commit mark. Readers only see
chunks whose digest matches a committed document, so a crash or a concurrent index run never
exposes a half-indexed document, and the next run finishes or cleans up what was left.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from ..errors import IndexStoreError  # noqa: F401  (importable from here too)
from ..ingest.scan import SourceDocument, page_at
from ..settings import Settings
from .chunk import Chunk, chunk_document, content_id
from .embed import SentenceEmbeddings
from .sentences import Sentence, split_sentences
from .store import Store, client_for, forget_clients, reopened_client  # noqa: F401  (forget_clients: importable from here too)

log = logging.getLogger(__name__)

# Default HNSW settings lost the true best match after re-upserts (see STACK.md); these did not.
HNSW = {"hnsw": {"space": "cosine", "ef_search": 200, "ef_construction": 200, "num_threads": 1}}
# Sentence vectors and document records are read by id, never searched: a sparse graph is enough,
# and building a good one was most of the write time of an index run.
HNSW_UNSEARCHED = {"hnsw": {"space": "cosine", "ef_construction": 8, "max_neighbors": 4, "ef_search": 8, "num_threads": 1}}
STAMP_ID = "~stamp"  # a record of the documents collection that is no document
VERSIONS_KEPT = 256  # document versions whose text a process keeps in memory


@dataclass
class IndexReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    chunks: int = 0

    @property
    def indexed(self) -> int:
        return len(self.added) + len(self.updated) + len(self.unchanged)


class Index:
    """The persisted store of one collection of documents."""

    def __init__(self, settings: Settings, embeddings: SentenceEmbeddings | None = None) -> None:
        self.settings = settings
        self.embeddings = embeddings or SentenceEmbeddings(
            settings.embedding_model, threads=settings.threads, cache_dir=settings.onnx_cache()
        )
        stem = settings.collection_name()
        try:
            client = client_for(settings)
        except Exception as exc:  # chromadb raises a variety of errors for a bad path or server
            where = f"{settings.chroma_host}:{settings.chroma_port}" if settings.chroma_host else str(settings.index_dir)
            raise IndexStoreError(f"cannot open the Chroma store at {where}: {exc}") from exc
        self.name = stem
        self._open(client)
        self._own_stamps: OrderedDict[str, None] = OrderedDict()
        # Texts and pages of document versions, keyed by (source, digest): a version never changes,
        # so a cached one is never stale; which version is current is read from the store.
        self._versions: OrderedDict[tuple[str, str], tuple[str, tuple[int, ...]]] = OrderedDict()
        self._lock = threading.Lock()

    def _open(self, client) -> None:
        self._client = client
        self.chunks = self._store(client, self.name)
        self.sentences = self._store(client, f"{self.name}-sentences", HNSW_UNSEARCHED)
        self.documents = self._store(client, f"{self.name}-documents", HNSW_UNSEARCHED)

    def changed_elsewhere(self, stamp: str) -> None:
        """Another process (or another `Index` of this one) committed `stamp`: an embedded store is
        opened afresh, so searches see the new rows; a server always has them."""
        if self.settings.chroma_host or stamp in self._own_stamps:
            return
        self._open(reopened_client(self.settings, self._client))

    def _store(self, client, name: str, configuration: dict = HNSW) -> Store:
        return Store(client, name, configuration)

    # Reading -----------------------------------------------------------------------------------

    def committed(self) -> dict[str, dict]:
        """Committed documents: source -> metadata (digest, chunks)."""
        got = self.documents.get_all(["metadatas"])
        return {m["source"]: m for m in got["metadatas"] if "source" in m}

    def has_documents(self) -> bool:
        """Whether any document is committed: two records read, where `committed` reads them all
        (0.9 s at 30k documents)."""
        got = self.documents.get(limit=2, include=[])
        return any(i != STAMP_ID for i in got["ids"])

    def stamp(self) -> str:
        """Changes whenever documents are committed or removed, by any process sharing the store:
        one record to read, where listing the committed documents grows with the collection."""
        got = self.documents.get(ids=[STAMP_ID], include=["metadatas"])
        return got["metadatas"][0]["stamp"] if got["ids"] else ""

    def _touch(self) -> None:
        unit = np.full(self.embeddings.dimension, self.embeddings.dimension**-0.5, dtype=np.float32)
        stamp = uuid.uuid4().hex
        with self._lock:
            self._own_stamps[stamp] = None
            while len(self._own_stamps) > 64:
                self._own_stamps.popitem(last=False)
        self.documents.upsert([STAMP_ID], [unit], [{"stamp": stamp}], [""])

    def current_digests(self, sources: Iterable[str]) -> dict[str, str]:
        """The committed version (digest) of each of `sources` that is committed, as of now: one read,
        whoever wrote last."""
        sources = list(dict.fromkeys(sources))
        if not sources:
            return {}
        got = self.documents.get(ids=[content_id(s) for s in sources], include=["metadatas"])
        return {m["source"]: m["digest"] for m in got["metadatas"] if m and "source" in m}

    def _version(self, source: str, digest: str | None) -> tuple[str, tuple[int, ...]] | None:
        """Text and page starts of `source` at version `digest` (default: the current one), or None
        when that version is not the committed one (changed or removed since)."""
        if digest is not None:
            with self._lock:
                if (source, digest) in self._versions:
                    self._versions.move_to_end((source, digest))
                    return self._versions[(source, digest)]
        got = self.documents.get(ids=[content_id(source)], include=["documents", "metadatas"])
        if not got["ids"]:
            return None
        meta = got["metadatas"][0] or {}
        current = meta.get("digest", "")
        if digest is not None and current != digest:
            return None
        pages = tuple(int(p) for p in str(meta.get("pages", "")).split(",") if p)
        version = (got["documents"][0], pages)
        with self._lock:
            self._versions[(source, current)] = version
            while len(self._versions) > VERSIONS_KEPT:
                self._versions.popitem(last=False)
        return version

    def document_text(self, source: str, digest: str | None = None) -> str | None:
        """The text of `source` as committed now, or of its version `digest` while that version is
        the committed one (then offsets read from its chunks hold); None otherwise."""
        version = self._version(source, digest) if digest is not None else self._current(source)
        return version[0] if version else None

    def document_pages(self, source: str, digest: str | None = None) -> tuple[int, ...]:
        """Start offset of each page of a paged document (PDF); empty for other formats."""
        version = self._version(source, digest) if digest is not None else self._current(source)
        return version[1] if version else ()

    def _current(self, source: str) -> tuple[str, tuple[int, ...]] | None:
        digest = self.current_digests([source]).get(source)
        return self._version(source, digest) if digest else None

    def all_chunks(self, committed: dict[str, dict] | None = None) -> list[Chunk]:
        """Chunks of committed documents (of `committed`, when the caller has just listed them)."""
        committed = {s: m["digest"] for s, m in (self.committed() if committed is None else committed).items()}
        got = self.chunks.get_all(["metadatas"])
        return [
            Chunk(i, m["source"], m["digest"], m["start"], m["end"], m["text"])
            for i, m in zip(got["ids"], got["metadatas"])
            if committed.get(m["source"]) == m["digest"]
        ]

    def nearest(self, vector, k: int) -> list[tuple[str, float]]:
        """Ids of the `k` chunks nearest to `vector` with their cosine similarity, committed or not.

        Asks Chroma for ids and distances only: chunk text lives in metadata (see `_write_group`)."""
        return [(i, 1.0 - d) for i, d in self.chunks.nearest(vector, k)]

    def sentence_vectors(self, ids: list[str]) -> dict[str, list[float]]:
        """Stored vectors of these sentences; any the store cannot give are encoded by the caller."""
        if not ids:
            return {}
        try:
            got = self.sentences.get(ids=ids, include=["embeddings"])
        except Exception as exc:  # an embedded client that has not yet seen another process's commit
            log.info("sentence vectors unreadable (%s); encoding them", exc)
            return {}
        return dict(zip(got["ids"], got["embeddings"], strict=True))

    # Writing -----------------------------------------------------------------------------------

    def update(self, docs: Iterable[SourceDocument], prune: bool = False, progress: bool = False) -> IndexReport:
        """Bring the index in line with `docs`: add new, replace changed, optionally remove the rest."""
        docs = list(docs)
        committed = self.committed()
        report = IndexReport()
        todo: list[tuple[SourceDocument, list[Chunk]]] = []
        for doc in docs:
            old = committed.get(doc.source)
            if old and old["digest"] == doc.digest:
                report.unchanged.append(doc.source)
                continue
            (report.updated if old else report.added).append(doc.source)
            todo.append((doc, chunk_document(doc, self.settings.chunk_size, self.settings.chunk_overlap)))
        total = sum(len(chunks) for _, chunks in todo)
        written = 0
        # Bigger groups sort into tighter batches and write in fewer calls (2,082 chunks: 112 chunks/s in
        # groups of 256, 117 in groups of 1,024); a crash loses at most the group being written.
        groups = list(_groups(todo, self.settings.index_group))
        if groups:
            self.embeddings.model  # load it before the bar starts: its rate is the indexing's own
        # Each group is embedded, then written: no overlap. The encode uses every core, and a Chroma
        # write running beside it stalled torch's threads (100 documents: 6.9 s overlapped, 5.7 s
        # one after the other, for 5.0 s of encode alone).
        with tqdm(total=total, unit="chunk", desc="indexing", disable=not progress or total == 0) as bar:
            for group in groups:
                # The bar moves as chunks are embedded (most of the time); files/s counts commits.
                self._write_group(group, *self._embed_group(group, on_batch=bar.update))
                report.chunks += sum(len(chunks) for _, chunks in group)
                written += len(group)
                bar.set_postfix_str(f"{written / max(bar.format_dict['elapsed'], 1e-3):.1f} files/s", refresh=False)
        if prune:
            keep = {d.source for d in docs}
            for source in sorted(set(committed) - keep):
                self.remove(source)
                report.removed.append(source)
        return report

    def _embed_group(
        self, group: list[tuple[SourceDocument, list[Chunk]]], on_batch: Callable[[int], object] | None = None
    ):
        """Chunk vectors, and each sentence's vector pooled from the same pass over the first chunk
        that holds it whole; only a sentence no chunk holds (one cut for length) is encoded alone."""
        chunks = [c for _, cs in group for c in cs]
        sentences = [split_sentences(doc.text) for doc, _ in group]
        spans: list[list[tuple[int, int]]] = [[] for _ in chunks]
        where: list[tuple[int, int] | None] = []  # sentence -> (chunk, span) in the group
        base = 0
        for (_, cs), sents in zip(group, sentences):
            j = 0
            for sent in sents:
                while j < len(cs) and cs[j].end < sent.end:
                    j += 1
                if j < len(cs) and cs[j].start <= sent.start:
                    spans[base + j].append((sent.start - cs[j].start, sent.end - cs[j].start))
                    where.append((base + j, len(spans[base + j]) - 1))
                else:
                    where.append(None)
            base += len(cs)
        threads = self.settings.index_threads
        chunk_vecs, pooled = self.embeddings.encode_with_spans(
            [c.text for c in chunks], spans, threads=threads, on_batch=on_batch
        )
        flat = [s for ss in sentences for s in ss]
        sent_vecs = [pooled[w[0]][w[1]] if w else None for w in where]
        alone = [i for i, v in enumerate(sent_vecs) if v is None]
        for i, v in zip(alone, self.embeddings.encode([flat[i].text for i in alone], threads=threads)):
            sent_vecs[i] = v
        return chunk_vecs, sentences, np.asarray(sent_vecs, dtype=np.float32).reshape(len(flat), -1)

    def _write_group(self, group, chunk_vecs, sentences: list[list[Sentence]], sent_vecs) -> None:
        """Write a group's chunks and sentences, then its document records (the commit marks), then
        drop what older versions of those documents left behind."""
        chunks, chunk_meta = [], []
        sent_ids, sent_meta = [], []
        records, record_vecs = [], []
        ci = 0
        for (doc, cs), sents in zip(group, sentences):
            for c in cs:
                m = chunk_record(c)
                if doc.pages:
                    m["page"] = page_at(doc.pages, c.start)
                chunks.append(c)
                chunk_meta.append(m)
            for sent in sents:
                sent_ids.append(sentence_id(doc.source, doc.digest, sent))
                # Only what the stale-record filter needs: each metadata key costs write time.
                sent_meta.append({"source": doc.source, "digest": doc.digest})
            record = {"source": doc.source, "digest": doc.digest, "chunks": len(cs)}
            if doc.pages:
                record["pages"] = ",".join(map(str, doc.pages))  # metadata values must be scalars
            records.append(record)
            # The record's vector is the mean of its chunks': never searched, so not worth an encode.
            mean = chunk_vecs[ci : ci + len(cs)].mean(axis=0) if cs else np.ones(self.embeddings.dimension, dtype=np.float32)
            record_vecs.append(mean / (np.linalg.norm(mean) or 1.0))
            ci += len(cs)
        # A chunk's text is a metadata field, not Chroma's document: the embedded store indexes
        # documents for full-text search, which BM25 (ours) makes unneeded, and that indexing was
        # two thirds of an index run's write time (520 chunks: 0.34 s as documents, 0.11 s as metadata).
        self.chunks.upsert([c.id for c in chunks], chunk_vecs, chunk_meta)
        # Sentences are read back by id for their vectors only: no text at all.
        self.sentences.upsert(sent_ids, sent_vecs, sent_meta)
        # Whole texts stay documents: `committed` reads every record's metadata, and should not
        # read every text with it.
        self.documents.upsert([content_id(d.source) for d, _ in group], record_vecs, records, [d.text for d, _ in group])
        self._touch()
        stale = [{"$and": [{"source": d.source}, {"digest": {"$ne": d.digest}}]} for d, _ in group]
        stale_filter = stale[0] if len(stale) == 1 else {"$or": stale}
        self.chunks.delete(where=stale_filter)
        self.sentences.delete(where=stale_filter)

    def remove(self, source: str) -> None:
        self.documents.delete(ids=[content_id(source)])
        self._touch()
        self.chunks.delete(where={"source": source})
        self.sentences.delete(where={"source": source})


def _groups(todo: list, max_chunks: int):
    group, size = [], 0
    for item in todo:
        if group and size + len(item[1]) > max_chunks:
            yield group
            group, size = [], 0
        group.append(item)
        size += len(item[1])
    if group:
        yield group


def chunk_record(chunk: Chunk) -> dict:
    """A chunk's metadata as stored, its text included (see `Index._write_group` for why)."""
    return {**chunk.metadata(), "text": chunk.text}


def sentence_id(source: str, digest: str, sentence: Sentence) -> str:
    return content_id(source, digest, "s", sentence.start, sentence.end)
