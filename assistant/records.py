"""The records the assistant hands out: an `Answer` and the `Citation`s backing it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

NOT_FOUND = "Not found in the documents."


@dataclass
class Citation:
    """A verbatim quote: `source_text[start:end] == quote`, checked before it is handed out."""

    id: int
    source: str
    start: int
    end: int
    quote: str
    score: float = 0.0
    page: int | None = None  # 1-based page for paged formats (PDF), else None
    changed: bool = False  # a saved citation whose source no longer holds the quote at its offsets

    @property
    def label(self) -> str:
        """How a person reads the source: "report.pdf p. 4", or just the name."""
        return f"{self.source} p. {self.page}" if self.page else self.source

    def to_dict(self) -> dict:
        data = asdict(self)
        if data["page"] is None:
            del data["page"]
        if not data["changed"]:
            del data["changed"]
        return data


@dataclass
class Answer:
    """What `Assistant.ask` returns; `to_dict()` is the JSON shape of `assistant ask --json`."""

    question: str
    answer: str
    abstained: bool
    citations: list[Citation] = field(default_factory=list)
    latency_ms: float = 0.0
    confidence: float = 0.0
    query: str = ""
    passages: list[dict] = field(default_factory=list)
    answerer: str = "extractive"  # the `llm` setting that wrote `answer`
    fallback: bool = False  # an LLM was asked, but this is the extractive answer (see `note`)
    note: str = ""  # why the answer fell back, in one line
    unsupported: list[str] = field(default_factory=list)  # LLM claims no surviving quote backs
    evidence: dict[str, float] = field(default_factory=dict)  # what `confidence` was computed from
    disagreement: bool = False  # the sources differ: the first two citations state different things

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "answer": self.answer,
            "abstained": self.abstained,
            "citations": [c.to_dict() for c in self.citations],
            "latency_ms": round(self.latency_ms, 1),
            "confidence": round(self.confidence, 3),
            "query": self.query or self.question,
            "answerer": self.answerer,
            "fallback": self.fallback,
            "note": self.note,
            "unsupported": list(self.unsupported),
            "disagreement": self.disagreement,
            **({"evidence": {k: round(v, 4) for k, v in self.evidence.items()}} if self.evidence else {}),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Answer:
        return cls(
            question=data["question"],
            answer=data["answer"],
            abstained=data["abstained"],
            citations=[Citation(**c) for c in data.get("citations", [])],
            latency_ms=data.get("latency_ms", 0.0),
            confidence=data.get("confidence", 0.0),
            query=data.get("query", ""),
            answerer=data.get("answerer", "extractive"),
            fallback=data.get("fallback", False),
            note=data.get("note", ""),
            unsupported=list(data.get("unsupported", [])),
            evidence=dict(data.get("evidence", {})),
            disagreement=bool(data.get("disagreement", False)),
        )
