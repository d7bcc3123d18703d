"""Cite: turn chosen spans into `Citation`s and prove every quote is verbatim at its offsets."""

from __future__ import annotations

import re
from collections.abc import Callable

from ..errors import QuoteMismatch  # noqa: F401  (importable from here too)
from ..records import Answer, Citation


def verify(answer: Answer, source_text: Callable[[str], str | None]) -> Answer:
    """Check `source_text(c.source)[c.start:c.end] == c.quote` for every citation, or raise."""
    for c in answer.citations:
        text = source_text(c.source)
        if text is None or not (0 <= c.start < c.end <= len(text)) or text[c.start : c.end] != c.quote:
            raise QuoteMismatch(f"citation [{c.id}] is not verbatim in {c.source} at {c.start}:{c.end}")
    return answer


def locate(quote: str, text: str, near: int = 0) -> tuple[int, int] | None:
    """Offsets of `quote` in `text`: exact first, then ignoring differences in white space.

    Where it occurs more than once, the occurrence nearest `near` wins.
    """
    quote = quote.strip()
    if not quote:
        return None
    starts = [m.start() for m in re.finditer(re.escape(quote), text)]
    if starts:
        best = min(starts, key=lambda s: abs(s - near))
        return best, best + len(quote)
    pattern = r"\s+".join(re.escape(part) for part in quote.split())
    matches = list(re.finditer(pattern, text))
    if not matches:
        return None
    best = min(matches, key=lambda m: abs(m.start() - near))
    return best.start(), best.end()


def make_citation(id_: int, source: str, text: str, start: int, end: int, score: float) -> Citation:
    return Citation(id=id_, source=source, start=start, end=end, quote=text[start:end], score=round(float(score), 4))
