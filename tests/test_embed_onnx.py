"""Embed (ONNX): the export of the bundled model gives the torch vectors, and answering needs no torch model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from assistant import Settings
from assistant.index import embed_onnx
from assistant.index.embed import SentenceEmbeddings

from conftest import SEEDS

TEXTS = [
    "How many soldiers deserted?",
    "",
    "Naïve café owners in Zürich paid 3,5 Mio. € in 1999–2001 — “allegedly”.",
    "A sentence about rivers. " * 80,  # truncated at the model's window
    "Short.",
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="module")
def torch_embeddings() -> SentenceEmbeddings:
    return SentenceEmbeddings(Settings().embedding_model)


def test_the_export_reproduces_the_torch_vectors(cache, torch_embeddings):
    model_path = torch_embeddings.model_path
    folder = embed_onnx.export(torch_embeddings.model, model_path, cache)
    meta = json.loads((folder / embed_onnx.META_FILE).read_text())
    assert meta["ok"] and meta["deviation"] < 1e-5

    encoder = embed_onnx.open_encoder(model_path, cache)
    reference = torch_embeddings.encode(TEXTS)
    alone = np.array([encoder.encode([t])[0] for t in TEXTS])
    batched = encoder.encode(TEXTS)  # padded to the longest: padding must not shift the means
    for got in (alone, batched):
        assert got.shape == reference.shape
        assert np.allclose((got * reference).sum(axis=1), 1.0, atol=1e-5)


def test_questions_use_the_export_and_index_runs_torch(cache, torch_embeddings):
    embed_onnx.export(torch_embeddings.model, torch_embeddings.model_path, cache)
    fast = SentenceEmbeddings(torch_embeddings.model_path, cache_dir=cache)
    assert fast._fast() is not None
    question = fast.encode(["Who signed the treaty?"])
    explicit = fast.encode(["Who signed the treaty?"], threads=1)  # an index run's call: torch
    assert float(question[0] @ explicit[0]) == pytest.approx(1.0, abs=1e-5)
    assert fast.dimension == torch_embeddings.dimension


def test_a_damaged_export_falls_back_to_torch(tmp_path, torch_embeddings, caplog):
    model_path = torch_embeddings.model_path
    folder = embed_onnx.export(torch_embeddings.model, model_path, tmp_path)
    (folder / embed_onnx.MODEL_FILE).write_bytes(b"not a model")
    embed_onnx._opened.pop(folder, None)

    assert embed_onnx.open_encoder(model_path, tmp_path) is None
    assert "ignoring the ONNX export" in caplog.text
    fallback = SentenceEmbeddings(model_path, cache_dir=tmp_path)
    assert np.allclose(fallback.encode(TEXTS[:1]), torch_embeddings.encode(TEXTS[:1]), atol=1e-5)


def test_an_export_that_failed_its_check_is_not_used_or_retried(tmp_path, torch_embeddings):
    model_path = torch_embeddings.model_path
    folder = embed_onnx.export_dir(model_path, tmp_path)
    folder.mkdir(parents=True)
    (folder / embed_onnx.META_FILE).write_text(json.dumps({"ok": False, "deviation": 0.6}))
    assert embed_onnx.open_encoder(model_path, tmp_path) is None
    assert embed_onnx.export(torch_embeddings.model, model_path, tmp_path) == folder
    assert not (folder / embed_onnx.MODEL_FILE).exists()


def test_a_changed_model_gets_a_new_export_folder(tmp_path, torch_embeddings):
    copy = tmp_path / "model"
    shutil.copytree(torch_embeddings.model_path, copy)
    before = embed_onnx.export_dir(str(copy), tmp_path / "cache")
    config = copy / "config.json"
    config.write_text(config.read_text() + "\n")
    assert embed_onnx.export_dir(str(copy), tmp_path / "cache") != before


def test_an_answering_process_never_imports_sentence_transformers(tmp_path, cache, torch_embeddings):
    """The point of the export: a cold start without the torch model's 4 s of imports."""
    embed_onnx.export(torch_embeddings.model, torch_embeddings.model_path, cache)
    env = {**os.environ, "ASSISTANT_MODEL_CACHE": str(cache), "ASSISTANT_INDEX_DIR": str(tmp_path / "index")}
    env["ASSISTANT_DOCS_DIR"] = str(SEEDS)
    index = subprocess.run([sys.executable, "-m", "assistant.serve.cli", "index"], env=env, capture_output=True, text=True)
    assert index.returncode == 0, index.stderr
    script = (
        "import sys; from assistant import Assistant; a = Assistant().ask('How many soldiers deserted?'); "
        "print(a.answer); print(sorted(m for m in ('sentence_transformers', 'transformers', 'sklearn') if m in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    answer, loaded = run.stdout.strip().splitlines()[-2:]
    assert "18" in answer
    assert loaded == "[]"
