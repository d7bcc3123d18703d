"""The web chat (Gradio): the conversation on the left, the cited passages on the right.

The handlers are plain methods of `ChatHandlers` (tests call them directly); `build_app` only wires
them to components. Each browser tab keeps its own `ChatSession` id in a `gr.State`, so tabs never
share a conversation, and the session is saved under the index folder after every turn.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path

from ..atomic import write_file
from ..chat import ChatSession
from ..ingest.formats import supported_suffixes
from ..ingest.scan import IngestError, load_file
from ..records import Answer
from .ui_render import answer_parts, documents_table, escape, render_answer, render_question, source_panel

UPLOADS = "uploads"  # the docs folder's subfolder that keeps files uploaded in the page
WRITING = " ▍"  # after an LLM's answer text while it is still being written (not yet checked)


def keep_upload(path: Path, folder: Path) -> Path:
    """Copy an uploaded file into `folder` under its own name, or `name-2.txt`, `name-3.txt`, ...
    when a different file has that name; the same content already there is reused."""
    folder.mkdir(parents=True, exist_ok=True)
    data = path.read_bytes()
    stem, suffix = path.stem, path.suffix
    for n in range(1, 1000):
        target = folder / (path.name if n == 1 else f"{stem}-{n}{suffix}")
        if target.exists():
            if target.read_bytes() == data:
                return target
            continue
        return write_file(target, data)  # built under a dot name, which the scan skips
    raise IngestError(f"too many files named like {path.name} in {folder}; rename it and upload again")


EXAMPLES = ["How many soldiers deserted?", "Where were they deployed?", "Who reported it?"]

# Clicking a [n] marker in an answer scrolls the source panel to that passage and flashes it. Capture
# phase, so it runs before the chat's own link handling (which would open a new tab).
PAGE_SCRIPT = """
<script>
document.addEventListener("click", function (event) {
  var link = event.target.closest && event.target.closest("a.cite-marker, a[href^='#cite-']");
  if (!link) return;
  event.preventDefault();
  event.stopPropagation();
  var id = link.getAttribute("data-cite") || link.getAttribute("href").slice(1);
  var target = document.getElementById(id);
  if (!target) return;
  // Scroll only the panel (not the page) so the passage sits near its top.
  var panel = target.parentElement;
  while (panel && panel !== document.body && !(panel.scrollHeight > panel.clientHeight + 1 &&
         /(auto|scroll)/.test(getComputedStyle(panel).overflowY))) { panel = panel.parentElement; }
  if (panel && panel !== document.body) {
    panel.scrollTop += target.getBoundingClientRect().top - panel.getBoundingClientRect().top - 8;
  } else {
    target.scrollIntoView({block: "nearest"});
  }
  document.querySelectorAll(".source.active").forEach(function (el) { el.classList.remove("active"); });
  target.classList.add("active");
}, true);
</script>
"""

CSS = """
#sources { max-height: 640px; overflow-y: auto !important; }
#sources .turn h4 { margin: 0.8em 0 0.3em; }
#sources .source { border-left: 3px solid #bbb; padding: 0.3em 0.6em; margin: 0.4em 0; white-space: pre-wrap; }
#sources .source.active { border-left-color: #e8a400; background: rgba(232, 164, 0, 0.08); }
#sources .source-head { font-size: 0.85em; opacity: 0.75; }
#sources mark { background: #ffe066; color: inherit; padding: 0 1px; }
a.cite-marker { text-decoration: none; font-weight: 600; cursor: pointer; }
table.documents td, table.documents th { padding: 2px 10px 2px 0; text-align: left; }
"""


class ChatHandlers:
    """The web chat's event handlers, as plain functions over one shared `Assistant`."""

    def __init__(self, assistant) -> None:
        self.assistant = assistant
        self._write_lock = threading.Lock()  # uploads and removals change the index one at a time
        self._by_answerer = {assistant.settings.llm: assistant}

    def answerers(self) -> list[str]:
        """The answerers a tab may pick: the extractive one, and the configured LLM if there is one."""
        return list(dict.fromkeys(["extractive", self.assistant.settings.llm]))

    def assistant_for(self, answerer: str | None):
        """The assistant answering with `answerer`; all of them share one index, model and store."""
        if not answerer or answerer not in self.answerers():
            return self.assistant
        if answerer not in self._by_answerer:
            self._by_answerer[answerer] = self.assistant.with_llm(answerer)
        return self._by_answerer[answerer]

    # Conversation ------------------------------------------------------------------------------

    def session(self, session_id: str | None, answerer: str | None = None, user: str | None = None) -> ChatSession:
        """The tab's conversation; with a signed-in `user`, saved under that user (another user
        asking for the same id gets their own)."""
        if user:
            from .users import UserChatSession

            return UserChatSession(self.assistant_for(answerer), session_id or None, owner=user)
        return ChatSession(self.assistant_for(answerer), session_id or None)

    def respond(
        self, message: str, messages: list | None, session_id: str | None, k: float | None = None, answerer: str | None = None,
        user: str | None = None,
    ) -> Iterator[tuple]:
        """Answer `message` in the tab's session; yields (messages, source panel, session id, input box)
        as the answer grows, so the page shows it progressively.

        With an LLM, its answer text is shown as the model writes it (unchecked, with a cursor); the
        checked answer with its citations then replaces it, or the extractive answer and the reason
        when no quote of the model's was found verbatim. Without one, the answer is shown a part at a time."""
        messages = list(messages or [])
        message = (message or "").strip()
        session = self.session(session_id, answerer, user)
        if not message:
            yield messages, self.sources(session.history), session.session_id, ""
            return
        messages.append({"role": "user", "content": render_question(message)})
        messages.append({"role": "assistant", "content": "*Searching the documents…*"})
        earlier = self.sources(session.history)
        yield messages, earlier, session.session_id, ""
        written, answer = "", None
        for item in session.ask_stream(message, k=int(k) if k else None):
            if isinstance(item, Answer):
                answer = item
                continue
            written += item
            messages[-1] = {"role": "assistant", "content": escape(written) + WRITING}
            yield messages, earlier, session.session_id, ""
        turn = len(session.history)
        if written:
            messages[-1] = {"role": "assistant", "content": render_answer(answer, turn)}
        else:
            shown = ""
            for part in answer_parts(answer, turn):
                shown += part
                messages[-1] = {"role": "assistant", "content": shown}
                yield messages, earlier, session.session_id, ""
        yield messages, self.sources(session.history), session.session_id, ""

    def sources(self, history: list[Answer]) -> str:
        return source_panel(history, self.assistant.document_text)

    def resume(self, session_id: str, user: str | None = None) -> tuple[list, str, str, str]:
        """Reload a saved session (of `user`, when signed in): its messages and cited passages, and a status line."""
        session_id = (session_id or "").strip()
        try:
            session = self.session(session_id, user=user)
        except ValueError as exc:
            return [], self.sources([]), "", f"Cannot open that session: {escape(str(exc))}."
        if not session.history:
            return [], self.sources([]), session.session_id, f"No saved session {escape(session_id)}; a new one starts with your next question."
        messages = []
        for turn, answer in enumerate(session.history, 1):
            messages.append({"role": "user", "content": render_question(answer.question)})
            messages.append({"role": "assistant", "content": render_answer(answer, turn)})
        status = f"Resumed session {escape(session.session_id)} ({len(session.history)} turns)."
        return messages, self.sources(session.history), session.session_id, status

    def new_chat(self, user: str | None = None) -> tuple[list, str, str, str]:
        session = self.session(None, user=user)
        return [], self.sources([]), session.session_id, f"New session {session.session_id}."

    # Documents ---------------------------------------------------------------------------------

    def document_names(self) -> list[str]:
        return list(self.assistant.documents())

    def documents(self) -> str:
        return documents_table(self.assistant.documents())

    def upload(self, files: list | None, progress=None) -> tuple[str, str, list[str]]:
        """Save uploaded files with the documents and index them; returns (status markdown,
        document table, document names).

        A file is kept under `uploads/` in the docs folder, so a later `assistant index` (which
        mirrors that folder) keeps it and a restart still has it; a name already taken by a
        different file gets a numbered name, never overwriting it. Each file is citable by the next
        question; a rejected file is listed with the reason and not kept."""
        paths = [Path(getattr(f, "name", f)) for f in (files or [])]
        if not paths:
            return f"Choose {', '.join(supported_suffixes())} files to add.", self.documents(), self.document_names()
        lines = []
        for n, path in enumerate(paths):
            if progress is not None:
                progress((n, len(paths)), desc=f"Indexing {path.name}")
            try:
                load_file(path)  # refuse a bad file before keeping it
                with self._write_lock:
                    saved = keep_upload(path, Path(self.assistant.settings.docs_dir) / UPLOADS)
                    source = f"{UPLOADS}/{saved.name}"
                    report = self.assistant.add_file(saved, source=source)
            except IngestError as exc:
                lines.append(f"- {escape(path.name)}: rejected — {escape(str(exc))}")
                continue
            state = "unchanged" if report.unchanged else "indexed"
            renamed = f" (saved as {escape(source)}: the name was taken)" if saved.name != path.name else ""
            lines.append(f"- {escape(path.name)}: {state}, {report.chunks} new chunk(s){renamed}")
        if progress is not None:
            progress((len(paths), len(paths)), desc="Done")
        return "\n".join(lines), self.documents(), self.document_names()

    def remove(self, source: str | None) -> tuple[str, str, list[str]]:
        if not source:
            return "Pick a document to remove.", self.documents(), self.document_names()
        if source not in self.assistant.documents():
            return f"{escape(source)} is not indexed.", self.documents(), self.document_names()
        docs_dir = Path(self.assistant.settings.docs_dir)
        with self._write_lock:
            self.assistant.remove(source)
            if source.startswith(f"{UPLOADS}/"):
                (docs_dir / source).unlink(missing_ok=True)  # an upload lives only here: gone from disk too
                return f"Removed {escape(source)} from the index and the documents folder.", self.documents(), self.document_names()
        note = " It is still in the documents folder: the next `assistant index` adds it back." if (docs_dir / source).exists() else ""
        return f"Removed {escape(source)}.{note}", self.documents(), self.document_names()


