from hypothesis import given, settings
from hypothesis import strategies as st

from assistant.index.chunk import chunk_document
from assistant.ingest.scan import SourceDocument

from conftest import SEEDS


def seed_doc():
    path = next(SEEDS.glob("*.txt"))
    return SourceDocument(path.name, path.read_text(encoding="utf-8"))


def test_chunks_are_verbatim_slices_ending_on_sentences():
    doc = seed_doc()
    chunks = chunk_document(doc, 500, 120)
    assert len(chunks) > 3
    for c in chunks:
        assert doc.text[c.start : c.end] == c.text
        assert len(c.text) <= 500
    # "searching for them.The troops": the missing space is still a chunk boundary candidate,
    # so no chunk starts mid-word.
    for c in chunks:
        assert c.start == 0 or not doc.text[c.start - 1].isalpha() or doc.text[c.start - 1] in ".”"
    # Together the chunks cover the whole text.
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    assert all(i in covered for i, ch in enumerate(doc.text) if not ch.isspace())


def test_ids_derive_from_content():
    doc = seed_doc()
    assert [c.id for c in chunk_document(doc, 500, 120)] == [c.id for c in chunk_document(doc, 500, 120)]
    changed = SourceDocument(doc.source, doc.text.replace("Some 18", "Some 19"))
    assert {c.id for c in chunk_document(changed, 500, 120)}.isdisjoint({c.id for c in chunk_document(doc, 500, 120)})


@settings(max_examples=50, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("abc. ?\nXY")), min_size=1, max_size=600), st.integers(60, 200))
def test_offsets_round_trip_for_any_text(text, size):
    doc = SourceDocument("t.txt", text)
    for c in chunk_document(doc, size, size // 4):
        assert text[c.start : c.end] == c.text and len(c.text) <= size
