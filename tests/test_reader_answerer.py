"""The reader as the answerer: seed answers and abstentions, quotes around the span, and the
look-alike collection where only one passage names the person asked about."""

from __future__ import annotations

import random

import pytest

from assistant import Assistant, Settings
from assistant.answer.reader import Reading
from assistant.answer.reader_answerer import ReadPassage, quote_bounds, reader_answer, trim, unsupported
from assistant.answer.retrieve import Passage, with_best_of_each

SEED = "000_aa3b016887bfe7d3.txt"


def test_the_reader_is_the_default_answerer(seed_bot):
    assert seed_bot.settings.reader == "on" and seed_bot.reader is not None
    ans = seed_bot.ask("How many soldiers deserted?")
    assert not ans.abstained and "18" in ans.answer and len(ans.answer) < 40
    assert "Some 18 North Korean soldiers are believed to have deserted" in ans.citations[0].quote
    # The reader's own reading backs the answer: it does not firmly say "not here" (a seed passage
    # without the answer reads at about -11). Its sign on this chunk is not a property of the method:
    # stage 4 read +1.2, stage 5 -0.8, and reading the chunk alone rather than beside the other
    # passage moved it by 0.25 (int8 activations share one scale per batch).
    assert ans.evidence["margin"] > -2.0


@pytest.mark.parametrize("question", [
    "What is the capital of Mongolia?",
    "How much is Russia paying the North Korean soldiers?",  # invited by the seed, not answered there
])
def test_questions_the_seed_does_not_answer_abstain(seed_bot, question):
    ans = seed_bot.ask(question)
    assert ans.abstained and not ans.citations, (ans.answer, ans.confidence)


@pytest.mark.parametrize(("margin", "quote_coverage", "abstains"), [(-0.4, 0.0, True), (-0.4, 0.2, False), (0.5, 0.0, False)])
def test_an_answer_only_retrieval_speaks_for_abstains(margin, quote_coverage, abstains):
    # the reader says "not here" and the quote holds none of the question's terms: however
    # confident retrieval makes the calibration, nothing backs the answer
    passage = Passage(chunk=None, score=1.0, dense=0.6, dense_rank=0, bm25_rank=0)  # retrieval: all for it
    read = ReadPassage(passage=passage, reading=Reading(0, 5, margin, 0.0), rank=0, start=0, end=5,
                       quote_coverage=quote_coverage, confidence=0.9)
    assert unsupported(read) is abstains
    if abstains:
        assert reader_answer(None, [read], "How much are they paid?", 0.1, 2).abstained


def test_reader_off_answers_by_sentence_scoring(seed_index_dir):
    from conftest import SEEDS

    bot = Assistant(Settings(docs_dir=SEEDS, index_dir=seed_index_dir, reader="off"))
    assert bot.reader is None
    ans = bot.ask("How many soldiers deserted?")
    assert "18" in ans.answer and not ans.evidence


def test_a_bad_reader_setting_names_the_variable(tmp_path):
    with pytest.raises(ValueError, match="reader.json"):
        Settings(reader=str(tmp_path / "nowhere"))


def test_quote_is_the_whole_sentence_around_the_span_inside_the_passage():
    text = "First one here. The code is QX-1234 today. Last one."
    start = text.index("QX-1234")
    assert text[slice(*quote_bounds(text, start, start + 7, 0, len(text)))] == "The code is QX-1234 today."
    # never beyond the passage that was read
    lo = text.index("code")
    assert quote_bounds(text, start, start + 7, lo, len(text)) == (lo, text.index(" Last"))


def test_a_very_long_sentence_is_quoted_around_the_span_on_word_boundaries():
    from assistant.answer.reader_answerer import MAX_QUOTE_CHARS

    text = "Intro. " + "word " * 100 + "the answer is QX-1234 here " + "more " * 100 + "end."
    start = text.index("QX-1234")
    lo, hi = quote_bounds(text, start, start + 7, 0, len(text))
    assert lo <= start and start + 7 <= hi and hi - lo <= MAX_QUOTE_CHARS
    assert text[lo - 1] == " " and text[hi] == " "


@pytest.mark.parametrize("span, kept", [
    ("(Warsaw)", "(Warsaw)"), ("Warsaw,", "Warsaw"), ("“Sejm”.", "“Sejm”"), (" 1945)", "1945"), ("(1945", "1945"),
    ("Washington, D.C.", "Washington, D.C."), ("1945.", "1945"),
])
def test_trim_drops_stray_edges_only(span, kept):
    text = f"x {span} y"
    s, e = trim(text, 2, 2 + len(span))
    assert text[s:e] == kept


