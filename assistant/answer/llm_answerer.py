"""Generate: ask an LLM about the retrieved passages, then keep only what the passages prove.

The prompt (files in `prompts/`) gives the passages as numbered, delimited data and asks for

    ANSWER: one sentence with [n] markers
    QUOTE [n]: "words copied from passage n"

Every quote is looked up in the passage it cites (exact, or equal after collapsing white space) and
mapped to offsets in the source document; a quote that is not there is dropped, whatever the model
claims. An answer sentence copied word for word from the passage it cites counts as its own quote.
Sentences left with no surviving citation are listed in `Answer.unsupported`. When no citation
survives, the caller falls back to the extractive answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ..errors import LLMError, PromptError  # noqa: F401  (importable from here too)
from ..index.sentences import split_sentences
from ..records import NOT_FOUND, Citation
from .cite import locate, make_citation
from .llm import generation_lock
from .prompts import load_prompt
from .retrieve import Passage

MIN_QUOTE_WORDS = 3  # a quote of one or two words ("the army") proves nothing about a claim

_ANSWER = re.compile(r"^\s*\**\s*answer\s*\**\s*:\s*\**\s*", re.IGNORECASE | re.MULTILINE)
_QUOTE_LINE = re.compile(r"^\s*[-*]?\s*\**\s*quote\s*\**\s*\[(\d+)\]\s*\**\s*:?\s*\**\s*(.*?)\s*$", re.IGNORECASE | re.MULTILINE)
_QUOTE_START = re.compile(r"^\s*[-*]?\s*\**\s*quote\b", re.IGNORECASE | re.MULTILINE)
_INLINE_QUOTE = re.compile(r"[\"“]([^\"“”]{8,}?)[\"”]\s*\[(\d+)\]")
_MARKER = re.compile(r"\s*\[(\d+(?:\s*,\s*\d+)*)\]")
_QUOTE_CHARS = "\"'“”‘’`"
_NOT_FOUND = re.compile(r"^\W*not found in the documents\W*$", re.IGNORECASE)


def _as_data(text: str) -> str:
    # A passage must not be able to close its own delimiter and speak as the prompt.
    return re.sub(r"<(/?)\s*passage", r"‹\1passage", text, flags=re.IGNORECASE)


def build_messages(question: str, passages: list[Passage]) -> list[tuple[str, str]]:
    """System and user messages for `question` over `passages` (numbered from 1)."""
    blocks = "\n".join(load_prompt("passage", n=str(i), text=_as_data(p.chunk.text.strip())) for i, p in enumerate(passages, 1))
    return [
        ("system", load_prompt("answer_system")),
        ("user", load_prompt("answer_user", passages=blocks.strip(), question=question.strip())),
    ]


@dataclass
class Parsed:
    """What the model said, before any checking: answer text and (passage number, quote) pairs."""

    answer: str
    quotes: list[tuple[int, str]] = field(default_factory=list)
    abstained: bool = False


def _unquote(text: str) -> str:
    text = text.strip()
    while len(text) >= 2 and text[0] in _QUOTE_CHARS and text[-1] in _QUOTE_CHARS:
        text = text[1:-1].strip()
    return text.strip(_QUOTE_CHARS + " ")


def parse_output(raw: str) -> Parsed:
    """Split raw model output into the answer text and its quotes (lenient: small models drift)."""
    text = (raw or "").replace("\r\n", "\n").strip()
    found = _ANSWER.search(text)
    body = text[found.end() :] if found else text
    stop = _QUOTE_START.search(body)
    answer = (body[: stop.start()] if stop else body).strip()
    # A model that repeats "ANSWER:" starts a second answer; the first one is the answer.
    again = _ANSWER.search(answer)
    if again:
        answer = answer[: again.start()].strip()
    answer = " ".join(answer.split())
    quotes = [(int(n), _unquote(q)) for n, q in _QUOTE_LINE.findall(text)]
    quotes += [(int(n), q.strip()) for q, n in _INLINE_QUOTE.findall(answer)]
    abstained = bool(_NOT_FOUND.match(_MARKER.sub("", answer))) if answer else False
    return Parsed(answer, [(n, q) for n, q in quotes if q], abstained)


def _markers(sentence: str) -> list[int]:
    return [int(n) for group in _MARKER.findall(sentence) for n in re.split(r"\s*,\s*", group)]


@dataclass
class Checked:
    """The parsed answer after every quote was checked against its cited passage."""

    answer: str
    citations: list[Citation]
    unsupported: list[str]
    dropped: list[tuple[int, str]]
    abstained: bool = False


def check(parsed: Parsed, passages: list[Passage], document_text: Callable[[str], str | None]) -> Checked:
    """Keep the quotes found verbatim in the passage they cite, as citations with document offsets."""
    if parsed.abstained:
        return Checked(NOT_FOUND, [], [], [], abstained=True)
    claims = [s.text for s in split_sentences(parsed.answer)] if parsed.answer else []
    candidates = list(parsed.quotes)
    # A claim copied from the passage it cites quotes itself.
    for claim in claims:
        for n in _markers(claim):
            candidates.append((n, _MARKER.sub("", claim).strip()))

    citations: list[Citation] = []
    by_passage: dict[int, list[int]] = {}
    dropped: list[tuple[int, str]] = []
    seen: dict[tuple[str, int, int], int] = {}
    for n, quote in candidates:
        span = _find(quote, n, passages, document_text)
        if span is None:
            if (n, quote) in parsed.quotes:
                dropped.append((n, quote))
            continue
        source, start, end, text = span
        key = (source, start, end)
        if key not in seen:
            seen[key] = len(citations) + 1
            citations.append(make_citation(seen[key], source, text, start, end, passages[n - 1].score))
        ids = by_passage.setdefault(n, [])
        if seen[key] not in ids:
            ids.append(seen[key])

    unsupported = []
    for claim in claims:
        marked = _markers(claim)
        # One unmarked claim with surviving quotes: the quotes can only be for it.
        supported = any(by_passage.get(n) for n in marked) or (not marked and len(claims) == 1 and bool(citations))
        if not supported and _MARKER.sub("", claim).strip():
            unsupported.append(_MARKER.sub("", claim).strip())
    return Checked(_renumber(parsed.answer, by_passage), citations, unsupported, dropped)


def _find(quote: str, n: int, passages: list[Passage], document_text) -> tuple[str, int, int, str] | None:
    if not (1 <= n <= len(passages)) or len(quote.split()) < MIN_QUOTE_WORDS:
        return None
    chunk = passages[n - 1].chunk
    local = locate(quote, chunk.text)
    if local is None:
        # A quote closed with the model's own full stop ("…deserted.") where the source goes on.
        trimmed = quote.rstrip(".,;:!? ")
        local = locate(trimmed, chunk.text) if trimmed != quote and len(trimmed.split()) >= MIN_QUOTE_WORDS else None
    if local is None:
        return None
    text = document_text(chunk.source)
    start, end = chunk.start + local[0], chunk.start + local[1]
    if text is None or text[start:end] != chunk.text[local[0] : local[1]]:
        return None  # the document changed under the passage; cite nothing rather than a wrong span
    return chunk.source, start, end, text


def _renumber(answer: str, by_passage: dict[int, list[int]]) -> str:
    """Point the answer's [n] (passage numbers) at citation ids; drop markers whose quotes failed."""

    def swap(match: re.Match) -> str:
        ids = [i for n in re.split(r"\s*,\s*", match.group(1)) for i in by_passage.get(int(n), [])]
        ids = list(dict.fromkeys(ids))
        return " [" + ", ".join(map(str, ids)) + "]" if ids else ""

    return _MARKER.sub(swap, answer).strip()


