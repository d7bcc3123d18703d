"""The assistant as LangChain parts: a retriever of cited passages and a runnable that answers.

    docs = bot.as_retriever(k=5).invoke("How many soldiers deserted?")   # Documents with offsets
    chain = bot.as_runnable() | RunnableLambda(lambda answer: answer.answer)
    chain.invoke("How many soldiers deserted?")                           # '18'

Both go through `Assistant` itself, so retrieval, reading and the quote check are the product's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableConfig
from pydantic import ConfigDict

from .errors import UsageError
from .ingest.scan import page_at
from .records import Answer

# `Assistant.as_retriever()` and `as_runnable()` make these, so this module does not import
# `Assistant` (not even for annotations): `assistant` below is an `Assistant`.


class PassageRetriever(BaseRetriever):
    """`invoke(question)` gives the top `k` passages as Documents; metadata `source`, `start`,
    `end` (so `source_text[start:end] == page_content`), `page` (PDF) and the retrieval scores."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    assistant: Any
    k: int = 5

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        docs = []
        for p in self.assistant.retrieve(query, self.k):
            c = p.chunk
            pages = self.assistant.index.document_pages(c.source, c.digest)
            metadata = {"source": c.source, "start": c.start, "end": c.end, "page": page_at(pages, c.start),
                        "digest": c.digest, "score": p.score, "dense": p.dense, "bm25": p.bm25}
            docs.append(Document(page_content=c.text, id=c.id, metadata=metadata))
        return docs


def _parse(value: str | dict) -> tuple[str, str | None]:
    if isinstance(value, str):
        return value, None
    if isinstance(value, dict) and isinstance(value.get("question"), str):
        return value["question"], value.get("session_id")
    raise UsageError("the input is a question, or {'question': ..., 'session_id': ...} to ask in a saved conversation")


class AnswerRunnable(Runnable[str | dict, Answer | str]):
    """A question (or `{"question", "session_id"}`) in, the checked `Answer` out.

    `stream` yields the LLM's text pieces as they are written (none for the extractive answerers),
    then the `Answer`; `batch` and `ainvoke` come from `Runnable`. Callbacks and other config pass
    through as for any runnable."""

    def __init__(self, assistant: Any) -> None:
        self.assistant = assistant

    def _answer(self, value: str | dict) -> Answer:
        question, session_id = _parse(value)
        if session_id:
            return self.assistant.chat(session_id).ask(question)
        return self.assistant.ask(question)

    def invoke(self, input: str | dict, config: RunnableConfig | None = None, **kwargs: Any) -> Answer:
        return self._call_with_config(self._answer, input, config, run_type="chain")

    def _pieces(self, inputs: Iterator[str | dict]) -> Iterator[str | Answer]:
        for value in inputs:
            question, session_id = _parse(value)
            if session_id:  # the turn is saved when its checked Answer, the last item, is ready
                yield from self.assistant.chat(session_id).ask_stream(question)
            else:
                yield from self.assistant.ask_stream(question)

    def stream(self, input: str | dict, config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[str | Answer]:
        yield from self._transform_stream_with_config(iter([input]), self._pieces, config, run_type="chain")
