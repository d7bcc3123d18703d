"""The runner: index the documents into the eval's own store, ask every golden question, score it.

The same loop serves our assistant and the textbook baselines: each is an `ask(question, k)` that
returns an `Answer`. Citations are checked again here against the files on disk, independently of
the assistant's own check, so `quote_validity` is the harness's finding, not the answerer's claim.
"""

from __future__ import annotations

import hashlib
import platform
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from tqdm.auto import tqdm

from ..errors import (
    EvalError,  # noqa: F401  (importable from here too)
    QuoteMismatch,
)
from ..ingest.formats import describe as describe_formats
from ..ingest.scan import SourceDocument, scan
from ..records import Answer
from ..settings import PROJECT_ROOT, Settings
from .golden import GoldenQuestion, GoldenSet
from .metrics import MAX_QUOTE_CHARS, Metric, compute_metrics, contains_answer, score_record

# "sentences" is ours with the reader off (sentence scoring): the answerer the reader replaced.
ANSWERERS = ("ours", "sentences", "bm25", "dense")
DEFAULT_K = 10


@dataclass
class RunResult:
    answerer: str
    records: list[dict]
    settings: dict
    metrics: dict[str, Metric] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.metrics:
            self.metrics = compute_metrics(self.records)


def eval_index_dir(base: Settings, docs_dir: Path) -> Path:
    """Default store of an eval: `<index_dir>/eval/<docs folder>-<hash of its path>`, apart from the app's index."""
    docs_dir = Path(docs_dir).resolve()
    tag = hashlib.sha1(str(docs_dir).encode()).hexdigest()[:8]
    return Path(base.index_dir) / "eval" / f"{docs_dir.name or 'docs'}-{tag}"


def load_documents(docs_dir: Path, warn: Callable[[str], None] = print) -> list[SourceDocument]:
    docs, skipped = scan(Path(docs_dir))
    for s in skipped:
        warn(f"skipped {s.path}: {s.reason}")
    if not docs:
        raise EvalError(f"no readable {describe_formats()} documents in {docs_dir}; pass the folder the golden questions are about with --docs")
    return docs


