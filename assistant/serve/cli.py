"""The `assistant` command: index, ask, chat, serve (and eval, where installed)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import AssistantError, UsageError  # noqa: F401  (UsageError: importable from here too)
from ..ingest.formats import describe as describe_formats
from ..settings import Settings


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {}
    if getattr(args, "docs", None):
        overrides["docs_dir"] = Path(args.docs)
    if getattr(args, "index", None):
        overrides["index_dir"] = Path(args.index)
    if getattr(args, "k", None) is not None:
        overrides["k"] = args.k
    if getattr(args, "llm", None):
        overrides["llm"] = args.llm
    if getattr(args, "reader", None):
        overrides["reader"] = args.reader
    if getattr(args, "users", None):
        overrides["users_file"] = Path(args.users)
    return Settings(**overrides)


def explain_settings_error(exc) -> str:
    """A pydantic ValidationError of `Settings` as one line naming each variable, e.g.
    "ASSISTANT_K (-k): input should be greater than or equal to 1, got 0"."""
    flags = {"k": "-k", "llm": "--llm", "reader": "--reader", "docs_dir": "--docs", "index_dir": "--index",
             "users_file": "--users"}
    parts = []
    for err in exc.errors():
        name = str(err["loc"][0]) if err.get("loc") else ""
        where = f"ASSISTANT_{name.upper()}" + (f" ({flags[name]})" if name in flags else "")
        message = err["msg"].removeprefix("Value error, ")
        got = f", got {err['input']!r}" if "input" in err and not isinstance(err["input"], dict) else ""
        parts.append(f"{where}: {message[:1].lower()}{message[1:]}{got}")
    return "; ".join(parts)


def _assistant(args: argparse.Namespace, auto_index: bool = True):
    from ..assistant import Assistant

    settings = _settings(args)
    bot = Assistant(settings, auto_index=False)
    if auto_index and not bot.has_documents():
        print(f"No index yet in {settings.index_dir}: indexing {settings.docs_dir} first.", file=sys.stderr)
        _index_and_report(bot, [settings.docs_dir], out=sys.stderr)  # stdout stays the answer
    return bot


def _index_and_report(bot, paths: list[Path], prune: bool = False, out=None) -> int:
    try:
        report = bot.index_paths(paths, prune=prune, progress=True, require=True)
    finally:
        for s in bot.skipped:
            # a file name may hold a newline or other control characters: one line per skipped file
            print(f"skipped {s.path.encode('unicode_escape').decode('ascii') if not s.path.isprintable() else s.path}: {s.reason}",
                  file=sys.stderr)
    print(
        f"indexed {report.indexed} document(s): {len(report.added)} added, {len(report.updated)} updated, "
        f"{len(report.unchanged)} unchanged, {len(report.removed)} removed; {report.chunks} new chunk(s); "
        f"{len(bot.skipped)} skipped. Store: {bot.settings.index_dir} ({bot.index.name})",
        file=out or sys.stdout,
    )
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    bot = _assistant(args, auto_index=False)
    folders = [Path(p) for p in args.paths] or [bot.settings.docs_dir]
    # Indexing the whole docs folder mirrors it: files deleted from it leave the index too.
    return _index_and_report(bot, folders, prune=args.prune or not args.paths)


def _print_answer(answer, as_json: bool, streamed: str = "") -> None:
    if as_json:
        print(json.dumps(answer.to_dict(), ensure_ascii=False, indent=2))
        return
    if answer.note:
        print(f"note: {answer.note}", file=sys.stderr)
    if answer.answer != streamed.strip():  # the checked answer, where it differs from what streamed
        print(("checked answer: " if streamed else "") + answer.answer)
    for claim in answer.unsupported:
        print(f"  (unsupported by any quote: {claim})")
    for c in answer.citations:
        changed = " (the source has changed since this answer)" if c.changed else ""
        print(f"  [{c.id}] {c.label} {c.start}-{c.end}: “{c.quote}”{changed}")


def cmd_ask(args: argparse.Namespace) -> int:
    bot = _assistant(args)
    streamed = ""
    for item in bot.ask_stream(args.question, k=args.k):
        if isinstance(item, str):
            if not args.json:  # the LLM's words as they come; the checked answer follows
                print(item, end="", flush=True)
                streamed += item
        else:
            answer = item
    if streamed:
        print()
    _print_answer(answer, args.json, streamed)
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    bot = _assistant(args)
    session = bot.chat(args.session)
    print(f"Chat session {session.session_id} (empty line or Ctrl-D to leave).")
    while True:
        try:
            question = input("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if not question:
            return 0
        _print_answer(session.ask(question), False)


def cmd_serve(args: argparse.Namespace) -> int:
    from .ui import serve
    from .users import open_users

    users = open_users(_settings(args).users_file)  # a missing or empty users file stops here, before any indexing
    bot = _assistant(args)
    serve(bot, host=args.host, port=args.port, users=users)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="assistant", description="Answers questions about your documents, quoting them verbatim.")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--docs", help="documents folder (default: ASSISTANT_DOCS_DIR or seeds/)")
        p.add_argument("--index", help="index folder (default: ASSISTANT_INDEX_DIR or index/)")

    def llm_option(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--llm",
            help="answerer: extractive, local, openai:<model> or ollama:<model> (default: ASSISTANT_LLM or extractive)",
        )
        p.add_argument(
            "--reader",
            help="extractive answers by the trained reader (on), by sentence scoring (off), or by a reader folder "
            "(default: ASSISTANT_READER or on)",
        )

    p = sub.add_parser("index", help="index documents (default: the docs folder)",
                       description=f"Index {describe_formats('and')} files; unchanged files are skipped.")
    p.add_argument("paths", nargs="*", help="folders or files to index")
    p.add_argument("--prune", action="store_true", help="remove indexed documents not found under PATHS (always on without PATHS)")
    common(p)
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("ask", help="answer one question", description="Answer one question with quoted citations.")
    p.add_argument("question")
    p.add_argument("--json", action="store_true", help="print the answer record as JSON")
    p.add_argument("-k", type=int, help="passages to retrieve (default: ASSISTANT_K or 5)")
    common(p)
    llm_option(p)
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("chat", help="a conversation in the terminal", description="Ask questions in turn; follow-ups use earlier turns.")
    p.add_argument("--session", help="resume (or name) a saved session")
    common(p)
    llm_option(p)
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("serve", help="the web chat (Gradio)", description="Serve the web chat.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--users", metavar="FILE", help="require sign-in with the accounts in FILE (default: ASSISTANT_USERS_FILE; "
                   "see `assistant users`)")
    common(p)
    llm_option(p)
    p.set_defaults(func=cmd_serve)

    from .users_cli import add_users_parser

    add_users_parser(sub)

    try:
        from ..eval.cli import add_eval_parser
    except ImportError:
        pass
    else:
        add_eval_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from pydantic import ValidationError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValidationError as exc:
        print(f"assistant: {explain_settings_error(exc)}", file=sys.stderr)
        return 2
    except AssistantError as exc:  # anything else is a bug: its traceback shows
        print(f"assistant: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