def build_app(assistant, users=None):
    """The page; with `users` (a `users.UserStore`), each request acts as its signed-in user."""
    import gradio as gr

    from .ui_auth import PageHandlers

    h = ChatHandlers(assistant)
    page = PageHandlers(h, users, assistant.settings.documents_admin_only)
    manage = users is None or not page.admin_only  # otherwise admins get the document controls when the page loads
    suffixes = supported_suffixes()
    with gr.Blocks(title="Document assistant", fill_width=True) as app:
        session_id = gr.State(None)
        gr.Markdown("## Document assistant\nAnswers quote the documents verbatim; every quote is checked against its source. "
                    "Click a marker such as [1] to see its passage.")
        with gr.Row(visible=users is not None):
            who = gr.Markdown(elem_id="who", visible=False)
            gr.Button("Sign out", link="logout", size="sm", scale=0, elem_id="sign-out")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(elem_id="chat", height=560, label="Conversation", buttons=["copy"], feedback_options=None)
                with gr.Row():
                    box = gr.Textbox(placeholder="Ask about the documents…", show_label=False, scale=5, elem_id="question", autofocus=True)
                    send = gr.Button("Ask", variant="primary", scale=1, elem_id="ask")
                gr.Examples(EXAMPLES[:1], inputs=box)
            with gr.Column(scale=2):
                gr.Markdown("### Sources")
                sources = gr.HTML(h.sources([]), elem_id="sources", max_height=640)
        with gr.Accordion("Documents and settings", open=False, elem_id="manage"):
            with gr.Row():
                with gr.Column():
                    upload = gr.File(label=f"Add documents ({', '.join(suffixes)})", file_count="multiple",
                                     file_types=suffixes, elem_id="upload", visible=manage)
                    upload_status = gr.Markdown(elem_id="upload-status")
                    with gr.Row():
                        pick = gr.Dropdown(h.document_names(), label="Document", elem_id="pick", scale=3, visible=manage)
                        remove = gr.Button("Remove", variant="stop", scale=1, elem_id="remove", visible=manage)
                with gr.Column():
                    table = gr.HTML(h.documents(), elem_id="documents")
                    k = gr.Slider(1, 20, value=assistant.settings.k, step=1, label="Passages per question (k)", elem_id="k")
                    answerer = gr.Dropdown(h.answerers(), value=assistant.settings.llm, label="Answerer", elem_id="answerer",
                                           visible=len(h.answerers()) > 1)
                    with gr.Row():
                        resume_id = gr.Textbox(label="Session id", placeholder="resume a saved session", scale=3, elem_id="session-id")
                        resume = gr.Button("Resume", scale=1)
                        new = gr.Button("New chat", scale=1, elem_id="new-chat")
                    session_status = gr.Markdown(elem_id="session-status")

        outputs = [chatbot, sources, session_id, box]
        # Each handler acts as the request's signed-in user (see ui_auth.PageHandlers).
        box.submit(page.respond, [box, chatbot, session_id, k, answerer], outputs, api_name="respond")
        send.click(page.respond, [box, chatbot, session_id, k, answerer], outputs, api_name=False)
        upload.upload(page.upload, [upload], [upload_status, table, pick, upload], api_name="upload")
        remove.click(page.remove, [pick], [upload_status, table, pick], api_name="remove")
        resume.click(page.resume, [resume_id], [chatbot, sources, session_id, session_status], api_name=False)
        new.click(page.new_chat, None, [chatbot, sources, session_id, session_status], api_name=False)
        # Each tab opens with the current document list (another tab may have changed it).
        app.load(page.load, None, [table, pick, upload, remove, who, upload_status], api_name=False)
    return app


def _stop_on_sigterm() -> None:
    """Let `kill PID` stop the server cleanly: Gradio's blocking loop exits on KeyboardInterrupt only."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


def serve(assistant, host: str = "127.0.0.1", port: int = 7860, users=None) -> None:
    """Serve the web chat; with `users` (a `users.UserStore`), only signed-in users get in."""
    from .ui_auth import launch_options

    app = build_app(assistant, users)
    _stop_on_sigterm()
    app.queue(default_concurrency_limit=4).launch(
        server_name=host, server_port=port, show_error=True, css=CSS, head=PAGE_SCRIPT, footer_links=[],
        **launch_options(users, host),
    )
