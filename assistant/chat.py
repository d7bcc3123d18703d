"""Chat: sessions of questions and answers, with follow-ups rewritten into self-contained queries.

A follow-up that leans on earlier turns ("Where were they deployed?") is searched together with the
key terms of the turn it leans on, repeated fewer times than its own terms so they weigh less. Only
the nouns and names of that turn's question and short answer are carried: they say what the
conversation is about. Its verbs, numbers and quoted sentence are left behind, because they are
what pulled the previous quote back in place of the new answer. A question that stands on its own
is searched as it is. Sessions are saved as JSON under
`<index_dir>/sessions/` and reload with their citations.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from .answer.extract import parse
from .answer.llm import generation_lock
from .answer.prompts import load_prompt
from .atomic import write_file
from .errors import UsageError
from .index.terms import STOP_WORDS, words
from .records import Answer
from .settings import Settings

log = logging.getLogger(__name__)


class AssistantLike(Protocol):
    """What a conversation needs of the assistant. `Assistant` is one; this module does not import
    it, because `Assistant.chat()` makes sessions (chat sits below the assistant, not beside it)."""

    settings: Settings

    def ask(self, question: str, k: int | None = None, query: str | None = None, history: list[Answer] | None = None) -> Answer: ...

    def ask_stream(
        self, question: str, k: int | None = None, query: str | None = None, history: list[Answer] | None = None
    ) -> Iterator[str | Answer]: ...

    def document_text(self, source: str, digest: str | None = None) -> str | None: ...

    def llm_model(self, raise_errors: bool = False): ...

_REFERRING = re.compile(
    r"\b(they|them|their|theirs|it|its|he|him|his|she|her|hers|this|that|these|those|there|then|"
    r"the same|that number|the number|such)\b",
    re.IGNORECASE,
)
_ELLIPSIS = re.compile(r"^\s*(and|what about|how about|or|but)\b", re.IGNORECASE)
_KEY_POS = {"NOUN", "PROPN"}
_NUMERIC_ENTITIES = {"CARDINAL", "QUANTITY", "MONEY", "PERCENT", "DATE", "TIME", "ORDINAL"}
MAX_CARRIED = 8
_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_QUESTION_WORDS = {"how", "what", "which", "who", "whom", "whose", "when", "where", "why", "did", "does", "do", "is", "are", "was", "were"}


def content_words(text: str) -> list[str]:
    return [w for w in words(text) if w not in STOP_WORDS and w not in _QUESTION_WORDS and len(w) > 1]


# Cached: a chat judges a question when it rewrites it and `Assistant.ask` again when it reads it,
# and a question with "that" or "there" costs a spaCy parse (about 10 ms here).
@lru_cache(maxsize=256)
def depends_on_context(question: str) -> bool:
    """Does the question lean on earlier turns (pronouns, ellipsis, or too few words of its own)?"""
    if _ELLIPSIS.search(question) or len(content_words(question)) < 2:
        return True
    if not _REFERRING.search(question):
        return False
    # "that" refers back only as a demonstrative ("that number"), not as a relative pronoun or
    # conjunction ("the unit that Russia is forming"); "there" not when existential ("there is").
    doc = parse(question)
    return any(
        _REFERRING.fullmatch(t.text) and (t.tag_ in {"PRP", "PRP$", "DT"} or (t.tag_ == "RB" and t.lower_ in {"there", "then"}))
        for t in doc
    )


def key_terms(text: str) -> list[str]:
    """The nouns and names of `text` (named entities other than numbers and dates included, such as
    "North Korean"), lower-cased, in order, without repeats."""
    doc = parse(text)
    found: list[str] = []
    for token in doc:
        word = token.text.lower()
        named = token.ent_type_ and token.ent_type_ not in _NUMERIC_ENTITIES
        usable = word not in STOP_WORDS and word not in _QUESTION_WORDS and len(word) > 1 and word not in found
        if (token.pos_ in _KEY_POS or named) and token.pos_ != "NUM" and usable:
            found.append(word)
    return found


def rewrite(question: str, history: list[Answer]) -> str:
    """The query to search for `question`, given the earlier turns of its conversation.

    >>> rewrite("Who reported it?", [Answer("Where were the troops deployed?", "Kursk and Bryansk oblasts", False)])
    'Who reported it? reported troops kursk bryansk oblasts'
    """
    if not history or not depends_on_context(question):
        return question
    own = set(content_words(question))
    carried: list[str] = []
    turn = history[-1]
    # The previous turn's query, not just its question: a chain of follow-ups keeps its subject.
    for w in key_terms(turn.query or turn.question) + (key_terms(turn.answer) if not turn.abstained else []):
        if w not in own and w not in carried:
            carried.append(w)
    if not carried:
        return question
    # The question's own words come first and twice, so they outweigh the carried ones in BM25.
    return f"{question} {' '.join(content_words(question))} {' '.join(carried[:MAX_CARRIED])}"


MAX_REWRITE_CHARS = 300


def llm_rewrite(model, question: str, history: list[Answer]) -> str | None:
    """A history-aware rewrite by the configured chat model (a langchain runnable); None when it
    fails or says something that is not one plausible question, so the caller keeps its own."""
    from langchain_core.output_parsers import StrOutputParser

    turns = "\n".join(f"Q: {t.question}\nA: {t.answer}" for t in history[-3:])
    messages = [
        ("system", load_prompt("rewrite_system")),
        ("human", load_prompt("rewrite_user", history=turns, question=question)),
    ]
    try:
        with generation_lock(model):
            text = (model | StrOutputParser()).invoke(messages)
    except Exception as exc:  # any provider error: the rule-based rewrite still stands
        log.warning("the LLM rewrite of a follow-up failed (%s: %s); searching with the rule-based rewrite", type(exc).__name__, exc)
        return None
    lines = [line.strip().strip('"') for line in text.strip().splitlines() if line.strip()]
    if not lines or len(lines[0]) > MAX_REWRITE_CHARS or len(content_words(lines[0])) < 2:
        return None
    return lines[0]


@dataclass
class ChatSession:
    """One conversation: `ask` answers in context; the history is saved after every turn."""

    assistant: AssistantLike
    session_id: str | None = None
    history: list[Answer] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.session_id is None:
            self.session_id = uuid.uuid4().hex[:12]
        elif not _SESSION_ID.match(self.session_id):
            raise UsageError("a session id is 1-64 letters, digits, '-' or '_'")
        elif self.path.exists():
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self.history = [Answer.from_dict(turn) for turn in data.get("turns", [])]
            self.recheck()

    def recheck(self) -> None:
        """Mark every saved citation whose document no longer holds its quote at its offsets (the
        document changed or was removed since the turn was answered)."""
        texts: dict[str, str | None] = {}
        for answer in self.history:
            for c in answer.citations:
                if c.source not in texts:
                    texts[c.source] = self.assistant.document_text(c.source)
                text = texts[c.source]
                c.changed = text is None or text[c.start : c.end] != c.quote

    @property
    def path(self) -> Path:
        return Path(self.assistant.settings.index_dir) / "sessions" / f"{self.session_id}.json"

    def query_for(self, question: str) -> str:
        """What to search for `question`: itself, or a rewrite in the light of earlier turns (by the
        configured LLM where there is one, with the rule-based rewrite as its fallback)."""
        query = rewrite(question, self.history)
        if query != question and self.assistant.settings.llm != "extractive":
            model = self.assistant.llm_model()
            if model is not None:
                standalone = llm_rewrite(model, question, self.history)
                if standalone:
                    # The model's words lead; the carried terms stay as a safety net for BM25.
                    query = f"{standalone} {query}"
        return query

    def ask(self, question: str, k: int | None = None) -> Answer:
        for item in self.ask_stream(question, k):
            if isinstance(item, Answer):
                return item
        raise AssertionError("ask_stream ended without an answer")

    def ask_stream(self, question: str, k: int | None = None) -> Iterator[str | Answer]:
        """Like `ask`, but first yields the LLM's answer text as it is written (see
        `Assistant.ask_stream`); the turn is saved when the checked `Answer`, the last item, is ready."""
        for item in self.assistant.ask_stream(question, k=k, query=self.query_for(question), history=self.history):
            if isinstance(item, Answer):
                self.history.append(item)
                self.save()
            yield item

    def save(self) -> None:
        write_file(self.path, json.dumps({"id": self.session_id, "turns": [a.to_dict() for a in self.history]}, indent=1))
