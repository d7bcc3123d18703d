"""Lexical index: BM25 over committed chunks, saved under the index folder and loaded by new readers."""

from __future__ import annotations

import time

import numpy as np

from assistant import Assistant, Settings
from assistant.index.chunk import Chunk
from assistant.index.lexical import LexicalCache, LexicalIndex, cache_key
from assistant.index.terms import terms

QUESTION = "How many soldiers deserted?"


def wait_for(predicate, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_saved_index_searches_and_weighs_terms_like_the_original(seed_bot, tmp_path):
    original = LexicalIndex(seed_bot.index.all_chunks())
    original.save(tmp_path / "copy")
    copy = LexicalIndex.load(tmp_path / "copy")
    assert [c.id for c in copy.chunks] == [c.id for c in original.chunks]
    assert copy.chunks[3] == original.chunks[3]
    for question in (QUESTION, "Who is reporting that soldiers are aiding Russia?", "zebra"):
        assert copy.search(terms(question), 5) == original.search(terms(question), 5)
    for term in ("soldier", "desert", "unseen"):
        assert np.isclose(copy.idf(term), original.idf(term))


def test_a_new_reader_loads_the_saved_index_and_a_change_replaces_it(docs, tmp_path):
    settings = Settings(docs_dir=docs, index_dir=tmp_path / "index")
    bot = Assistant(settings)
    assert bot.ask(QUESTION).answer
    folder = settings.index_dir / "lexical" / bot.index.name
    assert wait_for(lambda: folder.is_dir() and any(p.is_dir() and not p.name.startswith(".") for p in folder.iterdir()))
    (first,) = [p for p in folder.iterdir() if not p.name.startswith(".")]
    signature = frozenset((s, m["digest"]) for s, m in bot.index.committed().items())
    assert first.name == cache_key(signature)
    assert [c.id for c in LexicalCache(folder).get(signature).chunks] == [c.id for c in bot.retriever.lexical().chunks]

    (docs / "extra.md").write_text("# Penguins\nEmperor penguins breed in the Antarctic winter.", encoding="utf-8")
    bot.index_folder()
    assert bot.retrieve("Where do emperor penguins breed?", k=1)[0].chunk.source == "extra.md"
    assert wait_for(lambda: not first.exists() and len([p for p in folder.iterdir() if not p.name.startswith(".")]) == 1)


def test_a_damaged_copy_is_rebuilt_and_answers_stay_right(docs, tmp_path):
    settings = Settings(docs_dir=docs, index_dir=tmp_path / "index")
    bot = Assistant(settings)
    bot.retriever.lexical()
    folder = settings.index_dir / "lexical" / bot.index.name
    saved_copies = lambda: [p for p in folder.iterdir() if not p.name.startswith(".")] if folder.is_dir() else []  # noqa: E731
    assert wait_for(lambda: len(saved_copies()) == 1)  # not a `.tmp-` folder of a save in progress
    (saved,) = saved_copies()
    (saved / "chunks.jsonl").write_text("not json\n", encoding="utf-8")
    reader = Assistant(settings, auto_index=False)
    answer = reader.ask(QUESTION)
    assert answer.answer in {"18", "Some 18"} and not answer.abstained


def test_coverage_weighs_the_rare_terms_of_the_question_most():
    chunks = [Chunk(f"c{i}", f"doc{i}.txt", "d", 0, len(t), t) for i, t in enumerate([
        "The padlock code issued to Bravor Linmek is QX-1234.",
        "The padlock code issued to Solten Pimvor is ZB-9876.",
        "Fresh mulch was spread along the raspberry canes near the padlock.",
    ])]
    lexical = LexicalIndex(chunks)
    asked = set(terms("What is the padlock code of Bravor Linmek?"))
    right, other, filler = (lexical.coverage(asked, c.text) for c in chunks)
    assert right == 1.0
    assert other < 0.5 < right  # the name is rarer than "padlock code", so it weighs most
    assert filler < other
    assert lexical.coverage(set(), chunks[0].text) == 0.0
