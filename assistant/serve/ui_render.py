"""What the web chat shows, as HTML/markdown strings: answers with [n] markers, the source panel, the document list.

Everything that comes from a document or a person goes through `escape` (chat messages, which
Gradio renders as markdown) or `html.escape` (the panels, which are HTML), so a document holding
`<script>` or a markdown image link to an outside host shows as text and never loads anything.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator

from ..ingest.formats import describe as describe_formats
from ..records import Answer, Citation

CONTEXT_CHARS = 320
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~^$])")


def escape(text: str) -> str:
    """Text shown literally in a markdown message: HTML-escaped, markdown syntax neutralised."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False)).replace("\n", " ")


def anchor(turn: int, citation_id: int) -> str:
    """The id of a citation's passage in the source panel (unique within one tab's conversation)."""
    return f"cite-{turn}-{citation_id}"


def marker(turn: int, citation_id: int) -> str:
    """A clickable [n]: the page script scrolls the source panel to `anchor(turn, n)` on click."""
    target = anchor(turn, citation_id)
    return f'<a class="cite-marker" href="#{target}" data-cite="{target}">[{citation_id}]</a>'


def answer_parts(answer: Answer, turn: int) -> Iterator[str]:
    """The chat message for an answer, piece by piece (the UI streams them): words of the short
    answer, then its markers, then each quote and the sources line."""
    if answer.abstained:
        yield f"**{escape(answer.answer)}**"
        if answer.note:
            yield f"\n\n<small>{escape(answer.note)}</small>"
        return
    words = answer.answer.split()
    for i, word in enumerate(words):
        yield ("" if i == 0 else " ") + escape(word)
    yield " " + " ".join(marker(turn, c.id) for c in answer.citations)
    for c in answer.citations:
        note = " <small><em>(the source has changed since this answer)</em></small>" if c.changed else ""
        yield f"\n\n> {marker(turn, c.id)} {escape(c.quote)}{note}"
    if answer.disagreement:
        yield "\n\n**Sources differ:** the quotes below state different things."
    for claim in answer.unsupported:
        yield f"\n\n<small>Unsupported (no verbatim quote backs it): {escape(claim)}</small>"
    sources = "; ".join(f"[{c.id}] {c.label}, characters {c.start}–{c.end}" for c in answer.citations)
    yield f"\n\n<small>Sources: {escape(sources)}</small>"
    if answer.note:
        yield f"\n\n<small>{escape(answer.note)}</small>"


def render_answer(answer: Answer, turn: int) -> str:
    """The whole chat message for an answer (what streaming ends with)."""
    return "".join(answer_parts(answer, turn))


def render_question(question: str) -> str:
    return escape(question)


def _context(text: str, c: Citation, width: int = CONTEXT_CHARS) -> tuple[str, str, str]:
    """Text before the quote, the quote, text after, cut on white space about `width` characters out."""
    lo = max(0, c.start - width)
    hi = min(len(text), c.end + width)
    if lo > 0:
        cut = text.find(" ", lo, c.start)
        lo = cut + 1 if cut != -1 else lo
    if hi < len(text):
        cut = text.rfind(" ", c.end, hi)
        hi = cut if cut != -1 else hi
    before = ("…" if lo > 0 else "") + text[lo : c.start]
    after = text[c.end : hi] + ("…" if hi < len(text) else "")
    return before, text[c.start : c.end], after


def source_panel(turns: list[Answer], document_text: Callable[[str], str | None]) -> str:
    """The source panel: every cited passage of the conversation, newest turn first, with the quoted
    span in <mark> inside its surrounding document text."""
    if not turns:
        return '<div class="sources-empty">Cited passages appear here, with the quoted words highlighted.</div>'
    blocks = []
    for turn in range(len(turns), 0, -1):
        answer = turns[turn - 1]
        items = []
        for c in answer.citations:
            text = document_text(c.source)
            if text is None or text[c.start : c.end] != c.quote:
                body = f'<mark>{html.escape(c.quote)}</mark> <em>(the document has changed or been removed since)</em>'
            else:
                before, quote, after = _context(text, c)
                body = f"{html.escape(before)}<mark>{html.escape(quote)}</mark>{html.escape(after)}"
            items.append(
                f'<div class="source" id="{anchor(turn, c.id)}">'
                f'<div class="source-head">[{c.id}] {html.escape(c.label)} · characters {c.start}–{c.end}</div>'
                f'<div class="source-text">{body}</div></div>'
            )
        if not items:
            items.append('<div class="source source-none">No passage quoted: the documents do not answer this.</div>')
        blocks.append(
            f'<section class="turn" data-turn="{turn}"><h4>{turn}. {html.escape(answer.question)}</h4>{"".join(items)}</section>'
        )
    return "".join(blocks)


def documents_table(documents: dict[str, int]) -> str:
    """The indexed documents and their chunk counts, as an HTML table."""
    if not documents:
        return f"<p>No documents indexed yet: upload {describe_formats()} files above.</p>"
    rows = "".join(f"<tr><td>{html.escape(name)}</td><td>{count}</td></tr>" for name, count in documents.items())
    return f'<table class="documents"><thead><tr><th>document</th><th>chunks</th></tr></thead><tbody>{rows}</tbody></table>'
