"""Store: Chroma collections through chromadb's public API, and one client per store location.

`ASSISTANT_CHROMA_HOST` unset means the embedded store in the index folder (`PersistentClient`);
set, a `chroma run` server (`HttpClient`). Records carry vectors we computed: no collection has an
embedding function of its own.

    store = Store(client_for(settings), "my-collection", {"hnsw": {"space": "cosine"}})
    store.upsert(["a"], [vector], [{"source": "a.txt"}])
    store.nearest(vector, 1)                # [("a", 0.0)]: ids with cosine distances
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import chromadb
import numpy as np
from chromadb.config import Settings as ChromaSettings

from ..settings import Settings

# Records per upsert: each call costs ~10 ms of its own; Chroma takes at most 5461.
BATCH = 4096
GET_PAGE = 10_000


class Store:
    """One Chroma collection: read, write and search records by id, metadata filter or vector."""

    def __init__(self, client, name: str, configuration: dict | None = None) -> None:
        self.name = name
        # embedding_function=None: chromadb's default would load (and download) a model of its own.
        self.collection = client.get_or_create_collection(name=name, configuration=configuration, embedding_function=None)

    def get(
        self,
        ids: list[str] | None = None,
        where: dict | None = None,
        limit: int | None = None,
        offset: int | None = None,
        include: Sequence[str] = ("metadatas", "documents"),
    ) -> dict[str, list]:
        """Records by id and/or metadata filter (`where`, Chroma's syntax); `ids` always come back,
        with the fields in `include` ("metadatas", "documents", "embeddings")."""
        return self.collection.get(ids=ids, where=where, limit=limit, offset=offset, include=list(include))

    def get_all(self, include: Sequence[str]) -> dict[str, list]:
        """Every record, a page at a time: one unpaged get of ~100k records exceeds SQLite's limit
        on query variables inside Chroma ("too many SQL variables")."""
        out: dict[str, list] = {"ids": [], **{key: [] for key in include}}
        offset = 0
        while True:
            got = self.get(include=include, limit=GET_PAGE, offset=offset)
            for key in out:
                out[key] += got[key]
            if len(got["ids"]) < GET_PAGE:
                return out
            offset += GET_PAGE

    def upsert(self, ids: list[str], vectors, metadatas: list[dict], texts: list[str] | None = None) -> None:
        """Insert or replace records with their vectors (and texts, stored as Chroma documents)."""
        for i in range(0, len(ids), BATCH):
            self.collection.upsert(
                ids=ids[i : i + BATCH],
                embeddings=np.asarray(vectors[i : i + BATCH], dtype=np.float32),
                documents=texts[i : i + BATCH] if texts is not None else None,
                metadatas=metadatas[i : i + BATCH],
            )

    def delete(self, ids: list[str] | None = None, where: dict | None = None) -> None:
        """Delete the records with these ids, or those matching `where`."""
        self.collection.delete(ids=ids, where=where)

    def nearest(self, vector, k: int) -> list[tuple[str, float]]:
        """Ids of the `k` records nearest to `vector`, with their distances (cosine: 1 - similarity)."""
        got = self.collection.query(query_embeddings=[vector], n_results=k, include=["distances"])
        return list(zip(got["ids"][0], got["distances"][0]))


def make_client(settings: Settings):
    """A new client: a Chroma server's when `chroma_host` is set, else the embedded store in `index_dir`."""
    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if settings.chroma_host:
        # The Chroma server itself does not check tokens; a reverse proxy in front of it does, so
        # the token travels as the standard bearer header that Chroma's own token auth also reads.
        headers = {"Authorization": f"Bearer {settings.chroma_token}"} if settings.chroma_token else None
        return chromadb.HttpClient(
            host=settings.chroma_host, port=settings.chroma_port, headers=headers, settings=chroma_settings
        )
    settings.index_dir.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(settings.index_dir), settings=chroma_settings)


_clients: dict[tuple, object] = {}
_clients_lock = threading.Lock()


def _client_key(settings: Settings) -> tuple:
    return (settings.index_dir, settings.chroma_host, settings.chroma_port, settings.chroma_token)


def client_for(settings: Settings):
    """One client per store location and process: Chroma dislikes two clients on one folder."""
    with _clients_lock:
        key = _client_key(settings)
        if key not in _clients:
            _clients[key] = make_client(settings)
        return _clients[key]


def reopened_client(settings: Settings, stale):
    """A client that reads the embedded store afresh, replacing `stale` (unless another thread has
    already replaced it). An embedded client keeps the vector index it loaded: rows another
    process wrote since stay invisible to its searches, and reading their vectors fails with
    "Error finding id", until a new client loads the index again. The old client is left to
    finish what other threads are doing with it."""
    with _clients_lock:
        key = _client_key(settings)
        if _clients.get(key) is stale:
            _clear_system_cache()  # otherwise a new client on the same folder shares the old one's state
            _clients[key] = make_client(settings)
        return _clients[key]


def forget_clients() -> None:
    """Drop every client of this process; the next use of a store opens it afresh."""
    with _clients_lock:
        _clients.clear()
        _clear_system_cache()


def _clear_system_cache() -> None:
    # chromadb shares one "system" (and the vector index it loaded) among the clients of one path;
    # no public call reopens it, and this static method of its client class is the usual way to drop it.
    from chromadb.api.client import SharedSystemClient

    SharedSystemClient.clear_system_cache()
