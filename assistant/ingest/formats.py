"""The format registry: which file suffixes are indexed, and the loader that reads each.

Everything that names the supported formats (the scan, `assistant index`, the web chat's upload
box, error messages) asks this module, so a new format is one line here and a loader in `loaders`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .loaders import LoadedText, load_docx, load_html, load_pdf, read_text

Loader = Callable[[Path], str | LoadedText]

LOADERS: dict[str, Loader] = {
    ".txt": read_text,
    ".md": read_text,
    ".pdf": load_pdf,
    ".docx": load_docx,
    ".html": load_html,
    ".htm": load_html,
}


def supported_suffixes() -> list[str]:
    """The suffixes indexed, in the registry's order: `['.txt', '.md', '.pdf', '.docx', '.html', '.htm']`."""
    return list(LOADERS)


def describe(conjunction: str = "or") -> str:
    """The suffixes for a message: `'.txt, .md, .pdf, .docx, .html or .htm'`."""
    names = supported_suffixes()
    return f"{', '.join(names[:-1])} {conjunction} {names[-1]}" if len(names) > 1 else "".join(names)
