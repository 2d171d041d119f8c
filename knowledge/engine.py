"""The query engine: condense -> hybrid retrieve -> answer with numbered citations -> confidence -> abstain or not.

It is a LlamaIndex `BaseQueryEngine` (so `aquery()` works and returns a `Response` whose metadata holds our
`Answer`), and its `answer()` is what the knowledge port calls. Confidence is the calibrated probability that the
best passage answers the question (`knowledge.calibration`), scaled down when the answer cites markers that point at
no passage or leaves paragraphs uncited. Below the abstain threshold the engine abstains *before* calling the LLM,
so a hopeless question costs no tokens and cannot produce a guess; it also abstains when the answerer declines
(Claude's NO_ANSWER sentinel) or cites nothing real. An abstention carries no text: the core words it
(`bot/strings.py`) and offers a person.

Retrieval, confidence and the extractive answerer's choice of quote read the question's focus (`knowledge.focus`:
the sentences that ask, without markup, greetings, stories and sign-offs), since a name, an order number or "Sent
from my iPhone" is on no page; Claude, the record and the reply get the customer's whole message.

Retrieved passages are screened before anything reads them: community tips are filtered out in the store unless
KNOWLEDGE_INCLUDE_COMMUNITY is on, and a passage with a planted instruction (`knowledge.safety`) is dropped, with
a log line naming its document, so neither Claude nor the extractive answerer ever sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Mapping, Sequence
from types import MappingProxyType

import structlog
from llama_index.core.async_utils import asyncio_run
from llama_index.core.base.base_query_engine import BaseQueryEngine
from llama_index.core.base.response.schema import RESPONSE_TYPE, Response
from llama_index.core.callbacks import CallbackManager
from llama_index.core.prompts.mixin import PromptDictType, PromptMixinType
from llama_index.core.schema import NodeWithScore, QueryBundle

from bot.errors import LLMUnavailable
from bot.messages import Answer, Citation, Role, Turn, Usage
from knowledge.answerers import ClaudeAnswerer, Draft, ExtractiveAnswerer
from knowledge.calibration import confidence as retrieval_confidence
from knowledge.citations import number_citations, retrieved_passage
from knowledge.focus import question_focus, search_text
from knowledge.readers import COMMUNITY
from knowledge.retrieval import Hit, HybridRetriever, metadata_filters
from knowledge.safety import PlantedInstructionDetector
from knowledge.sparse import Bm25Encoder

log = structlog.get_logger(__name__)

_MARKER = re.compile(r"\[(\d{1,3})\]")
_SENTENCE_END = re.compile(r"(?<=[.!?]|\])\s+(?=[A-Z0-9\"'(])")
_FOLLOW_UP = re.compile(r"\b(it|its|that|this|those|these|they|them|there|same|one|ones|also|else)\b", re.IGNORECASE)


def cite(draft_text: str, hits: Sequence[Hit]) -> tuple[str, tuple[Citation, ...], float]:
    """Check every [n] against the passages; return (text, citations by first use, citation coverage 0..1).

    A sentence that cites a passage we did not give (an answer citing [7] of five passages) is dropped whole: its
    claim has no source. Coverage is the share of the remaining answer paragraphs that cite a real passage.
    """
    valid = range(1, len(hits) + 1)
    grounded = "\n".join(_grounded_sentences(line, valid) for line in draft_text.split("\n"))
    text, citations = number_citations(grounded, hits)  # renumbered by first use, one per page, public links
    blocks = [b.strip() for b in re.split(r"\n\s*\n", text) if len(b.strip()) >= 25 and not b.strip().endswith(":")]
    coverage = sum(1 for b in blocks if _MARKER.search(b)) / len(blocks) if blocks else (1.0 if citations else 0.0)
    return text.strip(), citations, coverage


def _grounded_sentences(line: str, valid: range) -> str:
    sentences = _SENTENCE_END.split(line)
    kept = [s for s in sentences if all(int(m.group(1)) in valid for m in _MARKER.finditer(s))]
    return " ".join(kept) if len(kept) < len(sentences) else line


def heuristic_condense(question: str, history: Sequence[Turn]) -> str:
    """Without an LLM: a short or pronoun-led follow-up is joined to the customer's previous question. Short and
    pronoun-led are judged on the message's focus, so "Thanks! And for annual plans? Cheers, Dana" is a follow-up
    while a long new question whose story says "it" is not."""
    previous = [t.text for t in history if t.role == Role.CUSTOMER and t.text.strip() != question.strip()]
    if not previous:
        return question
    focus = question_focus(question)
    if len(focus.split()) <= 12 or _FOLLOW_UP.search(focus):
        return f"{previous[-1].strip()} {question.strip()}"
    return question


class KnowledgeQueryEngine(BaseQueryEngine):
    """Answers questions from the index with citations and a confidence; abstains rather than guesses."""

    def __init__(
        self,
        retriever: HybridRetriever,
        encoder: Bm25Encoder,
        extractive: ExtractiveAnswerer,
        claude: ClaudeAnswerer | None,
        abstain_threshold: float,
        detector: PlantedInstructionDetector | None = None,
        include_community: bool = False,
    ) -> None:
        super().__init__(callback_manager=CallbackManager([]))
        self.retriever = retriever
        self._encoder = encoder
        self._extractive = extractive
        self._claude = claude
        self._threshold = abstain_threshold
        self._detector = detector or PlantedInstructionDetector()
        self._include_community = include_community

    # --- LlamaIndex query engine interface ---

    def _get_prompt_modules(self) -> PromptMixinType:
        return {}

    def _get_prompts(self) -> PromptDictType:
        return {}

    def _update_prompts(self, prompts_dict: PromptDictType) -> None:
        return None

    def _query(self, query_bundle: QueryBundle) -> RESPONSE_TYPE:
        response: RESPONSE_TYPE = asyncio_run(self._aquery(query_bundle))
        return response

    async def _aquery(self, query_bundle: QueryBundle) -> RESPONSE_TYPE:
        answer, hits = await self._run(query_bundle.query_str, (), None)
        nodes = [NodeWithScore(node=h.node, score=h.score) for h in hits]
        return Response(response=answer.text, source_nodes=nodes, metadata={"answer": answer})

    # --- the knowledge port ---

    async def answer(
        self, question: str, history: Sequence[Turn] = (), filters: Mapping[str, str] | None = None
    ) -> Answer:
        answer, _ = await self._run(question, history, filters)
        return answer

    async def _prepare(
        self, question: str, history: Sequence[Turn], filters: Mapping[str, str] | None, stages: dict[str, float]
    ) -> tuple[str, list[Hit], float, Usage]:
        started = time.perf_counter()
        standalone, usage = question, Usage()
        if history:
            standalone = heuristic_condense(question, history)
            if self._claude is not None:
                with contextlib.suppress(LLMUnavailable):
                    standalone, usage = await self._claude.condense(question, history)
        stages["condense"] = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        query = search_text(standalone)
        found = await self.retriever.asearch(query, metadata_filters(filters, self._include_community))
        hits = await asyncio.to_thread(self.screen, found)
        # Tokenising passages is CPU work: keep it off the event loop, which must stay free for channel acks.
        confidence = await asyncio.to_thread(retrieval_confidence, query, hits, self._encoder)
        stages["retrieve"] = (time.perf_counter() - started) * 1000
        return standalone, hits, confidence, usage

    def screen(self, hits: Sequence[Hit]) -> list[Hit]:
        """The hits safe to answer from: no planted instruction, and no community tip unless those are included
        (the store already filters them; this also covers chunks a filter cannot see)."""
        kept = []
        for hit in hits:
            if not self._include_community and hit.meta("trust") == COMMUNITY:
                continue
            finding = self._detector.scan(f"{hit.meta('title')}\n{hit.meta('section')}\n{hit.text}")
            if finding is not None:
                log.warning(
                    "knowledge.passage_excluded",
                    doc_id=hit.doc_id,
                    chunk_id=hit.node.node_id,
                    reason=finding.kind,
                    sentence=finding.sentence[:120],
                )
                continue
            kept.append(hit)
        return kept

    async def _run(
        self, question: str, history: Sequence[Turn], filters: Mapping[str, str] | None
    ) -> tuple[Answer, list[Hit]]:
        stages: dict[str, float] = {}
        standalone, hits, confidence, usage = await self._prepare(question, history, filters, stages)
        started = time.perf_counter()
        draft: Draft | None = None
        if confidence >= self._threshold and self._claude is not None:
            with contextlib.suppress(LLMUnavailable):
                draft = await self._claude.answer(standalone, hits)
        answer = await self._complete(draft, hits, confidence, usage, stages, started, standalone, question)
        return answer, hits

    async def _complete(
        self,
        draft: Draft | None,
        hits: Sequence[Hit],
        confidence: float,
        usage: Usage,
        stages: dict[str, float],
        started: float,
        standalone: str,
        question: str,
    ) -> Answer:
        """Fall back to the extractive answerer when Claude gave nothing, then build the Answer; the CPU work runs in
        a worker thread so the event loop stays free for channel acks."""
        if draft is None and confidence >= self._threshold:
            draft = await asyncio.to_thread(self._extractive.answer, search_text(standalone), hits)
        stages["generate"] = (time.perf_counter() - started) * 1000
        return await asyncio.to_thread(self._finish, draft, hits, confidence, usage, stages, standalone, question)

    def _finish(
        self,
        draft: Draft | None,
        hits: Sequence[Hit],
        retrieval: float,
        condense_usage: Usage,
        stages: dict[str, float],
        standalone: str,
        question: str,
    ) -> Answer:
        usage = condense_usage
        if draft is not None and draft.usage.model:
            usage = Usage(
                model=draft.usage.model,
                input_tokens=draft.usage.input_tokens + condense_usage.input_tokens,
                output_tokens=draft.usage.output_tokens + condense_usage.output_tokens,
                cost_usd=draft.usage.cost_usd + condense_usage.cost_usd,
            )
        answerer = draft.answerer if draft is not None else "none"
        text, citations, coverage = cite(draft.text, hits) if draft is not None else ("", (), 0.0)
        confidence = round(retrieval * (0.6 + 0.4 * coverage), 4) if citations else 0.0
        abstained = draft is None or draft.declined or confidence < self._threshold or not citations
        log.info(
            "knowledge.answered",
            answerer=answerer,
            retrieval_confidence=retrieval,
            confidence=confidence,
            abstained=abstained,
            hits=len(hits),
        )
        shown = () if abstained else citations
        cited = {c.chunk_id for c in shown}
        passages = tuple(retrieved_passage(h) for h in hits if h.node.node_id not in cited)
        return Answer(
            text="" if abstained else text,
            citations=shown,
            confidence=confidence if not abstained else min(confidence, retrieval),
            grounded=not abstained and coverage >= 0.999,
            abstained=abstained,
            answerer=answerer,
            usage=usage,
            stage_ms=MappingProxyType(dict(stages)),
            standalone_question=standalone if standalone != question else "",
            passages=passages,
        )
