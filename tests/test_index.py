import time
from pathlib import Path

import numpy as np

from assistant import Assistant, Settings
from assistant.answer.retrieve import REFRESH_SECONDS
from assistant.index.index import Index, chunk_record, sentence_id
from assistant.index.sentences import split_sentences
from assistant.ingest.scan import scan

QUESTION = "How many soldiers deserted?"
DESERTION = "Some 18 North Korean soldiers are believed to have deserted"


def counts(index: Index) -> tuple[int, int, int]:
    return (len(index.chunks.get()["ids"]), len(index.sentences.get()["ids"]), len(index.documents.get()["ids"]))


def test_reindexing_unchanged_files_changes_nothing(docs, tmp_path):
    bot = Assistant(docs_dir=docs, index_dir=tmp_path / "index")
    before = counts(bot.index)
    ids_before = set(bot.index.chunks.get()["ids"])
    report = bot.index_folder()
    assert report.unchanged == ["000_aa3b016887bfe7d3.txt"] and not report.added and report.chunks == 0
    assert counts(bot.index) == before and set(bot.index.chunks.get()["ids"]) == ids_before


def test_changed_file_replaces_its_chunks_and_best_passage_stays_first(docs, tmp_path):
    bot = Assistant(docs_dir=docs, index_dir=tmp_path / "index")
    seed = next(docs.glob("*.txt"))
    old_ids = set(bot.index.chunks.get()["ids"])
    # Several rounds of edits elsewhere in the file: re-upserts must not lose the best match.
    for round_ in range(3):
        seed.write_text(seed.read_text(encoding="utf-8") + f"\nAn added line number {round_} about the weather.", encoding="utf-8")
        report = bot.index_folder()
        assert report.updated == [seed.name]
        top = bot.retrieve(QUESTION, k=1)[0]
        assert DESERTION in top.chunk.text
    new_ids = set(bot.index.chunks.get()["ids"])
    assert old_ids.isdisjoint(new_ids)  # no stale chunk of the old version is left
    metas = bot.index.chunks.get(include=["metadatas"])["metadatas"]
    assert {m["digest"] for m in metas} == {bot.index.committed()[seed.name]["digest"]}
    assert "weather" in bot.document_text(seed.name)


def test_deleted_file_is_removed(docs, tmp_path):
    extra = docs / "extra.md"
    extra.write_text("# Penguins\nEmperor penguins breed in the Antarctic winter.", encoding="utf-8")
    bot = Assistant(docs_dir=docs, index_dir=tmp_path / "index")
    assert set(bot.documents()) == {"000_aa3b016887bfe7d3.txt", "extra.md"}
    extra.unlink()
    report = bot.index_folder()
    assert report.removed == ["extra.md"]
    assert set(bot.documents()) == {"000_aa3b016887bfe7d3.txt"}
    sources = {m["source"] for m in bot.index.chunks.get(include=["metadatas"])["metadatas"]}
    assert sources == {"000_aa3b016887bfe7d3.txt"}


def test_uncommitted_chunks_are_invisible(docs, tmp_path):
    """Chunks written without their document record (a crash mid-write) never reach an answer."""
    settings = Settings(docs_dir=docs, index_dir=tmp_path / "index")
    bot = Assistant(settings)
    half = docs / "half.txt"
    half.write_text("The zeppelin landed in Lakehurst at dawn.", encoding="utf-8")
    doc = scan(docs)[0][1]
    from assistant.index.chunk import chunk_document

    chunks = chunk_document(doc, settings.chunk_size, settings.chunk_overlap)
    vectors = bot.embeddings.embed_documents([c.text for c in chunks])
    bot.index.chunks.upsert([c.id for c in chunks], vectors, [chunk_record(c) for c in chunks])
    bot.retriever.invalidate()
    assert all(p.chunk.source != "half.txt" for p in bot.retrieve("Where did the zeppelin land?", k=5))
    bot.index_folder()  # the next run completes it
    assert bot.retrieve("Where did the zeppelin land?", k=1)[0].chunk.source == "half.txt"


def test_collection_name_tracks_model_and_chunking(tmp_path):
    a = Settings(index_dir=tmp_path)
    assert a.collection_name() == Settings(index_dir=tmp_path / "other").collection_name()
    assert a.collection_name() != Settings(chunk_size=800).collection_name()
    assert a.collection_name() != Settings(chunk_overlap=0).collection_name()
    assert a.collection_name() != Settings(embedding_model=str(Path(a.embedding_model).parent / "other-model")).collection_name()


def test_every_sentence_has_a_vector_even_one_longer_than_a_chunk(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    long = "The committee, " + ", ".join(f"having heard witness number {i}" for i in range(40)) + ", adjourned."
    (folder / "a.txt").write_text(f"The harbour froze in January. {long} Ships waited until March.", encoding="utf-8")
    index = Index(Settings(docs_dir=folder, index_dir=tmp_path / "index", chunk_size=200, chunk_overlap=40))
    doc = scan(folder)[0][0]
    index.update([doc])
    sentences = split_sentences(doc.text)
    assert any(len(s.text) > 200 for s in sentences)
    ids = [sentence_id(doc.source, doc.digest, s) for s in sentences]
    vectors = index.sentence_vectors(ids)
    assert set(vectors) == set(ids)
    alone = index.embeddings.encode([s.text for s in sentences])
    for i, sid in enumerate(ids):  # each stored vector is nearest to its own sentence's meaning
        assert int(np.argmax(alone @ np.asarray(vectors[sid]))) == i


def test_the_stamp_moves_with_every_commit_and_removal_and_other_readers_see_it(docs, tmp_path):
    settings = Settings(docs_dir=docs, index_dir=tmp_path / "index")
    writer = Assistant(settings)
    reader = Assistant(settings, auto_index=False)  # another user of the same store
    assert reader.retrieve(QUESTION, k=1)
    first = writer.index.stamp()
    assert first
    writer.index_folder()  # nothing changed
    assert writer.index.stamp() == first
    (docs / "extra.md").write_text("# Penguins\nEmperor penguins breed in the Antarctic winter.", encoding="utf-8")
    writer.index_folder()
    second = writer.index.stamp()
    assert second != first
    time.sleep(REFRESH_SECONDS + 0.1)
    assert reader.retrieve("Where do emperor penguins breed?", k=1)[0].chunk.source == "extra.md"
    writer.remove("extra.md")
    assert writer.index.stamp() not in {first, second}
    assert "extra.md" not in writer.documents()


def test_has_documents_follows_commits_and_removals(docs, tmp_path):
    settings = Settings(docs_dir=docs, index_dir=tmp_path / "index")
    index = Index(settings)
    assert not index.has_documents()
    index.update(scan(docs)[0])
    assert index.has_documents()
    for source in list(index.committed()):
        index.remove(source)
    assert index.stamp() and not index.has_documents()  # the stamp record is no document
