"""Questions embedded without the torch model: an ONNX export of the same sentence-transformers model.

Importing sentence-transformers (with transformers and scikit-learn) took 3.7 s of a 6-7 s cold
start on this machine; onnxruntime and tokenizers load in 0.1 s. The first
process that loads the torch model writes the export to the model cache, checked against the torch
vectors before it is used; later processes embed questions with it. Index runs stay on torch:
they pool sentence vectors from token vectors and pay the import once for a long run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import warnings
from pathlib import Path

import numpy as np

from ..atomic import new_folder

log = logging.getLogger(__name__)

FORMAT = 1
MODEL_FILE = "model.onnx"
META_FILE = "export.json"  # written last: a folder without it is an unfinished export
# Texts the export must reproduce: short, long enough to be truncated, and a padded batch.
PROBES = [
    "How many soldiers deserted?",
    "x",
    "Some 18 soldiers are believed to have deserted the frontline, with fighters reportedly searching for them. " * 12,
    "Über 3,5 Mio. € — “curly quotes”, numbers 1999-2001 and e-mail@example.org.",
]
MAX_DEVIATION = 1e-4  # 1 - cosine; a faithful export stays near 1e-7


def fingerprint(model_path: str) -> str:
    """Names the model's files by size and modification time: cheap enough for every start, and
    any replaced weight or tokenizer file gives a new export folder."""
    root = Path(model_path)
    parts = [str(FORMAT), str(root.resolve())]
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in {".json", ".safetensors", ".bin", ".txt"}):
        stat = path.stat()
        parts.append(f"{path.relative_to(root)}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha1("\n".join(parts).encode()).hexdigest()[:16]


def export_dir(model_path: str, cache_dir: Path) -> Path:
    return Path(cache_dir) / f"{Path(model_path).name or 'model'}-{fingerprint(model_path)}"


class OnnxEncoder:
    """Unit-length vectors from the export, the way the model pools them: mean over real tokens."""

    def __init__(self, folder: Path, meta: dict) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.dimension = int(meta["dimension"])
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()  # the file may pad to a fixed length; pooling needs the real tokens
        self.tokenizer.enable_truncation(int(meta["max_seq_length"]))
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # one question at a time per call; see SentenceEmbeddings._using
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(folder / MODEL_FILE), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def encode(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        width = max(len(e.ids) for e in encodings)
        feeds = {name: np.zeros((len(texts), width), dtype=np.int64) for name in self.inputs}
        for row, enc in enumerate(encodings):
            n = len(enc.ids)
            values = {"input_ids": enc.ids, "attention_mask": enc.attention_mask, "token_type_ids": enc.type_ids}
            for name in self.inputs:
                feeds[name][row, :n] = values[name]
        tokens = self.session.run(None, feeds)[0]
        mask = feeds["attention_mask"][..., None].astype(np.float32)
        pooled = (tokens * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        return (pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)).astype(np.float32)


_opened: dict[Path, OnnxEncoder] = {}
_open_lock = threading.Lock()


def open_encoder(model_path: str, cache_dir: Path) -> OnnxEncoder | None:
    """The checked export of this model, or None (none yet, a rejected one, or no onnxruntime)."""
    folder = export_dir(model_path, cache_dir)
    with _open_lock:
        if folder in _opened:
            return _opened[folder]
        try:
            meta = json.loads((folder / META_FILE).read_text())
        except (OSError, ValueError):
            return None
        if not meta.get("ok"):
            return None
        try:
            encoder = OnnxEncoder(folder, meta)
        except Exception as exc:  # a damaged file: the torch model still answers
            log.warning("ignoring the ONNX export in %s (%s); questions are embedded with torch", folder, exc)
            return None
        _opened[folder] = encoder
        return encoder


def _supported(model) -> dict | None:
    """What the export must reproduce, or None when the pipeline is not plain transformer, mean
    pooling and (optionally) normalising: anything else stays on torch."""
    names = [type(m).__name__ for m in model]
    if names not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        return None
    if getattr(model[1], "pooling_mode", None) != "mean":
        return None
    # The tokenizer is saved with the export, lower-casing and all, so only these need recording.
    return {"max_seq_length": int(model.max_seq_length), "dimension": int(model.get_embedding_dimension())}


def export(model, model_path: str, cache_dir: Path) -> Path | None:
    """Write and check the export of a loaded SentenceTransformer, once per model and cache.

    Written into a temporary folder and renamed into place, so a crash or a second process doing
    the same leaves either nothing or a whole export. A failed check is recorded, not retried.
    """
    folder = export_dir(model_path, cache_dir)
    if (folder / META_FILE).exists():
        return folder
    meta = _supported(model)
    if meta is None:
        return None
    try:
        import onnx  # noqa: F401  torch's exporter needs it; without it questions stay on torch
        import torch
    except ImportError:
        return None
    try:
        with new_folder(folder) as work:  # another process that got there first keeps its own: as good
            hf = model[0].auto_model
            names = list(model.tokenizer.model_input_names)
            sample = model.tokenizer(PROBES[:2], padding=True, return_tensors="pt")

            class Tokens(torch.nn.Module):
                def __init__(self, inner) -> None:
                    super().__init__()
                    self.inner = inner

                def forward(self, *args):
                    return self.inner(**dict(zip(names, args))).last_hidden_state

            axes = {name: {0: "batch", 1: "tokens"} for name in [*names, "tokens"]}
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    Tokens(hf.eval()), tuple(sample[n] for n in names), str(work / MODEL_FILE),
                    input_names=names, output_names=["tokens"], dynamic_axes=axes, dynamo=False, opset_version=17,
                )
            model.tokenizer.save_pretrained(str(work))
            meta.update(format=FORMAT, model=str(Path(model_path).resolve()))
            reference = model.encode(PROBES, normalize_embeddings=True, convert_to_numpy=True)
            got = OnnxEncoder(work, meta).encode(PROBES)
            deviation = float(np.max(1.0 - (reference * got).sum(axis=1)))
            meta.update(ok=deviation <= MAX_DEVIATION, deviation=deviation)
            if not meta["ok"]:
                log.warning("the ONNX export of %s differs from torch (1 - cosine %.2g); questions stay on torch", model_path, deviation)
                for path in work.iterdir():
                    if path.name != META_FILE:
                        path.unlink()
            (work / META_FILE).write_text(json.dumps(meta, indent=1))
    except Exception as exc:  # an export is an optimisation; never fail the caller for it
        log.warning("could not export %s to ONNX (%s); questions are embedded with torch", model_path, exc)
        return None
    return folder
