"""Concurrency: the running web app answers several questions at once while an index run adds
documents to the same store, and no question ever sees a half-indexed document."""

from __future__ import annotations

import html
import random
import re
import shutil
import statistics
import threading
import time
from pathlib import Path

import pytest

from assistant import Assistant, Settings
from assistant.index.sentences import split_sentences

from chroma_server import free_port
from conftest import SEEDS, SHARED_EVAL

pytestmark = pytest.mark.slow

SQUAD = SHARED_EVAL / "squad2-dev-docs"
PORTS = range(8600, 8700)
N_ORIGINAL, N_NEW = 4, 120
SENTENCES_PER_DOC = 12  # ~5 chunks a document
CLIENTS = 4
COMMIT_PAUSE = 1.0  # seconds each document-record write is held back (see CommitWatch)

# One cited passage in the source panel (ui_render.source_panel): its head and its highlighted quote.
PANEL_SOURCE = re.compile(
    r'<div class="source" id="cite-\d+-\d+"><div class="source-head">\[\d+\] (.*?) · characters (\d+)–(\d+)</div>'
    r'<div class="source-text">(.*?)</div></div>',
    re.DOTALL,
)
MARK = re.compile(r"<mark>(.*?)</mark>", re.DOTALL)


def squad_sentences() -> list[str]:
    """Distinct real sentences of the SQuAD articles, in reading order."""
    sentences: list[str] = []
    for path in sorted(SQUAD.glob("*.txt")):
        sentences += [s.text for s in split_sentences(path.read_text(encoding="utf-8")) if 60 < len(s.text) < 300]
    seen: set[str] = set()
    return [s for s in sentences if not (s in seen or seen.add(s))]


def write_docs(folder: Path, prefix: str, sentences: list[str], n: int) -> dict[str, str]:
    """`n` documents of consecutive real sentences; returns name -> its first (distinctive) sentence."""
    firsts = {}
    for i in range(n):
        part = sentences[i * SENTENCES_PER_DOC : (i + 1) * SENTENCES_PER_DOC]
        name = f"{prefix}{i:03d}.txt"
        (folder / name).write_text(" ".join(part), encoding="utf-8")
        firsts[name] = part[0]
    return firsts


def panel_citations(panel: str) -> list[tuple[str, int, int, str, str]]:
    """(source, start, end, quote, shown body) of each passage in the source panel."""
    found = []
    for label, start, end, body in PANEL_SOURCE.findall(panel):
        quote = MARK.search(body)
        assert quote, f"a cited passage without its highlighted quote: {body[:200]}"
        found.append((html.unescape(label), int(start), int(end), html.unescape(quote.group(1)), body))
    return found


class CommitWatch:
    """Holds back each write of document records (the commit marks) for `COMMIT_PAUSE` seconds.

    The index writes a group's chunks and sentences first and its records last; the pause widens
    the moment in between, when the store holds chunks of documents that are not committed, from
    milliseconds to a second, so the readers below really meet half-indexed documents. A document
    counts as committed from the moment its record write is passed on to Chroma (a little early,
    which only makes the leak checks more lenient, never wrong)."""

    def __init__(self, collection, new_sources: set[str]) -> None:
        self._upsert = collection.upsert
        self._lock = threading.Lock()
        self.new = set(new_sources)
        self.committing: set[str] = set()
        self.pauses = 0

    def upsert(self, *args, **kwargs):
        metadatas = kwargs["metadatas"] if "metadatas" in kwargs else args[3]
        sources = {m["source"] for m in metadatas or [] if "source" in m}
        if sources:  # document records; the collection may hold other bookkeeping records
            threading.Event().wait(COMMIT_PAUSE)
            with self._lock:
                self.committing.update(sources)
                self.pauses += 1
        return self._upsert(*args, **kwargs)

    def uncommitted(self) -> set[str]:
        with self._lock:
            return self.new - self.committing

    def committed_new(self) -> list[str]:
        with self._lock:
            return sorted(self.committing & self.new)