def _versions() -> dict:
    out = {"python": platform.python_version()}
    for dist in ("assistant", "langchain", "langchain-text-splitters", "chromadb", "sentence-transformers", "bm25s", "rank-bm25", "spacy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    try:
        commit = subprocess.run(["git", "-C", str(PROJECT_ROOT), "describe", "--always", "--dirty"],
                                capture_output=True, text=True, timeout=5).stdout.strip()
        if commit:
            out["git"] = commit
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def _model_name(path: str) -> str:
    p = Path(path)
    return p.parent.name if p.name in {"model", "models", ""} else p.name


def run_settings(answerer: str, settings: Settings, golden_path: Path, k: int) -> dict:
    from . import baselines

    golden_bytes = Path(golden_path).read_bytes()
    common = {
        "answerer": answerer,
        "golden": str(golden_path),
        "golden_sha1": hashlib.sha1(golden_bytes).hexdigest(),
        "docs": str(settings.docs_dir),
        "index": str(settings.index_dir),
        "embedding_model": _model_name(settings.embedding_model),
        "k": k,
        "max_quote_chars_for_hit": MAX_QUOTE_CHARS,
        "versions": _versions(),
    }
    if answerer in ("ours", "sentences"):
        return {**common, "llm": settings.llm, "chunking": {"splitter": "SentenceTextSplitter", "size": settings.chunk_size,
                "overlap": settings.chunk_overlap}, "retrieval": "hybrid BM25 + dense, reciprocal rank fusion",
                "max_quotes": settings.max_quotes, "min_confidence": settings.min_confidence,
                "reader": settings.reader, "reader_passages": settings.reader_passages, "reader_each": settings.reader_each,
                "reader_turns": settings.reader_turns}
    return {**common, "chunking": {"splitter": "RecursiveCharacterTextSplitter", "size": baselines.CHUNK_SIZE,
            "overlap": baselines.CHUNK_OVERLAP}, "retrieval": "BM25 (rank_bm25)" if answerer == "bm25" else "dense (Chroma)",
            "quotes": f"best {baselines.QUOTES} sentences by cosine among top-{baselines.QUOTE_PASSAGES} passages; never abstains"}


def make_record(item: GoldenQuestion, answer: Answer | None, texts: dict[str, str], error: str | None = None,
                conversation: str | None = None, turn: int | None = None) -> dict:
    """One question's row of the JSON: what was asked, what came back, and every flag scored on it."""
    citations = []
    if answer is not None:
        for c in answer.citations:
            source = texts.get(c.source)
            valid = source is not None and 0 <= c.start < c.end <= len(source) and source[c.start : c.end] == c.quote
            hit = len(c.quote) <= MAX_QUOTE_CHARS and contains_answer(c.quote, item.answers)
            citations.append({**c.to_dict(), "valid": valid, "hit": hit})
    abstained = answer.abstained if answer is not None else True
    flags = score_record(
        item.answers,
        answer.answer if answer is not None else "",
        abstained,
        [c["quote"] for c in citations],
        [p.get("text", "") for p in answer.passages] if answer is not None else [],
    )
    record = {
        "id": item.id,
        "question": item.question,
        "gold": list(item.answers),
        "document": item.document,
        "answer": answer.answer if answer is not None else "",
        "confidence": round(answer.confidence, 4) if answer is not None else 0.0,
        "citations": citations,
        "passages": [{k: p.get(k) for k in ("source", "start", "end")} for p in (answer.passages if answer else [])],
        "latency_ms": round(answer.latency_ms, 2) if answer is not None else None,
        **flags,
    }
    if answer is not None and answer.evidence:  # the reader answered (or declined)
        record["evidence"] = {k: round(v, 4) for k, v in answer.evidence.items()}
        if answer.answerer == "extractive":
            record["disagreement"] = answer.disagreement
    if answer is not None and answer.query and answer.query != item.question:
        record["query"] = answer.query
    if conversation is not None:
        record["conversation"], record["turn"] = conversation, turn
    if error:
        record["error"] = error
    return record


Ask = Callable[[str, int], Answer]


def ask_all(golden: GoldenSet, ask: Ask, new_chat: Callable[[], Ask], texts: dict[str, str], k: int,
            label: str = "asking", progress: bool = True) -> list[dict]:
    """Ask every question (and every conversation, turn by turn, in one chat) with a progress bar."""
    records: list[dict] = []

    def one(item: GoldenQuestion, asker: Ask, **where) -> None:
        try:
            answer, error = asker(item.question, k), None
        except QuoteMismatch as exc:  # a citation the answerer itself found not verbatim: a bug, counted invalid
            answer, error = None, f"{type(exc).__name__}: {exc}"
        records.append(make_record(item, answer, texts, error, **where))
        bar.update(1)

    with tqdm(total=len(golden), desc=label, unit="q", disable=not progress) as bar:
        for item in golden.questions:
            one(item, ask)
        for conv in golden.conversations:
            chat = new_chat()
            for turn, item in enumerate(conv.turns, 1):
                one(item, chat, conversation=conv.id, turn=turn)
    return records


def run_ours(golden: GoldenSet, golden_path: Path, settings: Settings, docs: list[SourceDocument], k: int,
             progress: bool = True, label: str = "ours") -> RunResult:
    from ..assistant import Assistant

    bot = Assistant(settings, auto_index=False)
    # The docs folder mirrored into the eval's own store: unchanged documents are skipped by content
    # digest, so a second run embeds nothing. `docs` (read by the caller) is what quotes are checked against.
    indexed = bot.index_paths([settings.docs_dir], prune=True, progress=progress)

    def new_chat() -> Ask:
        session = bot.chat()
        return lambda question, kk: session.ask(question, k=kk)

    texts = {d.source: d.text for d in docs}
    meta = run_settings(label, settings, golden_path, k)  # before asking: the code that runs is the code as of now
    meta["min_confidence"] = bot.min_confidence  # the threshold in force, the answerer's own when unset
    records = ask_all(golden, lambda q, kk: bot.ask(q, k=kk), new_chat, texts, k, label, progress)
    result = RunResult(label, records, meta)
    result.settings["indexing"] = {"added": len(indexed.added), "updated": len(indexed.updated),
                                   "unchanged": len(indexed.unchanged), "removed": len(indexed.removed), "chunks": indexed.chunks}
    return result


def run_baselines(kinds: list[str], golden: GoldenSet, golden_path: Path, settings: Settings,
                  docs: list[SourceDocument], k: int, progress: bool = True) -> list[RunResult]:
    from .baselines import SentenceBank, TextbookBaseline, question_embeddings

    embeddings = question_embeddings(settings)  # questions by ONNX, as ours: the latency ratio compares like with like
    bank = SentenceBank(docs, embeddings, settings.index_threads)
    texts = {d.source: d.text for d in docs}
    results = []
    for kind in kinds:
        baseline = TextbookBaseline(kind, settings, docs, embeddings, bank)
        # A textbook pipeline has no conversation memory: each turn is asked as it stands.
        meta = run_settings(kind, settings, golden_path, k)
        records = ask_all(golden, baseline.ask, lambda: baseline.ask, texts, k, kind, progress)
        results.append(RunResult(kind, records, meta))
    return results


def evaluate(golden: GoldenSet, golden_path: Path, settings: Settings, answerers: list[str], k: int = DEFAULT_K,
             progress: bool = True, warn: Callable[[str], None] = print) -> list[RunResult]:
    """Run each of `answerers` ("ours", "sentences", "bm25", "dense") over the same documents and questions."""
    unknown = [a for a in answerers if a not in ANSWERERS]
    if unknown:
        raise EvalError(f"unknown answerer {unknown[0]!r}; choose from {', '.join(ANSWERERS)}")
    docs = load_documents(settings.docs_dir, warn)
    results = []
    if "ours" in answerers:
        results.append(run_ours(golden, golden_path, settings, docs, k, progress))
    if "sentences" in answerers:
        off = settings.with_overrides(reader="off")
        results.append(run_ours(golden, golden_path, off, docs, k, progress, label="sentences"))
    kinds = [a for a in answerers if a not in ("ours", "sentences")]
    if kinds:
        results += run_baselines(kinds, golden, golden_path, settings, docs, k, progress)
    order = {a: i for i, a in enumerate(answerers)}
    return sorted(results, key=lambda r: order[r.answerer])
