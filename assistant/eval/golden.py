"""Golden files: JSONL questions (`id`, `question`, `answers`) and conversations (`id`, `turns`).

One loader reads both kinds, line by line: a line with `turns` is a conversation, any other line
a single question. `answers == []` means the documents do not answer it. Unknown fields are
ignored, so the SQuAD-derived files (with `title`, `is_impossible`, ...) load as they are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import GoldenFileError  # noqa: F401  (importable from here too)


@dataclass(frozen=True)
class GoldenQuestion:
    id: str
    question: str
    answers: tuple[str, ...]
    evidence: str = ""
    document: str = ""

    @property
    def answerable(self) -> bool:
        return bool(self.answers)


@dataclass(frozen=True)
class Conversation:
    id: str
    turns: tuple[GoldenQuestion, ...]


@dataclass
class GoldenSet:
    questions: list[GoldenQuestion] = field(default_factory=list)
    conversations: list[Conversation] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.questions) + sum(len(c.turns) for c in self.conversations)

    def limited(self, limit: int | None) -> GoldenSet:
        """The first `limit` items in file order (a conversation counts as one item)."""
        if limit is None:
            return self
        return GoldenSet(self.questions[:limit], self.conversations[: max(0, limit - len(self.questions))])

    def sampled(self, size: int | None, seed: int = 0) -> GoldenSet:
        """A random `size` of the items, the same for the same seed, kept in file order: a quick run
        that still spans every document (the first N of a file ordered by document would not)."""
        if size is None or size >= len(self.questions) + len(self.conversations):
            return self
        import random

        items = [("q", i) for i in range(len(self.questions))] + [("c", i) for i in range(len(self.conversations))]
        keep = set(random.Random(seed).sample(items, size))
        return GoldenSet([q for i, q in enumerate(self.questions) if ("q", i) in keep],
                         [c for i, c in enumerate(self.conversations) if ("c", i) in keep])


def _question(obj: dict, where: str, default_id: str) -> GoldenQuestion:
    question = obj.get("question")
    if not isinstance(question, str) or not question.strip():
        raise GoldenFileError(f"{where}: `question` must be a non-empty string")
    answers = obj.get("answers")
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        raise GoldenFileError(f"{where}: `answers` must be a list of strings ([] if the documents do not answer it)")
    return GoldenQuestion(
        id=str(obj.get("id") or default_id),
        question=question.strip(),
        answers=tuple(answers),
        evidence=str(obj.get("evidence") or ""),
        document=str(obj.get("document") or ""),
    )


def parse_line(line: str, where: str, default_id: str) -> GoldenQuestion | Conversation:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise GoldenFileError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from exc
    if not isinstance(obj, dict):
        raise GoldenFileError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if "turns" not in obj:
        return _question(obj, where, default_id)
    turns = obj["turns"]
    if not isinstance(turns, list) or not turns or not all(isinstance(t, dict) for t in turns):
        raise GoldenFileError(f"{where}: `turns` must be a non-empty list of {{question, answers}} objects")
    cid = str(obj.get("id") or default_id)
    return Conversation(cid, tuple(_question(t, f"{where}, turn {i}", f"{cid}#{i}") for i, t in enumerate(turns, 1)))


def load_golden(path: str | Path) -> GoldenSet:
    """Read a golden JSONL file; raises `GoldenFileError` naming the first bad line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as exc:
        raise GoldenFileError(f"golden file {path} not found; pass a JSONL file of questions") from exc
    except UnicodeDecodeError as exc:
        raise GoldenFileError(f"golden file {path} is not UTF-8 text") from exc
    golden = GoldenSet()
    seen: set[str] = set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        item = parse_line(line, where, default_id=f"line{number}")
        if item.id in seen:
            raise GoldenFileError(f"{where}: duplicate id {item.id!r}; ids must be unique so runs can be compared")
        seen.add(item.id)
        (golden.conversations if isinstance(item, Conversation) else golden.questions).append(item)
    if not len(golden):
        raise GoldenFileError(f"golden file {path} holds no questions")
    return golden
