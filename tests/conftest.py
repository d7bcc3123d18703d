"""Shared fixtures: a temp index per test, the real bundled model loaded once per run."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# One ONNX export of the model for the whole run (subprocesses too), not one per temp index.
if "ASSISTANT_MODEL_CACHE" not in os.environ:
    os.environ["ASSISTANT_MODEL_CACHE"] = tempfile.mkdtemp(prefix="assistant-model-cache-")
    atexit.register(shutil.rmtree, os.environ["ASSISTANT_MODEL_CACHE"], ignore_errors=True)

from assistant import Assistant, Settings  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
GOLDEN = Path(__file__).resolve().parent / "golden"
SHARED_EVAL = ROOT.parent / "shared" / "eval"


@pytest.fixture(autouse=True)
def _temp_index(tmp_path, monkeypatch):
    """No test touches the project's own index/ folder."""
    monkeypatch.setenv("ASSISTANT_INDEX_DIR", str(tmp_path / "index"))


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(docs_dir=SEEDS, index_dir=tmp_path / "index")


@pytest.fixture(scope="session")
def seed_index_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("seed-index")


@pytest.fixture(scope="session")
def seed_bot(seed_index_dir) -> Assistant:
    """One assistant over the seeds for the whole run (read-only use)."""
    return Assistant(Settings(docs_dir=SEEDS, index_dir=seed_index_dir))


@pytest.fixture
def docs(tmp_path) -> Path:
    """A writable copy of the seeds."""
    folder = tmp_path / "docs"
    shutil.copytree(SEEDS, folder)
    return folder
