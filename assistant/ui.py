"""The web chat (Gradio): short answers, quoted passages with [n] markers, and their sources.

Everything that comes from a document or a person is escaped before it reaches the page, so a
document holding `<script>` or a markdown image link shows as text.
"""

from __future__ import annotations

import html
import re

from .chat import rewrite
from .records import Answer

EXAMPLES = ["How many soldiers deserted?"]
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~^$])")


def escape(text: str) -> str:
    """Text shown literally in Gradio's markdown: HTML-escaped, markdown syntax neutralised."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False)).replace("\n", " ")


def render(answer: Answer) -> str:
    """The chat message for an answer: short answer, block quotes with markers, sources."""
    if answer.abstained:
        return f"**{escape(answer.answer)}**"
    markers = " ".join(f"\\[{c.id}\\]" for c in answer.citations)
    lines = [f"**{escape(answer.answer)}** {markers}", ""]
    for c in answer.citations:
        lines += [f"> \\[{c.id}\\] {escape(c.quote)}", ""]
    lines.append("Sources: " + "; ".join(f"\\[{c.id}\\] {escape(c.source)}, characters {c.start}–{c.end}" for c in answer.citations))
    return "\n".join(lines)


def _user_turns(history: list) -> list[str]:
    turns = []
    for turn in history:
        if isinstance(turn, dict) and turn.get("role") == "user":
            content = turn.get("content")
            if isinstance(content, list):
                content = " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
            turns.append(str(content))
    return turns


def make_respond(assistant):
    """The chat handler. Gradio passes each browser tab's own visible history, so tabs never mix."""

    def respond(message: str, history: list) -> str:
        if not message or not message.strip():
            return "Ask a question about the documents."
        earlier = [Answer(q, "", True) for q in _user_turns(history)]
        return render(assistant.ask(message, query=rewrite(message, earlier)))

    return respond


def build_app(assistant):
    import gradio as gr

    respond = make_respond(assistant)
    return gr.ChatInterface(
        respond,
        title="Document assistant",
        description="Answers quote the documents verbatim; every quote is checked against its source.",
        examples=EXAMPLES,
        api_name="respond",
    )


def serve(assistant, host: str = "127.0.0.1", port: int = 7860) -> None:
    app = build_app(assistant)
    app.queue(default_concurrency_limit=4).launch(server_name=host, server_port=port, show_error=True)
