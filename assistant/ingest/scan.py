"""Ingest: find the documents under a folder and read their text, reporting what cannot be read."""

from __future__ import annotations

import bisect
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import IngestError  # noqa: F401  (importable from here too)
from .formats import LOADERS, supported_suffixes
from .loaders import LoadedText, read_textual_bytes  # noqa: F401  (importable from here too)

MAX_FILE_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class SourceDocument:
    """One document's text; `source` is its path relative to the docs folder, with `/` separators."""

    source: str
    text: str
    pages: tuple[int, ...] = ()  # start offset of each page (paged formats such as PDF), else empty

    @property
    def digest(self) -> str:
        key = self.text if not self.pages else f"{self.text}\x00{self.pages}"
        return hashlib.sha1(key.encode("utf-8")).hexdigest()


def page_at(pages: tuple[int, ...] | list[int], offset: int) -> int | None:
    """1-based page holding character `offset`, or None for formats without pages."""
    if not pages:
        return None
    return bisect.bisect_right(pages, offset) or 1


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


def load_file(path: Path, source: str | None = None) -> SourceDocument:
    """Read one file; raises IngestError with the reason when it cannot be used."""
    loader = LOADERS.get(path.suffix.lower())
    if loader is None:
        raise IngestError(f"unsupported file type {path.suffix or '(none)'}; supported: {', '.join(supported_suffixes())}")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise IngestError(f"cannot read: {exc.strerror or exc}") from exc
    if size > MAX_FILE_BYTES:
        raise IngestError(f"too large ({size // (1024 * 1024)} MiB; the limit is {MAX_FILE_BYTES // (1024 * 1024)} MiB)")
    try:
        loaded = loader(path)
    except IngestError:
        raise
    except OSError as exc:
        raise IngestError(f"cannot read: {exc.strerror or exc}") from exc
    except Exception as exc:  # a third-party parser choking on a hostile file must not stop the run
        raise IngestError(f"cannot parse ({type(exc).__name__}: {exc})") from exc
    text, pages = (loaded, ()) if isinstance(loaded, str) else (loaded.text, loaded.pages)
    if not text.strip():
        raise IngestError("no text in it")
    return SourceDocument(source or path.name, text, pages)


def _resolved(path: Path) -> Path | None:
    """Where a path really leads, or None for a link loop or a link that cannot be followed."""
    try:
        return path.resolve(strict=True)
    except (OSError, RuntimeError):  # RuntimeError: Python's "Symlink loop" on older versions
        return None


def iter_files(root: Path, skipped: list[Skipped] | None = None) -> Iterator[tuple[Path, str]]:
    """Supported files under `root` (recursively, sorted), with their relative source names.

    Symbolic links are followed only where they stay inside `root`, so a link loop or a link to
    elsewhere cannot pull outside files in; folders left out for that are added to `skipped`.
    """
    root = root.resolve()
    skipped = [] if skipped is None else skipped
    seen: set[Path] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        here = _resolved(Path(dirpath))
        rel = Path(dirpath).relative_to(root).as_posix()
        if here is None or here in seen or not here.is_relative_to(root):
            if here is None or not here.is_relative_to(root):
                skipped.append(Skipped(rel + "/", "a link to outside the docs folder" if here else "a broken link or link loop"))
            elif Path(dirpath).is_symlink():
                skipped.append(Skipped(rel + "/", "a link loop (the folder is already indexed under another name)"))
            dirnames[:] = []
            continue
        seen.add(here)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if name.startswith(".") or path.suffix.lower() not in LOADERS:
                continue
            yield path, path.relative_to(root).as_posix()


def scan(root: Path) -> tuple[list[SourceDocument], list[Skipped]]:
    """Every readable document under `root`, and the files skipped with their reasons."""
    if not root.is_dir():
        raise IngestError(f"docs folder {root} does not exist; create it or pass another with --docs / ASSISTANT_DOCS_DIR")
    documents: list[SourceDocument] = []
    skipped: list[Skipped] = []
    real_root = root.resolve()
    for path, source in iter_files(root, skipped):
        real = _resolved(path)
        if real is None:
            skipped.append(Skipped(source, "a broken link or link loop"))
            continue
        if not real.is_relative_to(real_root):
            skipped.append(Skipped(source, "a link to outside the docs folder"))
            continue
        try:
            documents.append(load_file(path, source))
        except IngestError as exc:
            skipped.append(Skipped(source, str(exc)))
    return documents, skipped
