"""Sentence boundaries with character offsets, robust to scraped text.

Scraped news text drops the space after a full stop ("searching for them.The troops") and wraps
sentences in curly quotes ("…forces.”Andriy Kovalenko"); generic splitters miss both. The rules:
a sentence ends after `.`, `!`, `?` or `…` (plus any closing quotes or brackets) when what follows
starts a new sentence, with or without white space in between, and at every line break.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_CLOSERS = "\"'”’)]»"
_OPENERS = "\"'“‘([«"
# A terminal run, its closers, optional white space, then what may open the next sentence.
_BOUNDARY = re.compile(
    rf"(?P<end>[.!?…]+[{re.escape(_CLOSERS)}]*)(?P<gap>[ \t\u00a0]*)(?=(?P<next>[{re.escape(_OPENERS)}]?[A-Z0-9]))"
)
_ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "ft", "vs", "etc", "e.g", "i.e", "cf", "al",
    "no", "nos", "vol", "fig", "gen", "col", "lt", "sgt", "capt", "gov", "sen", "rep", "rev", "inc", "ltd",
    "co", "corp", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
    "approx", "est", "c", "ca", "u.s", "u.k", "u.n", "a.d", "b.c", "p", "pp", "ed", "eds", "op",
}
_WORD_BEFORE = re.compile(r"([A-Za-z][A-Za-z.]*)\.$")


@dataclass(frozen=True)
class Sentence:
    start: int
    end: int
    text: str


def _is_boundary(text: str, match: re.Match) -> bool:
    run, gap = match.group("end"), match.group("gap")
    pos = match.start()
    if run != ".":
        return True  # "?", "!", "…", "...", or a stop with closing quotes: "forces.”Andriy"
    word = _WORD_BEFORE.search(text[max(0, pos - 12) : pos + 1])
    if word and (word.group(1).lower() in _ABBREVIATIONS or (len(word.group(1)) == 1 and word.group(1).isupper())):
        return False  # "Dr. Smith", "St. Louis", an initial as in "J. Smith" or "U.S. Army"
    return bool(gap) or _tight_ok(text, pos)


def _tight_ok(text: str, pos: int) -> bool:
    """A full stop with no space after it: a boundary only where it clearly reads as one."""
    prev = text[pos - 1] if pos > 0 else ""
    if prev.isupper() or prev.isdigit():
        return False  # "U.S.A", "3.5", "v2.0"
    nxt = text[pos + 1 : pos + 3]
    if nxt[:1] in _OPENERS:
        return True
    # "them.The" or "involved.A military", not "Node.JS".
    return len(nxt) == 2 and nxt[0].isupper() and (nxt[1].islower() or not nxt[1].isalpha())


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[Sentence]:
    """Sentences of `text[start:end]` as spans of `text`, stripped of surrounding white space."""
    end = len(text) if end is None else end
    cuts = [start]
    region = text[start:end]
    for line in re.finditer(r"\n+", region):
        cuts.append(start + line.end())
    for match in _BOUNDARY.finditer(region):
        if _is_boundary(region, match):
            cuts.append(start + match.end("end"))
    cuts.append(end)
    sentences = []
    for a, b in zip(sorted(set(cuts)), sorted(set(cuts))[1:]):
        piece = text[a:b]
        lead = len(piece) - len(piece.lstrip())
        trail = len(piece.rstrip())
        if trail > lead:
            sentences.append(Sentence(a + lead, a + trail, text[a + lead : a + trail]))
    return sentences