def test_candidates_add_each_retrievers_best_hit():
    from assistant.index.chunk import Chunk

    def p(i, bm25=None, dense=None):
        return Passage(Chunk(str(i), "a", "d", 0, 1, "x"), 1.0 / (i + 1), bm25_rank=bm25, dense_rank=dense)

    pool = [p(0, 1, 0), p(1, 2, 1), p(2, None, 2), p(3, 0, None), p(4, 5, 6)]
    assert [c.chunk.id for c in with_best_of_each(pool, 2, 1)] == ["0", "1", "3"]


# Look-alike documents ----------------------------------------------------------------------------

FILLER = [
    "The greenhouse on the north side was watered twice before noon.",
    "A delivery of seed trays arrived from the county depot.",
    "Volunteers sorted the tomato cuttings by height and colour.",
    "The irrigation timer was reset after the storm knocked out power.",
    "Someone left the potting shed unlocked over the weekend again.",
    "The compost heap was turned and covered with a tarpaulin.",
    "Bean seedlings in row four showed signs of aphid damage.",
    "The rota for harvesting squash was pinned to the notice board.",
    "Rain gauges recorded a wet week across all three plots.",
    "The allotment committee met to discuss the spring fair.",
    "Fresh mulch was spread along the raspberry canes.",
    "A new hose reel was fitted beside the water butt.",
]
FACTS = [
    "Gate access for {name} uses the padlock code {code}.",
    "The padlock code issued to {name} is {code}.",
    "{name} was issued the padlock code {code} by the committee.",
]
SYLLABLES = ["bra", "dov", "lin", "mek", "qua", "rix", "sol", "tem", "vor", "zan", "hul", "pim", "ost", "wen", "gal", "fer"]


def made_up_name(rng: random.Random) -> str:
    first = "".join(rng.sample(SYLLABLES, 2)).capitalize()
    last = "".join(rng.sample(SYLLABLES, 3)).capitalize()
    return f"{first} {last}"


def look_alike_collection(folder, n: int, seed: int = 7) -> dict[str, tuple[str, str]]:
    """`n` documents of the same filler, each with one fact tying a made-up name to a code;
    returns name -> (document, code)."""
    rng = random.Random(seed)
    facts, names = {}, set()
    folder.mkdir(parents=True, exist_ok=True)
    while len(facts) < n:
        name = made_up_name(rng)
        if name in names:
            continue
        names.add(name)
        code = f"{rng.choice('BCDFGHJKLMNPQRSTVWXZ')}{rng.choice('BCDFGHJKLMNPQRSTVWXZ')}-{rng.randint(1000, 9999)}"
        body = rng.sample(FILLER, 6)
        body.insert(rng.randint(0, 6), rng.choice(FACTS).format(name=name, code=code))
        source = f"plot-{len(facts):03d}.txt"
        (folder / source).write_text(" ".join(body) + "\n", encoding="utf-8")
        facts[name] = (source, code)
    return facts


@pytest.mark.slow
def test_look_alike_documents_answer_from_the_right_one(tmp_path):
    facts = look_alike_collection(tmp_path / "docs", 150)
    bot = Assistant(Settings(docs_dir=tmp_path / "docs", index_dir=tmp_path / "index"))
    right = wrong = 0
    for name, (source, code) in facts.items():
        ans = bot.ask(f"What is the padlock code of {name}?")
        if ans.abstained:
            continue
        if code in ans.answer and ans.citations[0].source == source and code in ans.citations[0].quote:
            right += 1
        else:
            wrong += 1
    print(f"look-alike: {right} right, {wrong} confidently wrong, {len(facts) - right - wrong} abstained of {len(facts)}")
    assert right >= 0.90 * len(facts)
    assert wrong <= 0.05 * len(facts)


def test_sources_that_differ_are_both_quoted_and_flagged(seed_bot):
    ans = seed_bot.ask("How many North Koreans are in the unit Russia is forming?")
    quotes = " ".join(c.quote for c in ans.citations)
    assert ans.disagreement and "Sources differ" in ans.note
    assert "some 3,000" in quotes and "absolutely nowhere near 3,000" in quotes
    from assistant.serve.ui_render import render_answer

    assert "Sources differ" in render_answer(ans, 1)


def test_an_answer_the_sources_agree_on_is_not_flagged(seed_bot):
    ans = seed_bot.ask("How many soldiers deserted?")
    assert not ans.disagreement and "Sources differ" not in ans.note
