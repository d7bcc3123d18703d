"""The textbook baselines: 1000/200 chunks at true offsets, verbatim quotes, a dense store reused by content."""

from __future__ import annotations

import pytest

from assistant.eval.baselines import CHUNK_SIZE, SentenceBank, TextbookBaseline, question_embeddings, split
from assistant.index.embed import SentenceEmbeddings
from assistant.ingest.scan import scan

from conftest import SEEDS


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    from assistant import Settings

    docs, _ = scan(SEEDS)
    settings = Settings(index_dir=tmp_path_factory.mktemp("baselines"))
    embeddings = question_embeddings(settings)
    return docs, embeddings, SentenceBank(docs, embeddings, settings.index_threads)


def test_chunks_are_at_their_true_offsets():
    docs, _ = scan(SEEDS)
    chunks = split(docs)
    text = docs[0].text
    assert len(chunks) > 3 and all(text[c.start : c.end] == c.text and len(c.text) <= CHUNK_SIZE for c in chunks)
    assert chunks[1].start < chunks[0].end  # they overlap


@pytest.mark.parametrize("kind", ["bm25", "dense"])
def test_baseline_quotes_whole_sentences_verbatim_and_never_abstains(kind, parts, tmp_path):
    from assistant import Settings

    docs, embeddings, bank = parts
    baseline = TextbookBaseline(kind, Settings(index_dir=tmp_path / "idx"), docs, embeddings, bank)
    ans = baseline.ask("How many soldiers deserted?", k=3)
    text = docs[0].text
    assert not ans.abstained and len(ans.passages) == 3 and 1 <= len(ans.citations) <= 3
    assert all(text[c.start : c.end] == c.quote for c in ans.citations)
    assert ans.answer == ans.citations[0].quote and 0 <= ans.confidence <= 1
    assert ans.citations[0].score >= ans.citations[-1].score
    assert baseline.ask("What is the capital of Mongolia?").abstained is False


def test_dense_store_is_reused_by_content(parts, tmp_path):
    from assistant import Settings

    docs, embeddings, bank = parts
    settings = Settings(index_dir=tmp_path / "idx")
    first = TextbookBaseline("dense", settings, docs, embeddings, bank)
    ids = sorted(first.store.get(include=[])["ids"])
    again = TextbookBaseline("dense", settings, docs, embeddings, bank)
    assert sorted(again.store.get(include=[])["ids"]) == ids == sorted(c.id for c in first.chunks)


def test_unknown_baseline_is_refused(parts):
    from assistant import Settings

    docs, embeddings, bank = parts
    with pytest.raises(ValueError, match="choose one of"):
        TextbookBaseline("tfidf", Settings(), docs, embeddings, bank)


def test_baselines_embed_questions_as_ours_does(parts, tmp_path, monkeypatch):
    """By the ONNX export, not torch: otherwise the latency ratio compares two backends."""
    from assistant import Settings

    docs, embeddings, bank = parts
    baseline = TextbookBaseline("dense", Settings(index_dir=tmp_path / "idx"), docs, embeddings, bank)

    def torch_used(*args, **kwargs):
        raise AssertionError("a question was embedded with torch")

    monkeypatch.setattr(SentenceEmbeddings, "_using", torch_used)
    assert baseline.ask("How many soldiers deserted?").citations