class AnswerStream:
    """Feeds raw model tokens in, lets out only the text of the ANSWER section as it grows."""

    def __init__(self) -> None:
        self.raw = ""
        self.shown = ""

    def feed(self, piece: str, final: bool = False) -> str:
        self.raw += piece
        visible = self._visible(final)
        if not visible.startswith(self.shown):
            return ""  # never take back what was shown; the checked answer follows anyway
        new, self.shown = visible[len(self.shown) :], visible
        return new

    def _visible(self, final: bool) -> str:
        text = self.raw.lstrip()
        found = _ANSWER.search(text)
        if found:
            text = text[found.end() :]
        elif not final and "answer:".startswith(text[:7].lower().lstrip("* ")):
            return ""  # maybe the start of "ANSWER:"
        stop = _QUOTE_START.search(text)
        if stop:
            return text[: stop.start()].rstrip()
        if not final:
            last = text.rsplit("\n", 1)[-1].lstrip(" -*").lower()
            if last and "quote".startswith(last[:5]):
                text = text[: len(text) - len(text.rsplit("\n", 1)[-1])]  # maybe the start of "QUOTE"
            # A partial word may yet become "[1]" or a longer word; hold the tail until white space.
            cut = max(text.rfind(" "), text.rfind("\n"))
            text = text[:cut] if cut >= 0 else ""
        # White space is shown only with the word after it, so a final newline never leaks out.
        return text.rstrip()


def stream_tokens(model, messages: list[tuple[str, str]]) -> Iterator[str]:
    """Text pieces from a langchain chat model, as it generates them."""
    with generation_lock(model):
        for chunk in model.stream(messages):
            content = chunk.content
            if isinstance(content, list):  # some providers send content blocks
                content = "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
            if content:
                yield content


class ModelFailed(LLMError):
    """The model or its server failed while answering; `__cause__` is the client library's error."""


def generate(model, question: str, passages: list[Passage], document_text) -> Iterator[str | Checked]:
    """Yield the visible answer text as it streams, then the `Checked` result (last).

    Raises `ModelFailed` (from the client's own error) when the model cannot be reached or fails.
    """
    shown = AnswerStream()
    messages = build_messages(question, passages)
    try:
        for piece in stream_tokens(model, messages):
            new = shown.feed(piece)
            if new:
                yield new
    except Exception as exc:  # client libraries raise many unrelated types; the caller explains them
        raise ModelFailed(str(exc)) from exc
    tail = shown.feed("", final=True)
    if tail:
        yield tail
    yield check(parse_output(shown.raw), passages, document_text)


__all__ = ["AnswerStream", "Checked", "ModelFailed", "Parsed", "PromptError", "build_messages", "check", "generate", "load_prompt", "parse_output"]
