"""Answer without an LLM: pick the sentences of the retrieved passages that answer, and the short span.

Every sentence of the top passages is scored on its own meaning (cosine to the question), on the
question's rare words it contains (IDF-weighted overlap) and on its passage's fused rank. The best one
or two become the quotes; the short answer is a span of the best (see `extract`). The answerability
score (`confidence`) combines the same evidence; below `min_confidence` the assistant abstains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..index.index import Index, sentence_id
from ..index.lexical import LexicalIndex
from ..index.sentences import Sentence, split_sentences
from ..index.terms import terms
from ..records import NOT_FOUND, Answer
from .cite import make_citation
from .extract import answer_span
from .retrieve import Passage

# Sentence score weights: a grid search on the SQuAD dev sample found this optimum flat (README);
# the answerability score is a logistic fit of answerable vs unanswerable on the same evidence.
W_DENSE, W_LEXICAL, W_PASSAGE = 1.0, 0.9, 0.35
CONF_BIAS, CONF_DENSE, CONF_LEXICAL = -2.2, 2.62, 0.87
SECOND_QUOTE_RATIO = 0.9
CONTEXT_WEIGHT = 0.4
CANDIDATE_PASSAGES = 5
DEFAULT_MIN_CONFIDENCE = 0.30  # few false abstentions (README: the trade-off curve)


@dataclass
class Candidate:
    source: str
    sentence: Sentence
    passage: Passage
    rank: int
    dense: float = 0.0
    lexical: float = 0.0
    score: float = 0.0
    # The same evidence against a follow-up's whole rewritten query: what answerability is judged on.
    dense_ctx: float = 0.0
    lexical_ctx: float = 0.0


@lru_cache(maxsize=512)
def _sentences(text: str) -> tuple[Sentence, ...]:
    return tuple(split_sentences(text))


def term_weights(question: str, context: str, lexical: LexicalIndex) -> dict[str, float]:
    """IDF weight of each question term; terms carried from earlier turns count CONTEXT_WEIGHT as much."""
    weights = {t: CONTEXT_WEIGHT * lexical.idf(t) for t in terms(context)}
    weights.update({t: lexical.idf(t) for t in terms(question)})
    return weights


def lexical_coverage(weights: dict[str, float], text_terms: set[str]) -> float:
    """Share of the question's term weight found in the text."""
    total = sum(weights.values())
    return sum(w for t, w in weights.items() if t in text_terms) / total if total else 0.0


def candidates(index: Index, passages: list[Passage]) -> list[Candidate]:
    seen: dict[tuple[str, int], Candidate] = {}
    for rank, p in enumerate(passages[:CANDIDATE_PASSAGES]):
        text = index.document_text(p.chunk.source, p.chunk.digest)
        if text is None:
            continue
        for s in _sentences(text):
            if s.start >= p.chunk.start and s.end <= p.chunk.end and (p.chunk.source, s.start) not in seen:
                seen[(p.chunk.source, s.start)] = Candidate(p.chunk.source, s, p, rank)
    return list(seen.values())


def score_candidates(
    index: Index,
    cands: list[Candidate],
    question: str,
    qvec: np.ndarray,
    lexical: LexicalIndex,
    context: str = "",
    context_vec: np.ndarray | None = None,
) -> None:
    ids = [sentence_id(c.source, c.passage.chunk.digest, c.sentence) for c in cands]
    stored = index.sentence_vectors(ids)
    missing = [i for i, sid in enumerate(ids) if sid not in stored]
    fresh = index.embeddings.encode([cands[i].sentence.text for i in missing]) if missing else []
    vectors = [stored.get(sid) for sid in ids]
    for j, i in enumerate(missing):
        vectors[i] = fresh[j]
    weights = term_weights(question, context, lexical)
    context_weights = term_weights(context, "", lexical) if context else weights
    top = max((c.passage.score for c in cands), default=1.0) or 1.0
    for c, v in zip(cands, vectors):
        v = np.asarray(v, dtype=np.float32)
        text_terms = set(terms(c.sentence.text))
        c.dense = float(np.dot(qvec, v))
        c.lexical = lexical_coverage(weights, text_terms)
        c.dense_ctx = float(np.dot(context_vec, v)) if context_vec is not None else c.dense
        c.lexical_ctx = lexical_coverage(context_weights, text_terms) if context else c.lexical
        c.score = W_DENSE * c.dense + W_LEXICAL * c.lexical + W_PASSAGE * (c.passage.score / top)


def confidence(best: Candidate) -> float:
    """Probability that the best sentence answers: its meaning and rare-word match with the question
    (for a follow-up, with the question as rewritten in its context)."""
    z = CONF_BIAS + CONF_DENSE * best.dense_ctx + CONF_LEXICAL * best.lexical_ctx
    return 1.0 / (1.0 + math.exp(-z))


def extractive_answer(
    index: Index,
    passages: list[Passage],
    question: str,
    qvec: np.ndarray,
    lexical: LexicalIndex,
    min_confidence: float,
    max_quotes: int,
    context: str = "",
    context_vec: np.ndarray | None = None,
) -> Answer:
    """The answer record (not yet verified: `Assistant` checks every quote before returning it).

    `context` is a follow-up's rewritten query: its carried words count, but less than the question's.
    """
    cands = candidates(index, passages)
    if not cands:
        return Answer(question, NOT_FOUND, True)
    score_candidates(index, cands, question, qvec, lexical, context, context_vec)
    cands.sort(key=lambda c: -c.score)
    best = cands[0]
    conf = confidence(best)
    if conf < min_confidence:
        return Answer(question, NOT_FOUND, True, confidence=conf)
    span = answer_span(question, best.sentence.text)
    chosen = [best] + [c for c in cands[1:] if c.score >= SECOND_QUOTE_RATIO * best.score][: max_quotes - 1]
    citations = []
    for n, c in enumerate(chosen, 1):
        text = index.document_text(c.source, c.passage.chunk.digest)
        citations.append(make_citation(n, c.source, text, c.sentence.start, c.sentence.end, c.score))
    short = best.sentence.text[span.start : span.end] if span else best.sentence.text
    return Answer(question, short, False, citations, confidence=conf)
