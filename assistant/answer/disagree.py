"""Disagreement: two answers the reader is confident in, read from different sentences, that state
different quantities, or the same one with only one side negating it ("a unit of some 3,000"
against "absolutely nowhere near 3,000"). An assistant that quoted only one would mislead."""

from __future__ import annotations

import re

NEGATION = re.compile(r"\b(?:no|not|nowhere|never|none|neither|nor|deny|denies|denied|without)\b|n[’']t\b", re.IGNORECASE)
NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
LEAD = 40  # characters before a span (within its sentence) where a negation bears on it


def quantities(span: str) -> set[str]:
    return {n.replace(",", "") for n in NUMBER.findall(span)}


def _plain(span: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", span.lower()).split())


def negated(text: str, start: int, end: int, sentence_start: int) -> bool:
    """Whether a negation stands just before the span, or in it."""
    return bool(NEGATION.search(text[max(sentence_start, start - LEAD) : end]))


def stated(text: str, start: int, end: int, sentence_start: int) -> str:
    """The span as the sentence states it: from a negation just before it, if there is one
    ("absolutely nowhere near 3,000" rather than "3,000")."""
    lead = max(sentence_start, start - LEAD)
    found = NEGATION.search(text[lead:end])
    return text[lead + found.start() if found and lead + found.start() < start else start : end]


def differ(a: tuple[str, int, int, int], b: tuple[str, int, int, int]) -> bool:
    """Do two answers, each (document text, span start, span end, its sentence's start), disagree?"""
    (ta, sa, ea, qa), (tb, sb, eb, qb) = a, b
    na, nb = quantities(ta[sa:ea]), quantities(tb[sb:eb])
    if na and nb and na.isdisjoint(nb):
        return True
    same = bool(na) and na == nb or (_plain(ta[sa:ea]) and _plain(ta[sa:ea]) == _plain(tb[sb:eb]))
    return bool(same) and negated(ta, sa, ea, qa) != negated(tb, sb, eb, qb)
