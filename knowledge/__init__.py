"""The knowledge engine: ingestion, hybrid retrieval over Qdrant, answers with citations, and the retrieval eval.

The engine's names load on first use (PEP 562): `knowledge.service` pulls in LlamaIndex, Qdrant and ONNX, and
importing a light module of this package (`knowledge.config`, `knowledge.gaps`) must not pay for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from knowledge.service import IngestReport, KnowledgeService, build_knowledge  # lazy: types; __getattr__ loads

__all__ = ["IngestReport", "KnowledgeService", "build_knowledge"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from knowledge import service  # lazy: LlamaIndex, Qdrant and ONNX, only when the engine is asked for

        return getattr(service, name)
    raise AttributeError(f"module 'knowledge' has no attribute {name!r}")
