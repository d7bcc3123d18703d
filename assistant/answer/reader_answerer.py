"""Answer with the trained reader: it reads the retrieved passages, its best span is the short
answer, the sentence(s) holding that span are the quote.

The reader reads the fused top passages and each retriever's own best hits (fusion can drop the
one passage that matters when only one retriever finds it). Each passage gets a best span and a
no-answer score; how far the span beats the no-answer score is the reader's margin.
Each passage's `confidence` is a logistic calibration of the reader's margin and the passage's
retrieval evidence, fitted on the dev file (`tools/calibrate_reader.py`); the most confident
passage answers, and below `min_confidence` the assistant abstains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from ..index.index import Index
from ..index.lexical import LexicalIndex
from ..index.sentences import Sentence, split_sentences
from ..index.terms import terms
from ..records import NOT_FOUND, Answer
from .cite import make_citation
from .disagree import differ, stated
from .reader import Reader, Reading
from .retrieve import Passage

# Characters trimmed off a span's ends: the reader's token edges can carry a comma or a bracket.
_EDGE = " \t\n,;:.!?\"'“”‘’()[]"
# A second quote only from another passage nearly as likely to answer as the best.
SECOND_QUOTE_GAP = 0.1
RIVALS = 3  # next most likely passages checked for an answer that disagrees with the best
# Quotes stay readable: 71 of 2,092 first quotes on the dev file were sentences over 400 characters.
MAX_QUOTE_CHARS = 300


@dataclass
class ReadPassage:
    passage: Passage
    reading: Reading
    rank: int  # position among the passages read (fused order, each retriever's own hits last)
    start: int  # the span in document offsets
    end: int
    coverage: float = 0.0  # idf-weighted share of the question's terms in the passage
    quote_coverage: float = 0.0  # the same in the sentence(s) around the span
    prior: float = 0.0  # log-odds added for a passage of the document a conversation is about
    confidence: float = 0.0


def in_context(question: str, history: list[Answer], turns: int) -> str:
    """A follow-up as the reader reads it: the turn(s) it leans on (question and short answer),
    then the question itself, as conversational QA readers are given it."""
    parts = []
    for turn in history[-turns:] if turns else []:
        parts.append(turn.question)
        if not turn.abstained:
            parts.append(turn.answer)
    return " ".join([*parts, question])


@lru_cache(maxsize=256)
def _sentences(text: str) -> tuple[Sentence, ...]:
    return tuple(split_sentences(text))


def quote_bounds(text: str, start: int, end: int, lo: int, hi: int) -> tuple[int, int]:
    """The whole sentence(s) of `text` around the span [start, end), kept inside [lo, hi) (the
    passage the reader read); a longer stretch than MAX_QUOTE_CHARS is narrowed to the words
    around the span."""
    covering = [s for s in _sentences(text) if s.end > start and s.start < end]
    if covering:
        lo, hi = max(lo, covering[0].start), min(hi, covering[-1].end)
    else:
        lo, hi = start, end
    if hi - lo <= MAX_QUOTE_CHARS or end - start >= MAX_QUOTE_CHARS:
        return lo, hi
    room = (MAX_QUOTE_CHARS - (end - start)) // 2
    a, b = max(lo, start - room), min(hi, end + room)
    a, b = max(lo, a - (end + room - b)), min(hi, b + (a - (start - room)))  # room unused on one side goes to the other
    if a > lo:
        cut = text.find(" ", a, start)
        a = cut + 1 if cut != -1 else start
    if b < hi:
        cut = text.rfind(" ", end, b)
        b = cut if cut != -1 else end
    return a, b


def trim(text: str, start: int, end: int) -> tuple[int, int]:
    """The span without stray punctuation at its edges, keeping brackets and quotes it closes."""
    while start < end and text[start] in _EDGE and not _opens_inside(text, start, end):
        start += 1
    while end > start and text[end - 1] in _EDGE and not _closes_inside(text, start, end) and not _initialism(text, start, end):
        end -= 1
    return start, end


def _initialism(text: str, start: int, end: int) -> bool:
    """A full stop that belongs to the word: "D.C.", "U.S."."""
    return text[end - 1] == "." and end - start >= 4 and text[end - 3] == "." and text[end - 2].isalpha()


_PAIRS = {"(": ")", "[": "]", "“": "”", "‘": "’", '"': '"'}


def _opens_inside(text: str, start: int, end: int) -> bool:
    close = _PAIRS.get(text[start])
    return close is not None and close in text[start + 1 : end]


def _closes_inside(text: str, start: int, end: int) -> bool:
    ch = text[end - 1]
    opens = [o for o, c in _PAIRS.items() if c == ch]
    return any(o in text[start : end - 1] for o in opens)


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


# Without a fitted calibration the reader's own margin decides: P = sigmoid(margin).
UNCALIBRATED = {"bias": 0.0, "margin": 1.0}


EVIDENCE = ("margin", "dense", "fused", "top_hit", "coverage", "quote_coverage")


def evidence(r: ReadPassage) -> dict[str, float]:
    """What a passage's confidence is computed from: the reader's margin and how it was retrieved
    (and `conversation`, the prior of a conversation's document, when there is one)."""
    p = r.passage
    found = {
        "margin": r.reading.margin,
        "dense": p.dense,
        "fused": 1.0 / (1 + r.rank),
        "top_hit": float(p.bm25_rank == 0 or p.dense_rank == 0),
        "coverage": r.coverage,
        "quote_coverage": r.quote_coverage,
    }
    if r.prior:
        found["conversation"] = r.prior
    return found


def confidence(calibration: dict, r: ReadPassage) -> float:
    """P(this passage's span and quote answer the question): the logistic calibration fitted on
    the dev file by `tools/calibrate_reader.py`, plus the passage's conversation prior."""
    weights = calibration if "bias" in calibration else UNCALIBRATED
    z = weights["bias"] + sum(weights.get(k, 0.0) * v for k, v in evidence(r).items() if k in EVIDENCE)
    return sigmoid(z + r.prior)


def read_passage(p: Passage, reading: Reading, rank: int, asked: set[str], lexical: LexicalIndex) -> ReadPassage:
    """A passage with the reader's reading of it and how much of the question (`asked`: its
    terms) the passage and the sentence(s) around the span hold."""
    lo, hi = quote_bounds(p.chunk.text, reading.start, reading.end, 0, len(p.chunk.text))
    return ReadPassage(p, reading, rank, p.chunk.start + reading.start, p.chunk.start + reading.end,
                       lexical.coverage(asked, p.chunk.text), lexical.coverage(asked, p.chunk.text[lo:hi]))


def read_passages(reader: Reader, passages: list[Passage], question: str, calibration: dict, lexical: LexicalIndex,
                  about: str | None = None, prior: float = 0.0) -> list[ReadPassage]:
    """Every passage the reader found a span in, the most likely to answer first; those of the
    document `about` (the one a conversation is about) with `prior` added to their log-odds."""
    found = []
    asked = set(terms(question))
    for rank, (p, reading) in enumerate(zip(passages, reader.read(question, [p.chunk.text for p in passages]))):
        if reading is None:
            continue
        r = read_passage(p, reading, rank, asked, lexical)
        r.prior = prior if about is not None and p.chunk.source == about else 0.0
        r.confidence = confidence(calibration, r)
        found.append(r)
    found.sort(key=lambda r: -r.confidence)
    return found


def unsupported(r: ReadPassage) -> bool:
    """The reader says "not here" (margin below 0) and the quote holds none of the question's
    terms: only retrieval speaks for such an answer, and retrieval finds the topic, not the fact
    ("How much is Russia paying the soldiers?" in an article that numbers the soldiers)."""
    return r.reading.margin < 0 and r.quote_coverage == 0.0


def reader_answer(index: Index, read: list[ReadPassage], question: str, min_confidence: float, max_quotes: int,
                  weak_evidence: bool = False) -> Answer:
    """The answer record from the passages as read (`read_passages`), or an abstention below
    `min_confidence` or when the best passage's answer is `unsupported` (unless `weak_evidence`:
    a follow-up that leans on earlier turns has few words of its own to cover). Not yet verified:
    `Assistant` checks every quote before returning it."""
    if not read:
        return Answer(question, NOT_FOUND, True)
    best = read[0]
    if best.confidence < min_confidence or (unsupported(best) and not weak_evidence):
        return Answer(question, NOT_FOUND, True, confidence=best.confidence, evidence=evidence(best))
    quotes = {id(r): q for r in read[:RIVALS + 1] if (q := _quote(index, r)) is not None}
    if id(best) not in quotes:
        return Answer(question, NOT_FOUND, True, confidence=best.confidence, evidence=evidence(best))
    rival = next((r for r in read[1 : RIVALS + 1] if r.confidence >= min_confidence and id(r) in quotes
                  and quotes[id(r)][1:3] != quotes[id(best)][1:3] and differ(_claim(best, quotes), _claim(r, quotes))), None)
    chosen = [best] + ([rival] if rival else [])
    chosen += [r for r in read[1:] if r is not rival and r.confidence >= max(min_confidence, best.confidence - SECOND_QUOTE_GAP)]
    citations, quoted = [], set()
    for r in chosen[:max_quotes]:
        q = quotes.get(id(r)) or _quote(index, r)
        if q is None or (r.passage.chunk.source, q[1], q[2]) in quoted:
            continue
        quoted.add((r.passage.chunk.source, q[1], q[2]))
        citations.append(make_citation(len(citations) + 1, r.passage.chunk.source, q[0], q[1], q[2], r.confidence))
    text = quotes[id(best)][0]
    s, e = trim(text, best.start, best.end)
    short = text[s:e] if e > s else text[best.start : best.end]
    answer = Answer(question, short, False, citations, confidence=best.confidence, evidence=evidence(best))
    if rival is not None and len(citations) > 1:
        answer.disagreement = True
        said = [stated(*_claim(r, quotes)) for r in (best, rival)]
        answer.note = f"Sources differ: [1] says “{said[0]}”, [2] says “{said[1]}”."
    return answer


def _quote(index: Index, r: ReadPassage) -> tuple[str, int, int] | None:
    """(document text, quote start, quote end) for a read passage, or None if its version is gone."""
    text = index.document_text(r.passage.chunk.source, r.passage.chunk.digest)
    if text is None:
        return None
    lo, hi = quote_bounds(text, r.start, r.end, r.passage.chunk.start, r.passage.chunk.end)
    return text, lo, hi


def _claim(r: ReadPassage, quotes: dict) -> tuple[str, int, int, int]:
    text, lo, _ = quotes[id(r)]
    return text, r.start, r.end, lo