def test_the_app_keeps_answering_during_an_index_run_and_never_shows_a_half_indexed_document(tmp_path, monkeypatch):
    from gradio_client import Client

    from assistant.serve.ui import CSS, build_app

    sentences = squad_sentences()
    assert len(sentences) >= (N_ORIGINAL + N_NEW) * SENTENCES_PER_DOC, "the SQuAD documents in shared/eval are needed for this test"
    docs = tmp_path / "docs"
    docs.mkdir()
    for f in SEEDS.glob("*.txt"):
        shutil.copy(f, docs)
    originals = write_docs(docs, "orig", sentences, N_ORIGINAL)
    # Groups smaller than an index run's default, so this run of ~600 chunks commits several times.
    # The "questions" are a document's own sentences, to find where each answer came from; they
    # are no questions for the reader (which may rightly decline a statement), so the answerer here
    # is sentence scoring: what is under test is that no half-indexed document reaches an answer.
    bot = Assistant(Settings(docs_dir=docs, index_dir=tmp_path / "index", index_group=128, reader="off"))
    assert set(originals) <= set(bot.documents())
    new = write_docs(docs, "new", sentences[N_ORIGINAL * SENTENCES_PER_DOC :], N_NEW)

    watch = CommitWatch(bot.index.documents.collection, set(new))
    monkeypatch.setattr(bot.index.documents.collection, "upsert", watch.upsert)

    # As `ui.serve` launches it, but in this process and without blocking.
    app = build_app(bot).queue(default_concurrency_limit=4)
    port = free_port(PORTS)
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, css=CSS, quiet=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        run(bot, watch, url, originals, new, Client)
    finally:
        app.close()


