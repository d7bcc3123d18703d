"""Loaders, one per format: plain text, PDF (text layer, with page starts), DOCX, HTML.

Each loader turns a file into the text that gets indexed and quoted; citations count offsets in
that text, so the text is built once here and never re-derived. `assistant.ingest.formats` maps file
suffixes to these loaders.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import IngestError

PAGE_BREAK = "\n\n"
_SPACES = re.compile(r"[ \t\f\v\u00a0]+")
_BLANKS = re.compile(r"\n{3,}")

@dataclass(frozen=True)
class LoadedText:
    """What a loader of a paged format returns: the text and the offset where each page starts."""

    text: str
    pages: tuple[int, ...] = ()


def read_textual_bytes(path: Path, kind: str = "text") -> bytes:
    """The bytes of a file that should hold text (plain or markup); empty or binary ones are refused."""
    data = path.read_bytes()
    if not data.strip():
        raise IngestError("empty file")
    if b"\x00" in data[:8192]:
        raise IngestError(f"binary content (NUL bytes), not {kind}")
    return data


def read_text(path: Path) -> str:
    """A UTF-8 text file (a byte-order mark is dropped), Windows line ends normalised."""
    data = read_textual_bytes(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IngestError(f"not valid UTF-8 (byte {exc.start}); re-save it as UTF-8") from exc
    # Offsets count characters of the text as users see it; normalise Windows line ends once here.
    return text.replace("\r\n", "\n").replace("\r", "\n")


# pypdf logs every recoverable defect of a damaged file; the skip report already says what matters.
logging.getLogger("pypdf").setLevel(logging.ERROR)


def _tidy(text: str) -> str:
    """One space between words and at most one blank line, so sentence splitting sees prose."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()


def _head(path: Path, n: int = 1024) -> bytes:
    with path.open("rb") as f:
        return f.read(n)


def load_pdf(path: Path) -> LoadedText:
    """The text layer of every page, pages joined by a blank line; `pages` holds each page's start."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    head = _head(path)
    if not head.strip():
        raise IngestError("empty file")
    if b"%PDF-" not in head:
        raise IngestError("not a PDF (no %PDF- header); is it misnamed?")
    try:
        reader = PdfReader(str(path), strict=False)
        if reader.is_encrypted:
            # Many PDFs are encrypted only against editing and open with an empty password.
            try:
                opened = reader.decrypt("")
            except Exception as exc:  # a cipher pypdf cannot run without an extra package
                raise IngestError(f"encrypted PDF that cannot be opened ({exc}); save an unencrypted copy") from exc
            if not opened:
                raise IngestError("encrypted PDF (needs a password); save an unencrypted copy")
        texts = [_tidy(page.extract_text() or "") for page in reader.pages]
    except IngestError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError) as exc:
        raise IngestError(f"corrupt PDF ({type(exc).__name__}: {exc}); re-export it") from exc
    text, pages = "", []
    for page_text in texts:
        if text:
            text += PAGE_BREAK
        pages.append(len(text))
        text += page_text
    if not text.strip():
        raise IngestError("PDF has no text layer (scanned images?); run OCR on it first")
    return LoadedText(text, tuple(pages))


def load_docx(path: Path) -> str:
    """Paragraphs (and table cells) in document order, one per line."""
    import zipfile

    from docx import Document
    from docx.opc.exceptions import PackageNotFoundError

    if not _head(path).strip():
        raise IngestError("empty file")
    try:
        document = Document(str(path))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise IngestError(f"not a readable .docx ({type(exc).__name__}); re-save it from Word") from exc
    parts = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            parts.append(" | ".join(cell.text for cell in row.cells))
    return _tidy("\n".join(parts))


_NOISE = ["script", "style", "noscript", "template", "nav", "header", "footer", "aside", "form", "svg", "iframe", "button"]
_BLOCKS = {"p", "div", "section", "article", "main", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6",
           "pre", "blockquote", "table", "tr", "br", "dd", "dt", "figcaption", "td", "th"}


def load_html(path: Path) -> str:
    """The main text: `<main>` or `<article>` when there is one, without navigation, scripts or styles."""
    from bs4 import BeautifulSoup

    data = read_textual_bytes(path, "HTML")
    soup = BeautifulSoup(data, "html.parser")  # the stdlib parser: nothing native to install
    for tag in soup(_NOISE):
        tag.decompose()
    for tag in soup.find_all(attrs={"role": ["navigation", "banner", "contentinfo", "complementary"]}):
        tag.decompose()
    root = soup.find("main") or soup.find("article") or soup.body or soup
    for tag in root.find_all(_BLOCKS):
        tag.insert_before("\n")
        tag.insert_after("\n")
    return _tidy(root.get_text())
