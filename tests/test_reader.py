"""The shipped reader: loads offline from package data, reads spans at exact character offsets,
and scores a passage that does not answer below its no-answer score."""

from __future__ import annotations

import json
import subprocess
import sys
import unicodedata

import pytest

from assistant.answer.reader import META_FILE, MODEL_FILE, TOKENIZER_FILE, Windows, bundled_reader_dir, open_reader

from conftest import SEEDS

SEED_TEXT = (SEEDS / "000_aa3b016887bfe7d3.txt").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def reader():
    r = open_reader()
    assert r is not None, "the shipped reader is missing from assistant/models/reader"
    return r


def test_the_shipped_reader_is_package_data_under_30_mb():
    folder = bundled_reader_dir()
    for name in (MODEL_FILE, META_FILE, TOKENIZER_FILE, "README.md"):
        assert (folder / name).is_file(), name
    assert (folder / MODEL_FILE).stat().st_size < 30 * 2**20
    meta = json.loads((folder / META_FILE).read_text())
    assert {"max_length", "stride", "calibration"} <= set(meta)


def test_answering_loads_no_torch_and_no_hub():
    code = (
        "import sys; from assistant.answer.reader import open_reader; r = open_reader();"
        "x = r.read('How many soldiers deserted?', ['Some 18 North Korean soldiers are believed to have deserted.'])[0];"
        "print(x.margin > 0, 'torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert out.stdout.split() == ["True", "False", "False"], out.stderr


def test_reads_the_seed_answer(reader):
    passage = SEED_TEXT[SEED_TEXT.index("Some 18 North") :][:500]
    reading = reader.read("How many soldiers deserted?", [passage])[0]
    assert reading.margin > 0
    assert "18" in passage[reading.start : reading.end]


def _plain(text: str) -> str:
    """What the uncased WordPiece vocabulary sees: lower case, accents stripped."""
    return "".join(c for c in unicodedata.normalize("NFD", text.lower()) if unicodedata.category(c) != "Mn")


@pytest.mark.parametrize("anchor", ["searching for them.The troops", "forces.”Andriy", "“closest comrade”.Ukraine"])
def test_token_offsets_are_exact_source_characters(reader, anchor):
    """Every passage token maps back to the very characters it was read from, through the seed's
    missing spaces and curly quotes, in every window of a passage longer than one."""
    at = SEED_TEXT.index(anchor)
    passage = SEED_TEXT[max(0, at - 700) : at + 700]
    windows = Windows(bundled_reader_dir() / TOKENIZER_FILE, 128, 32).encode("Who said it?", [passage])[0]
    assert len(windows) > 1
    covered = set()
    for enc in windows:
        for token, seq, (a, b) in zip(enc.tokens, enc.sequence_ids, enc.offsets):
            if seq != 1 or token == "[UNK]":
                continue
            assert _plain(passage[a:b]) == token.removeprefix("##"), (token, passage[a:b])
            covered.add(a)
    # the word glued on after the full stop or closing quote is a token of its own, at its own offset
    glued = at - max(0, at - 700) + max(anchor.rfind("."), anchor.rfind("”")) + 1
    assert glued in covered


def test_a_passage_without_the_answer_scores_no_answer_above_its_best_span(reader):
    other = SEED_TEXT[SEED_TEXT.index("There is no doubt Moscow") :][:480]
    reading = reader.read("How many soldiers deserted?", [other])[0]
    assert reading.null_score > reading.span_score


def test_many_passages_are_read_in_one_call_in_order(reader):
    answer = "Some 18 North Korean soldiers are believed to have deserted the Russian frontline."
    other = "The committee met on Tuesday to discuss the budget for the coming year."
    readings = reader.read("How many soldiers deserted?", [other, answer, other])
    assert readings[1].margin > max(readings[0].margin, readings[2].margin)
    assert answer[readings[1].start : readings[1].end].startswith(("18", "Some 18"))
