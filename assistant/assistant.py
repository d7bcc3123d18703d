"""The assistant: wires ingest -> chunk -> index -> retrieve -> answer -> cite behind one object."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from .answer import extractive_answer
from .cite import verify
from .embed import SentenceEmbeddings
from .index import Index, IndexReport
from .ingest import IngestError, Skipped, load_file, page_at, scan
from .records import NOT_FOUND, Answer
from .retrieve import HybridRetriever, Passage
from .settings import Settings


class Assistant:
    """Question answering over a folder of documents, with verbatim, checked citations.

    >>> bot = Assistant()                       # seeds/ and index/; builds the index if missing
    >>> ans = bot.ask("How many soldiers deserted?")
    >>> ans.answer, ans.citations[0].quote      # ('18', 'Some 18 North Korean soldiers ...')
    """

    def __init__(self, settings: Settings | None = None, *, auto_index: bool = True, **overrides) -> None:
        self.settings = settings or Settings(**overrides)
        if settings and overrides:
            self.settings = settings.model_copy(update=overrides)
        self.embeddings = SentenceEmbeddings(
            self.settings.embedding_model, threads=self.settings.threads, cache_dir=self.settings.onnx_cache()
        )
        self.index = Index(self.settings, self.embeddings)
        self.retriever = HybridRetriever(index=self.index, k=self.settings.k)
        self.last_report: IndexReport | None = None
        self._llm_model = None  # built on first use of a non-extractive `llm` setting
        self.skipped: list[Skipped] = []
        if auto_index and not self.index.has_documents():
            self.index_folder()

    # Indexing ----------------------------------------------------------------------------------

    def index_folder(self, folder: Path | None = None, prune: bool = True, progress: bool = False) -> IndexReport:
        """Index every supported file under `folder` (default: the docs folder); skipped files in `self.skipped`."""
        docs, self.skipped = scan(Path(folder or self.settings.docs_dir))
        self.last_report = self.index.update(docs, prune=prune, progress=progress)
        self.retriever.invalidate()
        return self.last_report

    def add_file(self, path: Path, source: str | None = None) -> IndexReport:
        """Index one file (raises `IngestError` with the reason when it cannot be used)."""
        report = self.index.update([load_file(Path(path), source)])
        self.retriever.invalidate()
        return report

    def remove(self, source: str) -> None:
        self.index.remove(source)
        self.retriever.invalidate()

    def documents(self) -> dict[str, int]:
        """Indexed documents and their chunk counts."""
        return {s: int(m.get("chunks", 0)) for s, m in sorted(self.index.committed().items())}

    def document_text(self, source: str) -> str | None:
        return self.index.document_text(source)

    # Answering ---------------------------------------------------------------------------------

    def retrieve(self, query: str, k: int | None = None, query_vector: np.ndarray | None = None) -> list[Passage]:
        if query_vector is None:
            query_vector = self.embeddings.encode([query])[0]
        return self.retriever.search(query, k or self.settings.k, query_vector=query_vector.tolist())

    def ask(self, question: str, k: int | None = None, query: str | None = None) -> Answer:
        """Answer `question`; `query` (default: the question) is what gets searched."""
        for item in self.ask_stream(question, k, query):
            if isinstance(item, Answer):
                return item
        raise AssertionError("ask_stream ended without an answer")

    def ask_stream(self, question: str, k: int | None = None, query: str | None = None) -> Iterator[str | Answer]:
        """Like `ask`, but first yields the LLM's answer text piece by piece as it is generated.

        The last item is the checked `Answer`; with `llm="extractive"` it is the only one.

        >>> for item in Assistant(llm="local").ask_stream("How many soldiers deserted?"):
        ...     print(item, end="", flush=True) if isinstance(item, str) else print("\n", item.citations)
        """
        started = time.perf_counter()
        question = question.strip()
        if not question:
            raise ValueError("the question is empty; ask something about the documents")
        query = query or question
        if query == question:
            qvec = judge = self.embeddings.encode([query])[0]
        else:
            qvec, own = self.embeddings.encode([query, question])
            judge = (qvec + own) / np.linalg.norm(qvec + own)
        passages = self.retrieve(query, k, qvec)
        if passages:
            # A follow-up's context picks the passages; its sentences are judged with the question
            # itself weighing more, or the carried words pull the previous quote back.
            answer = extractive_answer(
                self.index, passages, question, judge, self.retriever.lexical(),
                self.settings.min_confidence, self.settings.max_quotes,
                context=query if query != question else "", context_vec=qvec if query != question else None,
            )
        else:
            answer = Answer(question, NOT_FOUND, True)
        answer.question, answer.query = question, query
        if self.settings.llm != "extractive" and passages:
            answer = yield from self._generative(question, passages, answer)
        answer.passages = [
            {**p.chunk.metadata(), "id": p.chunk.id, "text": p.chunk.text, "score": round(p.score, 5)} for p in passages
        ]
        verify(answer, self.index.document_text)
        for c in answer.citations:
            c.page = page_at(self.index.document_pages(c.source), c.start)
        answer.latency_ms = (time.perf_counter() - started) * 1000
        yield answer

    def llm_model(self, raise_errors: bool = False):
        """The configured chat model (built once), or None for the extractive answerer or when it
        cannot be built (then `raise_errors` re-raises the `LLMError`)."""
        from .llm import LLMError, make_chat_model

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
        from .generate import Checked, ModelFailed, generate
        from .llm import LLMError, explain

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
        )

    def chat(self, session_id: str | None = None):
        """A conversation whose follow-ups are read in the light of earlier turns."""
        from .chat import ChatSession

        return ChatSession(self, session_id)


__all__ = ["Assistant", "IngestError"]