def run(bot: Assistant, watch: CommitWatch, url: str, originals: dict[str, str], new: dict[str, str], Client) -> None:
    lock = threading.Lock()
    done = threading.Event()
    errors: list[str] = []
    answers: list[dict] = []  # every answer the app gave, with what was true when it arrived
    half_now: list[str] = []  # documents the probe just found half-indexed (for the clients to ask about)
    probe = {"half": set(), "rounds": 0}
    crashed: list[BaseException] = []  # from any thread; re-raised in the test's own

    def guarded(body):
        def run_body(*args) -> None:
            try:
                body(*args)
            except BaseException as exc:  # noqa: BLE001 - re-raised below, in the test's thread
                crashed.append(exc)
        return run_body

    def index_run() -> None:
        started = time.perf_counter()
        try:
            report = bot.index_folder(bot.settings.docs_dir)
            probe["index_seconds"] = time.perf_counter() - started
            assert sorted(report.added) == sorted(new), report
        finally:
            done.set()

    def ask(client, i: int, target: str, question: str) -> None:
        client.reset_session()  # a new conversation per question: no follow-up rewriting
        started = time.perf_counter()
        try:
            result = client.predict(question, api_name="/respond")
        except Exception as exc:  # noqa: BLE001 - counted: the test fails on any, after listing them
            with lock:
                errors.append(f"{question[:60]!r}: {type(exc).__name__}: {exc}"[:300])
            return
        during = not done.is_set()
        uncommitted = watch.uncommitted()  # taken after the answer arrived: these had no record throughout
        panel = result[1]  # (chat messages, source panel, input box): the session id is state
        cited = panel_citations(panel)
        visible = {}
        for source in {c[0] for c in cited} & set(new):
            # The retriever that produced the answer must see every chunk of the cited document.
            visible[source] = (sum(c.source == source for c in bot.retriever.lexical().chunks), bot.documents().get(source))
        with lock:
            answers.append({"seconds": time.perf_counter() - started, "target": target, "question": question, "during": during, "client": i,
                            "cited": cited, "uncommitted": uncommitted, "visible": visible, "panel": panel})

    def user(i: int) -> None:
        client = Client(url, verbose=False)
        rng = random.Random(i)
        n = i
        while not done.is_set():
            kind = n % 3
            n += 1
            with lock:
                half = list(half_now)
            committed_new = watch.committed_new()
            if kind == 1 and committed_new:
                target = rng.choice(committed_new)
            elif kind == 2:
                target = rng.choice(half or sorted(watch.uncommitted() or new))
            else:
                target = rng.choice(sorted(originals))
            ask(client, i, target, (new | originals)[target])

    def prober() -> None:
        """Directly against the store and the app's own retriever: half-indexed documents exist in
        the store, yet neither the committed chunk list, the retriever's BM25 index nor a search
        returns any of their chunks."""
        while not done.is_set():
            pending = watch.uncommitted()
            got = bot.index.chunks.get(where={"source": {"$in": sorted(pending)}}, include=["metadatas"]) if pending else {"metadatas": []}
            half = {m["source"] for m in got["metadatas"]} & watch.uncommitted()
            with lock:
                half_now[:] = sorted(half)
                probe["half"] |= half
                probe["rounds"] += 1
            # Each read is checked against what was still uncommitted right after it: those
            # documents had no record during the whole read.
            reads = [lambda: bot.index.all_chunks(), lambda: bot.retriever.lexical().chunks]
            reads += [lambda s=s: [p.chunk for p in bot.retriever.search(new[s])] for s in sorted(half)[:2]]
            for read in reads:
                seen = {c.source for c in read()}
                leaked = seen & watch.uncommitted()
                assert not leaked, f"chunks of uncommitted documents reached a reader: {sorted(leaked)}"
            counts = {}
            for c in bot.retriever.lexical().chunks:
                counts[c.source] = counts.get(c.source, 0) + 1
            # The records are read after the BM25 index: it may refresh to a newer commit while it
            # is read, and records read first would not know the documents that commit added.
            records = bot.index.committed()
            partial = {s: (n, records.get(s, {}).get("chunks")) for s, n in counts.items() if n != records.get(s, {}).get("chunks")}
            assert not partial, f"documents the retriever sees only in part (seen, committed chunks): {partial}"
            threading.Event().wait(0.05)

    indexer = threading.Thread(target=guarded(index_run), name="index-run")
    users = [threading.Thread(target=guarded(user), args=(i,), name=f"client-{i}") for i in range(CLIENTS)]
    probe_thread = threading.Thread(target=guarded(prober), name="probe")
    # The clients are connected and asking before the index run starts.
    for t in users:
        t.start()
    probe_thread.start()
    deadline = time.monotonic() + 120
    while len(answers) < CLIENTS and not errors and not crashed and time.monotonic() < deadline:
        threading.Event().wait(0.1)
    indexer.start()
    indexer.join(600)
    assert not indexer.is_alive(), "the index run did not end within 10 minutes"
    for t in [*users, probe_thread]:
        t.join(120)
    if crashed:
        raise crashed[0]

    assert not errors, f"{len(errors)} requests failed under concurrency, e.g. {errors[:3]}"
    assert watch.pauses >= 2, "the index run committed fewer than two groups: the test no longer covers a run in progress"
    assert probe["half"], f"the probe never met a half-indexed document in {probe['rounds']} rounds: the checks proved nothing"
    during = [a for a in answers if a["during"]]
    clients_during = {a["client"] for a in during}
    print(f"index run {probe['index_seconds']:.1f} s ({watch.pauses} commits, {COMMIT_PAUSE} s pause each); "
          f"{len(during)} answers during it from {len(clients_during)} clients, "
          f"median {statistics.median(a['seconds'] for a in during):.2f} s, max {max(a['seconds'] for a in during):.2f} s; "
          f"{len(probe['half'])} documents met half-indexed")
    assert during and len(clients_during) > 1, f"answers during the index run: {len(during)} from clients {clients_during}"
    assert any({c[0] for c in a["cited"]} & set(new) for a in during), "no answer during the run cited a document the run had added"
    check(bot, answers, originals)

    # After the run every new document answers its own first sentence, through the app. The app
    # reads the committed state again at most once a second (`HybridRetriever.lexical`), so a
    # question asked within that second of the run's last commit could still search the BM25
    # index of the commit before: "after the run" starts once the app has read the last one.
    bot.retriever.invalidate()
    answers.clear()
    todo = sorted(new)

    def after(i: int) -> None:
        client = Client(url, verbose=False)
        for name in todo[i::CLIENTS]:
            ask(client, i, name, new[name])

    finishers = [threading.Thread(target=guarded(after), args=(i,)) for i in range(CLIENTS)]
    for t in finishers:
        t.start()
    for t in finishers:
        t.join(300)
    if crashed:
        raise crashed[0]
    assert not errors, f"{len(errors)} requests failed after the index run, e.g. {errors[:3]}"
    assert sorted(a["target"] for a in answers) == todo
    check(bot, answers, originals)
    print(f"after the run: {len(answers)} answers, median {statistics.median(a['seconds'] for a in answers):.2f} s")
    # The list itself says what was cited: a failure's one-line summary is often all a CI log keeps,
    # and pytest shortens each string there to its head and tail, so those hold what was cited and
    # what the question gets when asked again directly once all is quiet (a moment's error, or one that lasts).
    wrong = [
        f"{a['target']} cited {[c[:3] for c in a['cited']][:2]} (question {a['question'][:60]!r}, panel {a['panel'][:300]!r}); "
        f"asked again: {[(c.source, c.start) for c in bot.ask(a['question']).citations][:2]}"
        for a in answers if not a["cited"] or a["cited"][0][0] != a["target"]
    ]
    assert not wrong, f"new documents not answered from themselves ({len(wrong)} of {len(todo)})"


def check(bot: Assistant, answers: list[dict], originals: dict[str, str]) -> None:
    """What must hold for every answer, whenever it was given."""
    for a in answers:
        assert "has changed or been removed since" not in a["panel"], a["question"]
        for source, start, end, quote, _ in a["cited"]:
            text = bot.document_text(source)
            assert text is not None and text[start:end] == quote, f"not verbatim: {source} {start}:{end} {quote!r}"
            assert source not in a["uncommitted"], f"an answer cited {source} before its record was written"
            if source in a["visible"]:
                seen, committed = a["visible"][source]
                assert seen == committed, f"{source}: the retriever saw {seen} of its {committed} chunks"
        if a["target"] in originals:
            assert a["cited"] and a["cited"][0][0] == a["target"], f"{a['target']} answered from {a['cited'][:1]}"
