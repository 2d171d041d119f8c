"""The knowledge engine: ingestion, hybrid retrieval over Qdrant, answers with citations, and the retrieval eval."""

from knowledge.service import IngestReport, KnowledgeService, build_knowledge

__all__ = ["IngestReport", "KnowledgeService", "build_knowledge"]
