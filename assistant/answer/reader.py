"""Read: the project's extractive reader finds the answer span in a passage, or says it has none.

A MiniLM (all-MiniLM-L6-v2) fine-tuned by `tools/train_reader.py` on SQuAD, SQuAD 2.0 style:
start and end logits over the passage's tokens, and the [CLS] token's pair as the no-answer
score. It ships as an int8 ONNX file with its tokenizer in `assistant/models/reader/` (package
data) and runs on onnxruntime, so answering imports neither torch nor transformers.

Training and inference cut (question, passage) into the same windows through `Windows`, so the
model is used exactly as it was trained.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

MODEL_FILE = "reader.onnx"
META_FILE = "reader.json"
TOKENIZER_FILE = "tokenizer.json"
MAX_QUESTION_TOKENS = 64
MAX_ANSWER_TOKENS = 30


def bundled_reader_dir() -> Path:
    """The shipped reader's folder, found through importlib.resources (a wheel has it too)."""
    return Path(str(resources.files("assistant") / "models" / "reader"))


class Windows:
    """Token windows of (question, passage) pairs: the question whole (cut at 64 tokens), the passage
    in windows of `max_length` tokens overlapping by `stride`, offsets into the passage string."""

    def __init__(self, tokenizer_file: Path, max_length: int, stride: int) -> None:
        from tokenizers import Tokenizer

        self.max_length, self.stride = max_length, stride
        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self.tokenizer.no_padding()
        self._question = Tokenizer.from_file(str(tokenizer_file))
        self._question.no_padding()
        self._question.no_truncation()
        self.tokenizer.enable_truncation(max_length, stride=stride, strategy="only_second")

    def _short_question(self, question: str) -> str:
        """At most MAX_QUESTION_TOKENS of the question, its end kept: a follow-up read with its
        earlier turn puts that turn first and the question itself last."""
        enc = self._question.encode(question, add_special_tokens=False)
        if len(enc.ids) <= MAX_QUESTION_TOKENS:
            return question
        return question[enc.offsets[-MAX_QUESTION_TOKENS][0] :]

    def encode(self, question: str, passages: list[str]) -> list[list]:
        """For each passage, its windows (tokenizers `Encoding`s; `sequence_ids` marks the passage)."""
        return self.encode_each([question] * len(passages), passages)

    def encode_each(self, questions: list[str], passages: list[str]) -> list[list]:
        """The windows of each (question, passage) pair."""
        if not passages:
            return []
        pairs = [(self._short_question(q.strip() or "?"), p) for q, p in zip(questions, passages)]
        return [[enc, *enc.overflowing] for enc in self.tokenizer.encode_batch(pairs)]


def feeds(encodings: list, input_names: list[str]) -> dict[str, np.ndarray]:
    """A right-padded batch of windows, as the model's named int64 inputs."""
    width = max(len(e.ids) for e in encodings)
    arrays = {name: np.zeros((len(encodings), width), dtype=np.int64) for name in input_names}
    for row, enc in enumerate(encodings):
        values = {"input_ids": enc.ids, "attention_mask": enc.attention_mask, "token_type_ids": enc.type_ids}
        for name in input_names:
            arrays[name][row, : len(enc.ids)] = values[name]
    return arrays


@dataclass(frozen=True)
class Reading:
    """The reader's verdict on one passage: its best span (character offsets into the passage) and
    how much that span beats the no-answer score (`margin`; below 0 the reader says "not here")."""

    start: int
    end: int
    span_score: float
    null_score: float

    @property
    def margin(self) -> float:
        return self.span_score - self.null_score


def best_span(start_logits: np.ndarray, end_logits: np.ndarray, enc) -> tuple[int, int, float] | None:
    """The highest-scoring (start, end) token pair inside the passage, as character offsets."""
    seq = enc.sequence_ids
    passage = np.array([s == 1 for s in seq[: len(start_logits)]])
    if not passage.any():
        return None
    s = np.where(passage, start_logits[: len(passage)], -np.inf)
    e = np.where(passage, end_logits[: len(passage)], -np.inf)
    n = len(passage)
    # pair scores for end - start in [0, MAX_ANSWER_TOKENS): an n x MAX band, not an n x n matrix
    best = (-np.inf, 0, 0)
    for width in range(min(MAX_ANSWER_TOKENS, n)):
        total = s[: n - width] + e[width:]
        i = int(np.argmax(total))
        if total[i] > best[0]:
            best = (float(total[i]), i, i + width)
    score, i, j = best
    if not np.isfinite(score):
        return None
    return enc.offsets[i][0], enc.offsets[j][1], score


class Reader:
    """The trained reader on onnxruntime: `read(question, passages)` gives one `Reading` per passage."""

    def __init__(self, folder: Path, threads: int = 1) -> None:
        import onnxruntime as ort

        self.folder = Path(folder)
        self.meta = json.loads((self.folder / META_FILE).read_text(encoding="utf-8"))
        self.windows = Windows(self.folder / TOKENIZER_FILE, int(self.meta["max_length"]), int(self.meta["stride"]))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.folder / MODEL_FILE), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def read(self, question: str, passages: list[str], batch: int = 16) -> list[Reading | None]:
        """Each passage's best span and no-answer score; None for a passage with no readable tokens.

        A passage longer than one window is read in overlapping windows: its span is the best of
        any window and its no-answer score the lowest (the window that sees the answer decides)."""
        per_passage = self.windows.encode(question, passages)
        flat = [(p, enc) for p, encs in enumerate(per_passage) for enc in encs]
        starts, ends = [], []
        for i in range(0, len(flat), batch):
            chunk = [enc for _, enc in flat[i : i + batch]]
            s, e = self.session.run(None, feeds(chunk, self.inputs))  # onnxruntime runs are thread-safe
            starts.extend(s)
            ends.extend(e)
        readings: list[Reading | None] = [None] * len(passages)
        nulls = [np.inf] * len(passages)
        spans: list[tuple[int, int, float] | None] = [None] * len(passages)
        for (p, enc), s, e in zip(flat, starts, ends):
            nulls[p] = min(nulls[p], float(s[0] + e[0]))
            found = best_span(s, e, enc)
            if found and (spans[p] is None or found[2] > spans[p][2]):
                spans[p] = found
        for p, found in enumerate(spans):
            if found is not None:
                readings[p] = Reading(found[0], found[1], found[2], nulls[p])
        return readings


_opened: dict[Path, Reader] = {}
_open_lock = threading.Lock()


def open_reader(folder: Path | None = None, threads: int = 1) -> Reader | None:
    """The reader in `folder` (default: the shipped one), loaded once per process; None if absent."""
    folder = Path(folder) if folder else bundled_reader_dir()
    with _open_lock:
        if folder not in _opened:
            if not (folder / META_FILE).is_file():
                return None
            _opened[folder] = Reader(folder, threads)
        return _opened[folder]
