"""Embed: chunk vectors and, from the same pass, sentence vectors pooled from the chunk's tokens."""

from __future__ import annotations

import numpy as np
import pytest

from assistant import Settings
from assistant.index.embed import SentenceEmbeddings
from assistant.index.sentences import split_sentences

TEXT = (
    "The lighthouse keeper counted 312 gulls on Tuesday. "
    "Parliament passed the budget after a long night of debate. "
    "Her violin concerto premiered in Vienna in 1904."
)


@pytest.fixture(scope="module")
def embeddings() -> SentenceEmbeddings:
    return SentenceEmbeddings(Settings().embedding_model)


def test_text_vectors_match_a_plain_encode(embeddings):
    spans = [[(s.start, s.end) for s in split_sentences(TEXT)]]
    vectors, _ = embeddings.encode_with_spans([TEXT, "A second text."], spans + [[]])
    plain = embeddings.encode([TEXT, "A second text."])
    assert np.allclose(vectors, plain, atol=1e-4)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_each_pooled_sentence_is_nearest_to_its_own_sentence(embeddings):
    sentences = split_sentences(TEXT)
    _, pooled = embeddings.encode_with_spans([TEXT], [[(s.start, s.end) for s in sentences]])
    alone = embeddings.encode([s.text for s in sentences])
    similarity = np.array(pooled[0]) @ alone.T
    assert list(similarity.argmax(axis=1)) == list(range(len(sentences)))
    assert np.allclose(np.linalg.norm(np.array(pooled[0]), axis=1), 1.0, atol=1e-5)


def test_a_span_beyond_the_model_window_is_left_to_the_caller(embeddings):
    long = " ".join(["The river floods the valley every spring."] * 60)  # far beyond 256 tokens
    tail = (len(long) - 40, len(long))
    _, pooled = embeddings.encode_with_spans([long], [[(0, 42), tail]])
    assert pooled[0][0] is not None and pooled[0][1] is None
