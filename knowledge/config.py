"""The knowledge package's own configuration: plain values, no environment reading.

The composition root builds one `KnowledgeConfig` from its pydantic Settings; tests build it directly. Secrets are
plain `str` here ("" means unset) because nothing in this package prints its config. Defaults match the operator
defaults, so `KnowledgeConfig()` is a working embedded setup under ./var.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bot.confidence import ABSTAIN_THRESHOLD, LOW_CONFIDENCE_THRESHOLD

DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass(frozen=True, slots=True)
class KnowledgeConfig:
    """Every setting the knowledge engine reads (env names in the comments are the operator-facing variables)."""

    data_dir: Path = Path("./var")  # DATA_DIR: models, embedded index
    knowledge_paths: tuple[str, ...] = ()  # KNOWLEDGE_PATHS: folders the sync job ingests
    knowledge_base_url: str = ""  # KNOWLEDGE_BASE_URL: public help-centre root; cited pages link below it
    include_community: bool = False  # KNOWLEDGE_INCLUDE_COMMUNITY: answer from community tips too (marked as such)
    trusted_domains: tuple[str, ...] = ()  # KNOWLEDGE_TRUSTED_DOMAINS: hosts a page may send people to log in
    embedding_model: str = DEFAULT_EMBEDDING_MODEL  # EMBEDDING_MODEL
    embedding_batch_size: int = 8  # EMBEDDING_BATCH_SIZE
    qdrant_url: str = ""  # QDRANT_URL: "" = embedded qdrant-edge under DATA_DIR; ":memory:" = client local mode
    qdrant_api_key: str = ""  # QDRANT_API_KEY
    qdrant_collection: str = "supportbot"  # QDRANT_COLLECTION
    retrieval_top_k: int = 5  # RETRIEVAL_TOP_K
    rerank_depth: int = 20  # RERANK_DEPTH: fused candidates the cross-encoder reorders (0: no reranking)
    hybrid_fusion: Literal["score", "rrf"] = "score"  # HYBRID_FUSION: weighted score sum, or weighted RRF
    hybrid_dense_weight: float = 0.4  # HYBRID_DENSE_WEIGHT: weight of the dense (cosine) list; fit: `eval fit`
    hybrid_sparse_weight: float = 0.6  # HYBRID_SPARSE_WEIGHT: weight of the sparse (BM25) list
    hybrid_rrf_k: int = 60  # HYBRID_RRF_K: k of RRF (HYBRID_FUSION=rrf, and the stores' in-engine hybrid)
    abstain_threshold: float = ABSTAIN_THRESHOLD  # ABSTAIN_THRESHOLD: below it the engine abstains
    low_confidence_threshold: float = LOW_CONFIDENCE_THRESHOLD  # LOW_CONFIDENCE_THRESHOLD: flagged below it
    anthropic_api_key: str = ""  # ANTHROPIC_API_KEY: "" = extractive answers only
    anthropic_base_url: str = ""  # ANTHROPIC_BASE_URL
    anthropic_model: str = "claude-sonnet-4-5"  # ANTHROPIC_MODEL
    anthropic_max_tokens: int = 1024  # ANTHROPIC_MAX_TOKENS
    anthropic_timeout_seconds: float = 30.0  # ANTHROPIC_TIMEOUT_SECONDS
    anthropic_max_retries: int = 2  # ANTHROPIC_MAX_RETRIES
    llm_breaker_failures: int = 5  # LLM_BREAKER_FAILURES
    llm_breaker_reset_seconds: float = 60.0  # LLM_BREAKER_RESET_SECONDS
    llm_input_cost_per_mtok: float = 3.0  # LLM_INPUT_COST_PER_MTOK
    llm_output_cost_per_mtok: float = 15.0  # LLM_OUTPUT_COST_PER_MTOK
    llm_daily_budget_usd: float = 50.0  # LLM_DAILY_BUDGET_USD
