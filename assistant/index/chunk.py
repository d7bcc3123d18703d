"""Chunk: split a document into overlapping passages of whole sentences, with character offsets."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from langchain_text_splitters import TextSplitter

from ..ingest.scan import SourceDocument
from .sentences import split_sentences

logging.getLogger("langchain_text_splitters.base").setLevel(logging.ERROR)


class SentenceTextSplitter(TextSplitter):
    """A langchain text splitter whose pieces are whole sentences, packed up to `chunk_size`.

    The pieces cover the text exactly (white space included), so every chunk is a verbatim
    substring of its source and `add_start_index` finds its true offset. A sentence longer than
    `chunk_size` is cut at white space.
    """

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("add_start_index", True)
        super().__init__(**kwargs)

    def pieces(self, text: str) -> list[str]:
        cuts = [s.start for s in split_sentences(text)] + [len(text)]
        if cuts[0] != 0:
            cuts[0] = 0
        pieces = []
        for a, b in zip(cuts, cuts[1:]):
            pieces.extend(self._cut_long(text[a:b]))
        return pieces

    def _cut_long(self, piece: str) -> list[str]:
        out = []
        while len(piece) > self._chunk_size:
            cut = piece.rfind(" ", 0, self._chunk_size)
            cut = cut + 1 if cut > self._chunk_size // 2 else self._chunk_size
            out.append(piece[:cut])
            piece = piece[cut:]
        return out + ([piece] if piece else [])

    def split_text(self, text: str) -> list[str]:
        return self._merge_splits(self.pieces(text), "")


@dataclass(frozen=True)
class Chunk:
    id: str
    source: str
    digest: str
    start: int
    end: int
    text: str

    def metadata(self) -> dict:
        return {"source": self.source, "digest": self.digest, "start": self.start, "end": self.end}


def content_id(*parts: object) -> str:
    return hashlib.sha1("\x1f".join(map(str, parts)).encode("utf-8")).hexdigest()[:24]


def chunk_document(doc: SourceDocument, chunk_size: int, chunk_overlap: int) -> list[Chunk]:
    """Chunks of `doc`, each a verbatim slice `doc.text[start:end]`; ids derive from the content."""
    splitter = SentenceTextSplitter(chunk_size=chunk_size, chunk_overlap=min(chunk_overlap, chunk_size // 2))
    digest = doc.digest
    chunks = []
    for piece in splitter.create_documents([doc.text]):
        start = piece.metadata["start_index"]
        text = piece.page_content
        if start < 0 or doc.text[start : start + len(text)] != text:  # never expected; offsets must be exact
            raise AssertionError(f"chunk offsets of {doc.source} do not match its text")
        chunks.append(Chunk(content_id(doc.source, digest, start, len(text)), doc.source, digest, start, start + len(text), text))
    return chunks
