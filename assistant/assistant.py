"""The assistant: wires ingest -> chunk -> index -> retrieve -> answer -> cite behind one object."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from .answer.cite import QuoteMismatch, verify
from .answer.reader import Reader, bundled_reader_dir, open_reader
from .answer.reader_answerer import ReadPassage, in_context, read_passages, reader_answer
from .answer.retrieve import HybridRetriever, Passage, with_best_of_each
from .answer.sentence_answerer import DEFAULT_MIN_CONFIDENCE, extractive_answer
from .chat import ChatSession, depends_on_context
from .errors import ReaderError, UsageError
from .index.embed import SentenceEmbeddings
from .index.index import Index, IndexReport
from .ingest.formats import describe as describe_formats
from .ingest.scan import IngestError, Skipped, SourceDocument, load_file, page_at, scan
from .records import NOT_FOUND, Answer
from .settings import Settings

# A conversation's latest questions searched together to find its document: CoQA's stories were
# found for 80% of follow-ups so, against 70% for the document of the previous answer.
CONVERSATION_QUESTIONS = 8


class Assistant:
    """Question answering over a folder of documents, with verbatim, checked citations.

    >>> bot = Assistant()                       # seeds/ and index/; builds the index if missing
    >>> ans = bot.ask("How many soldiers deserted?")
    >>> ans.answer, ans.citations[0].quote      # ('18', 'Some 18 North Korean soldiers ...')
    """

    def __init__(self, settings: Settings | None = None, *, auto_index: bool = True, llm_model=None, **overrides) -> None:
        """`llm_model`, a langchain chat model, answers in place of the one `settings.llm` names
        (which still labels the answers); by default that one is built on first use."""
        self.settings = settings or Settings(**overrides)
        if settings and overrides:
            self.settings = settings.with_overrides(**overrides)
        if llm_model is not None and self.settings.llm == "extractive":
            raise UsageError("an llm_model needs an `llm` setting other than extractive (it names the answerer)")
        self.embeddings = SentenceEmbeddings(
            self.settings.embedding_model, threads=self.settings.threads, cache_dir=self.settings.onnx_cache()
        )
        self.index = Index(self.settings, self.embeddings)
        self.retriever = HybridRetriever(index=self.index, k=self.settings.k)
        self.last_report: IndexReport | None = None
        self.reader = self._load_reader()
        self._llm_model = llm_model
        self.skipped: list[Skipped] = []
        if auto_index and not self.has_documents():
            self.index_folder()

    def with_llm(self, llm: str, model=None, **llm_settings) -> Assistant:
        """This assistant answering with `llm` (and `llm_*` settings such as `llm_base_url`, checked
        like the environment), by the chat model `model` if one is given; the index, models and
        retriever are shared, so it is cheap to make.

        >>> bot.with_llm("openai:gpt-4o-mini", llm_timeout=30).ask("How many soldiers deserted?")
        """
        other_fields = sorted(name for name in llm_settings if not name.startswith("llm_"))
        if other_fields:
            raise UsageError(f"with_llm changes the llm_* settings only, not {', '.join(other_fields)}: make a new Assistant")
        other = copy.copy(self)
        other.settings = self.settings.with_overrides(llm=llm, **llm_settings)
        if model is not None and other.settings.llm == "extractive":
            raise UsageError("a chat model needs an `llm` other than extractive (it names the answerer)")
        other._llm_model = model
        return other

    # Indexing ----------------------------------------------------------------------------------

    def index_paths(
        self, paths: Iterable[Path | str] | None = None, prune: bool = False, progress: bool = False, require: bool = False
    ) -> IndexReport:
        """Index folders (recursively) and files, default the docs folder; then searches see them.

        Unchanged files are skipped by content; files that cannot be used are listed with the reason
        in `self.skipped`. `prune` removes indexed documents not found under `paths`. With `require`,
        finding nothing readable raises `UsageError` before anything is written (or pruned).

        >>> bot.index_paths(["notes/", "report.pdf"]).added     # ['notes/a.md', 'report.pdf']
        """
        paths = [Path(p) for p in (paths or [self.settings.docs_dir])]
        docs: list[SourceDocument] = []
        self.skipped = skipped = []
        for path in paths:
            if path.is_file():
                try:
                    docs.append(load_file(path))
                except IngestError as exc:
                    skipped.append(Skipped(str(path), str(exc)))
                continue
            found, bad = scan(path)
            docs += found
            skipped += bad
        if require and not docs:
            raise UsageError(f"nothing could be indexed in {', '.join(map(str, paths))}: no readable {describe_formats()} files")
        return self._write(docs, prune, progress)

    def index_folder(self, folder: Path | None = None, prune: bool = True, progress: bool = False) -> IndexReport:
        """Index every supported file under `folder` (default: the docs folder), mirrored: with `prune`,
        documents no longer there leave the index. Skipped files are in `self.skipped`."""
        return self.index_paths([folder or self.settings.docs_dir], prune=prune, progress=progress)

    def add_file(self, path: Path, source: str | None = None) -> IndexReport:
        """Index one file as `source` (default: its name); raises `IngestError` with the reason when it cannot be used."""
        return self._write([load_file(Path(path), source)], prune=False, progress=False)

    def _write(self, docs: list[SourceDocument], prune: bool, progress: bool) -> IndexReport:
        """The one write path: update the index, then make the retriever read the committed state again."""
        self.last_report = self.index.update(docs, prune=prune, progress=progress)
        self.retriever.invalidate()
        return self.last_report

    def remove(self, source: str) -> None:
        self.index.remove(source)
        self.retriever.invalidate()

    def has_documents(self) -> bool:
        """Whether any document is indexed (cheap: `documents()` reads every record)."""
        return self.index.has_documents()

    def documents(self) -> dict[str, int]:
        """Indexed documents and their chunk counts."""
        return {s: int(m.get("chunks", 0)) for s, m in sorted(self.index.committed().items())}

    def document_text(self, source: str, digest: str | None = None) -> str | None:
        """The text of `source` as committed now (or of its version `digest`, while current)."""
        return self.index.document_text(source, digest)

    # Answering ---------------------------------------------------------------------------------

    def _load_reader(self) -> Reader | None:
        if self.settings.reader == "off":
            return None
        folder = bundled_reader_dir() if self.settings.reader == "on" else Path(self.settings.reader)
        reader = open_reader(folder)
        if reader is None:
            raise ReaderError(
                f"the reader model is missing from {folder}; reinstall the package, or set ASSISTANT_READER=off "
                "to answer by sentence scoring"
            )
        return reader

    @property
    def min_confidence(self) -> float:
        """The abstention threshold in force: the setting, else the answerer's own default."""
        if self.settings.min_confidence is not None:
            return self.settings.min_confidence
        if self.reader is not None:
            return float(self.reader.meta.get("calibration", {}).get("threshold", 0.5))
        return DEFAULT_MIN_CONFIDENCE

    def retrieve(self, query: str, k: int | None = None, query_vector: np.ndarray | None = None) -> list[Passage]:
        if query_vector is None:
            query_vector = self.embeddings.encode([query])[0]
        return self.retriever.search(query, k or self.settings.k, query_vector=query_vector.tolist())

    def ask(self, question: str, k: int | None = None, query: str | None = None, history: list[Answer] | None = None) -> Answer:
        """Answer `question`; `query` (default: the question) is what gets searched; `history`, the
        conversation's earlier turns, is what the reader reads a follow-up with (a question that leans
        on them, `chat.depends_on_context`, is also drawn to the document they are about)."""
        for item in self.ask_stream(question, k, query, history):
            if isinstance(item, Answer):
                return item
        raise AssertionError("ask_stream ended without an answer")

    def ask_stream(
        self, question: str, k: int | None = None, query: str | None = None, history: list[Answer] | None = None
    ) -> Iterator[str | Answer]:
        """Like `ask`, but first yields the LLM's answer text piece by piece as it is generated.

        The last item is the checked `Answer`; with `llm="extractive"` it is the only one.

        >>> for item in Assistant(llm="local").ask_stream("How many soldiers deserted?"):
        ...     print(item, end="", flush=True) if isinstance(item, str) else print("\n", item.citations)
        """
        started = time.perf_counter()
        question = question.strip()
        if not question:
            raise UsageError("the question is empty; ask something about the documents")
        query = query or question
        if query == question:
            qvec = judge = self.embeddings.encode([query])[0]
        else:
            qvec, own = self.embeddings.encode([query, question])
            judge = (qvec + own) / np.linalg.norm(qvec + own)
        k = k or self.settings.k
        # Only a follow-up that leans on earlier turns is drawn to the conversation's document; a
        # question that stands on its own is answered as if asked alone: it may have left that
        # document, and in a chat about the seed, reading it again turned an abstention (the
        # asked-for fact is not there) into a confident wrong answer. A follow-up leans whether
        # or not the chat found words to carry into its query ("Where?" after a turn that named nothing).
        follow_up = bool(history) and (query != question or depends_on_context(question))
        about = self.conversation_document(question, history or []) if follow_up and self.reader is not None else None
        for attempt in range(2):
            passages, candidates = self._passages(query, k, qvec, about)
            try:
                answer = self._extractive(question, query, passages, candidates, qvec, judge, history or [], about, follow_up)
                verify(answer, self.index.document_text)
                break
            except QuoteMismatch:
                # Another process committed a new version between reading and checking: read again.
                if attempt or not self._stale(passages + candidates):
                    raise
                self.retriever.invalidate()
        answer.question, answer.query = question, query
        if self.settings.llm != "extractive" and passages:
            answer = yield from self._generative(question, passages, answer)
        answer.passages = [
            {**p.chunk.metadata(), "id": p.chunk.id, "text": p.chunk.text, "score": round(p.score, 5)} for p in passages
        ]
        if answer.answerer != "extractive":
            verify(answer, self.index.document_text)  # the LLM's citations
        for c in answer.citations:
            c.page = page_at(self.index.document_pages(c.source), c.start)
        answer.latency_ms = (time.perf_counter() - started) * 1000
        yield answer

    def _stale(self, passages: list[Passage]) -> bool:
        current = self.index.current_digests(p.chunk.source for p in passages)
        return any(current.get(p.chunk.source) != p.chunk.digest for p in passages)

    def conversation_document(self, question: str, history: list[Answer]) -> str | None:
        """The document a conversation is about: where a search for its latest questions together
        (`question` included) finds its best passage; None before the first answer. Its questions,
        not its answers: an answer from another story would lead the rest of the conversation away."""
        if not history:
            return None
        asked = [turn.question for turn in history][-(CONVERSATION_QUESTIONS - 1) :] + [question]
        found = self.retrieve(" ".join(asked), 1)
        return found[0].chunk.source if found else None

    def _passages(self, query: str, k: int, qvec: np.ndarray, about: str | None = None) -> tuple[list[Passage], list[Passage]]:
        """The top `k` passages to show, and the ones the reader reads (with `about`, the document
        a conversation is about, its best passages too), all of documents as committed now: a
        passage of a version another process has replaced since this process last refreshed its
        lexical index is searched again, never quoted at old offsets."""
        passages, candidates = self._search(query, k, qvec, about)
        current = self.index.current_digests(p.chunk.source for p in candidates)
        if any(current.get(p.chunk.source) != p.chunk.digest for p in candidates):
            self.retriever.invalidate()  # rebuilds the lexical index from what is committed now
            passages, candidates = self._search(query, k, qvec, about)
            current = self.index.current_digests(p.chunk.source for p in candidates)
        return (
            [p for p in passages if current.get(p.chunk.source) == p.chunk.digest],
            [p for p in candidates if current.get(p.chunk.source) == p.chunk.digest],
        )

    def _search(self, query: str, k: int, qvec: np.ndarray, about: str | None = None) -> tuple[list[Passage], list[Passage]]:
        if self.reader is None:
            passages = self.retrieve(query, k, qvec)
            return passages, passages
        n, each, near = self.settings.reader_passages, self.settings.reader_each, self.settings.reader_anchor
        if about is None or not near:
            pool = self.retriever.search(query, max(k, n), query_vector=qvec.tolist(), best_of_each=each)
            return pool[:k], with_best_of_each(pool, n, each)
        ranked = self.retriever.ranked(query, qvec.tolist())
        candidates = with_best_of_each(ranked, n, each)
        chosen = {id(p) for p in candidates}
        candidates += [p for p in ranked if p.chunk.source == about and id(p) not in chosen][:near]
        return ranked[:k], candidates

    def _extractive(self, question: str, query: str, passages: list[Passage], candidates: list[Passage],
                    qvec: np.ndarray, judge: np.ndarray, history: list[Answer], about: str | None = None,
                    follow_up: bool = False) -> Answer:
        """The reader's answer, or sentence scoring's with the reader off; `follow_up`: the question
        leans on the earlier turns in `history`."""
        if candidates and self.reader is not None:
            calibration = self.reader.meta.get("calibration", {})
            prior = self.settings.reader_anchor_prior

            def read(text: str) -> list[ReadPassage]:
                return read_passages(self.reader, candidates, text, calibration, self.retriever.lexical(), about, prior)

            def answer_from(read_: list[ReadPassage], threshold: float, weak_evidence: bool = False) -> Answer:
                return reader_answer(self.index, read_, question, threshold, self.settings.max_quotes, weak_evidence)

            alone = read(question)
            answer = answer_from(alone, self.min_confidence)
            in_context_read: list[ReadPassage] = []
            if answer.abstained and follow_up and self.settings.reader_turns:
                # A follow-up the reader cannot answer alone ("Who reported it?") is read again with
                # the turn(s) it leans on. Read that way first, the earlier answer drew the reader
                # back to itself (golden follow-ups over SQuAD articles: 0.90 read alone, 0.40 with it).
                in_context_read = read(in_context(question, history, self.settings.reader_turns))
                again = answer_from(in_context_read, self.min_confidence)
                if not again.abstained:
                    answer = again
            if answer.abstained and follow_up and self.settings.followup_min_confidence < self.min_confidence:
                # A follow-up that leans on the conversation has few words of its own, so the evidence
                # calibrated on standalone questions is weak even when its passage answers it: it is
                # judged against its own, lower threshold (see the setting), by the more confident of
                # its readings (the reader was trained on follow-ups read with their earlier turn).
                best = max((r for r in (alone, in_context_read) if r), key=lambda r: r[0].confidence, default=alone)
                answer = answer_from(best, self.settings.followup_min_confidence, weak_evidence=True)
            answer.question = question
            return answer
        if passages:
            # A follow-up's context picks the passages; its sentences are judged with the question
            # itself weighing more, or the carried words pull the previous quote back.
            return extractive_answer(
                self.index, passages, question, judge, self.retriever.lexical(),
                self.min_confidence, self.settings.max_quotes,
                context=query if query != question else "", context_vec=qvec if query != question else None,
            )
        return Answer(question, NOT_FOUND, True)

    def llm_model(self, raise_errors: bool = False):
        """The configured chat model (built once), or None for the extractive answerer or when it
        cannot be built (then `raise_errors` re-raises the `LLMError`)."""
        from .answer.llm import LLMError, make_chat_model

        if self.settings.llm == "extractive":
            return None
        if self._llm_model is None:
            try:
                self._llm_model = make_chat_model(self.settings)
            except LLMError:
                if raise_errors:
                    raise
                return None
        return self._llm_model

    def _generative(self, question: str, passages: list[Passage], extractive: Answer) -> Iterator[str | Answer]:
        """The LLM's answer, keeping only citations found verbatim; else `extractive`, saying why."""
        from .answer.llm import LLMError, explain
        from .answer.llm_answerer import Checked, ModelFailed, generate

        checked = None
        try:
            model = self.llm_model(raise_errors=True)
            for item in generate(model, question, passages, self.index.document_text):
                if isinstance(item, Checked):
                    checked = item
                else:
                    yield item
        except (LLMError, ModelFailed) as exc:
            note = explain(exc.__cause__ or exc, self.settings)
            return replace(extractive, fallback=True, note=f"{note}; answered without the LLM")
        if not checked.abstained and not checked.citations:
            note = "the LLM's answer had no quote found verbatim in the passages it cited; showing the extractive answer"
            return replace(extractive, fallback=True, note=note)
        return replace(
            extractive,
            answer=checked.answer,
            abstained=checked.abstained,
            citations=checked.citations,
            answerer=self.settings.llm,
            unsupported=checked.unsupported,
            disagreement=False,  # the reader's finding is about its own quotes, which the LLM's replace
            note="",
        )

    def chat(self, session_id: str | None = None) -> ChatSession:
        """A conversation whose follow-ups are read in the light of earlier turns."""
        return ChatSession(self, session_id)

    # LangChain ---------------------------------------------------------------------------------

    def as_retriever(self, k: int | None = None):
        """A langchain `BaseRetriever` of this assistant's passages (Documents with exact offsets)."""
        from .runnables import PassageRetriever

        return PassageRetriever(assistant=self, k=k or self.settings.k)

    def as_runnable(self):
        """A langchain `Runnable`: a question in, the checked `Answer` out (invoke, batch, stream, ainvoke)."""
        from .runnables import AnswerRunnable

        return AnswerRunnable(self)


__all__ = ["Assistant", "IngestError"]
