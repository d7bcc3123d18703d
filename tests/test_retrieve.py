"""Which document a conversation is about, from the passages and citations of its turns."""

from assistant.answer.retrieve import TURN_DECAY, Passage, conversation_document, conversation_evidence
from assistant.index.chunk import Chunk
from assistant.records import Answer, Citation


def turn(sources: list[str], cited: str | None = None) -> Answer:
    answer = Answer("q", "a", cited is None)
    answer.passages = [{"source": s, "start": 0, "end": 1} for s in sources]
    if cited:
        answer.citations = [Citation(1, cited, 0, 1, "x", 0.5)]
    return answer


def ranked(sources: list[str]) -> list[Passage]:
    return [Passage(Chunk(str(i), s, "d", 0, 1, "x"), 1.0 / (i + 1)) for i, s in enumerate(sources)]


def test_a_turns_passages_count_by_rank_and_its_citation_as_much_as_its_best():
    assert conversation_evidence([turn(["a", "b", "a"], cited="b")], k=5) == {
        "a": TURN_DECAY * (1 + 1 / 3), "b": TURN_DECAY * (1 / 2 + 1),
    }


def test_later_turns_weigh_more_and_only_the_top_k_passages_count():
    evidence = conversation_evidence([turn(["old"]), turn(["new", "far"])], k=1)
    assert evidence == {"old": TURN_DECAY**2, "new": TURN_DECAY}


def test_the_first_question_that_found_another_document_is_outvoted_by_the_turns_after_it():
    # The first answer quoted "wrong", but the follow-ups keep finding "story".
    history = [turn(["wrong", "story"], cited="wrong"), turn(["story", "wrong"]), turn(["story"])]
    assert conversation_document(conversation_evidence(history, 5), ranked(["other", "story"]), 5) == "story"


def test_this_turns_own_search_counts_too():
    evidence = {"story": 0.6, "other": 0.5}
    assert conversation_document(evidence, ranked(["story"]), 5) == "story"
    assert conversation_document(evidence, ranked(["other"]), 5) == "other"


def test_no_conversation_no_document():
    assert conversation_evidence([], 5) == {}
    assert conversation_document({}, ranked(["a"]), 5) is None
