"""The assistant as LangChain parts, composed with other runnables, on the real model."""

from __future__ import annotations

import asyncio

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.runnables import RunnableLambda

from assistant.records import Answer


def test_retriever_documents_slice_their_exact_text_out_of_the_source(seed_bot):
    docs = seed_bot.as_retriever(k=3).invoke("How many soldiers deserted?")
    assert len(docs) == 3 and all(isinstance(d, Document) for d in docs)
    for d in docs:
        text = (seed_bot.settings.docs_dir / d.metadata["source"]).read_text(encoding="utf-8")
        assert text[d.metadata["start"] : d.metadata["end"]] == d.page_content
        assert {"page", "score", "dense", "bm25"} <= set(d.metadata)
    assert any("deserted" in d.page_content for d in docs)


def test_runnable_batch_stream_and_async(seed_bot):
    runnable = seed_bot.as_runnable()
    first, second = runnable.batch(["How many soldiers deserted?", "What is the capital of Mongolia?"])
    assert "18" in first.answer and second.abstained
    items = list(runnable.stream("How many soldiers deserted?"))
    assert isinstance(items[-1], Answer) and "18" in items[-1].answer
    assert asyncio.run(runnable.ainvoke("How many soldiers deserted?")).answer == first.answer


def test_an_lcel_pipeline_maps_the_answer_to_a_string_and_callbacks_see_it(seed_bot):
    seen = []

    class Recorder(BaseCallbackHandler):
        def on_chain_end(self, outputs, **kwargs):
            seen.append(outputs)

    chain = seed_bot.as_runnable() | RunnableLambda(lambda a: f"{a.answer} [{a.citations[0].source}]")
    out = chain.invoke("How many soldiers deserted?", config={"callbacks": [Recorder()]})
    assert out.startswith("18") and out.endswith("000_aa3b016887bfe7d3.txt]")
    assert any(isinstance(o, Answer) for o in seen)


def test_a_session_input_continues_the_conversation(seed_bot):
    runnable = seed_bot.as_runnable()
    runnable.invoke({"question": "How many soldiers deserted?", "session_id": "lc-test"})
    follow = runnable.invoke({"question": "Where were they deployed?", "session_id": "lc-test"})
    assert follow.query != follow.question  # read with the earlier turn
    assert len(seed_bot.chat("lc-test").history) == 2
