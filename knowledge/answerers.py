"""Answerers turn a question and retrieved passages into text with [n] citations.

`ClaudeAnswerer` calls Claude through `llama-index-llms-anthropic` (timeout and retries with exponential backoff
are the Anthropic SDK's own; a purgatory circuit breaker stops calling after repeated failures until a cool-down
passes). `ExtractiveAnswerer` needs nothing: it quotes the most relevant sentences of the best passages with their
citations, so the bot stays useful offline, with no API key, and while the breaker is open.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from bot.errors import LLMUnavailable
from bot.messages import Turn, Usage
from knowledge.prompts import (
    CONDENSE_PROMPT,
    NO_ANSWER,
    SYSTEM_PROMPT,
    fence_documents,
    history_text,
    leaks_prompt,
    user_message,
)
from knowledge.retrieval import Hit
from knowledge.sparse import Bm25Encoder

log = structlog.get_logger(__name__)

_SENTENCES = re.compile(r"(?<=[.!?])\s+|\n+")
# Sentences in a document that talk to an assistant rather than to a reader are never quoted.
INJECTION = re.compile(
    r"ignore (all |any |the )?(previous|prior|above|earlier)|disregard (all |the )?(previous|prior|above)|"
    r"system prompt|you are now|as an ai|assistant[s]?,? (must|should)|new instructions|reveal your|"
    r"(respond|reply|answer) (only )?with\b",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Draft:
    """An answer before citations are checked: text with [n] markers (n = position in the passages, from 1)."""

    text: str
    answerer: str
    usage: Usage = field(default_factory=Usage)
    declined: bool = False  # the answerer said the passages do not answer the question


class ExtractiveAnswerer:
    """Quotes the best-matching sentences of the top passages, each with its [n]."""

    name = "extractive"

    def __init__(self, encoder: Bm25Encoder, max_passages: int = 3, sentences_per_passage: int = 2) -> None:
        self._encoder = encoder
        self._max_passages = max_passages
        self._sentences = sentences_per_passage

    def answer(self, question: str, hits: Sequence[Hit]) -> Draft:
        terms = set(self._encoder.query(question).indices)
        best = hits[0].cosine if hits else 0.0
        candidates: list[tuple[int, int, str]] = []  # (question terms matched, hit number, quote)
        for index, hit in enumerate(hits, 1):
            if index > 1 and hit.cosine < best - 0.15:
                continue  # much weaker than the best passage: leave it out
            overlap, excerpt = self._excerpt(hit.text, terms)
            if excerpt:
                label = hit.meta("title") + (f" — {hit.meta('section')}" if hit.meta("section") else "")
                candidates.append((overlap, index, f"{label}:\n> {excerpt} [{index}]"))
        # The passages whose sentences match the question best come first; retrieval order breaks ties.
        chosen = sorted(candidates, key=lambda c: (-c[0], c[1]))[: self._max_passages]
        if not chosen:
            return Draft(text="", answerer=self.name, declined=True)
        quotes = [quote for _, _, quote in chosen]
        return Draft(text="Here is what the help centre says:\n\n" + "\n\n".join(quotes), answerer=self.name)

    def _excerpt(self, text: str, terms: set[int]) -> tuple[int, str]:
        """The best sentences of a passage (in their order) and how many question terms the best one matched."""
        lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]  # headings are labels
        sentences = [s.strip(" -*>\t") for s in _SENTENCES.split("\n".join(lines))]
        sentences = [s for s in sentences if len(s) > 3 and not INJECTION.search(s)]
        if not sentences:
            return 0, ""
        scored = []
        for position, sentence in enumerate(sentences):
            overlap = len(terms & set(self._encoder.document(sentence).indices))
            scored.append((overlap, -position, sentence))
        chosen = sorted(scored, reverse=True)[: self._sentences]
        if not chosen or chosen[0][0] == 0:
            chosen = [(0, -i, s) for i, s in enumerate(sentences[: self._sentences])]
        ordered = [s for _, _, s in sorted(chosen, key=lambda item: -item[1])]
        return chosen[0][0], " ".join(ordered)[:600]


class ClaudeAnswerer:
    """Claude via LlamaIndex's Anthropic LLM, behind a circuit breaker; failures raise `LLMUnavailable`."""

    name = "claude"

    def __init__(
        self,
        llm: Any,
        breaker: Any,
        model: str,
        input_cost_per_mtok: float,
        output_cost_per_mtok: float,
    ) -> None:
        self._llm = llm
        self._breaker = breaker  # purgatory AsyncCircuitBreakerFactory
        self._model = model
        self._input_cost = input_cost_per_mtok
        self._output_cost = output_cost_per_mtok

    def usage(self, input_tokens: int, output_tokens: int) -> Usage:
        cost = (input_tokens * self._input_cost + output_tokens * self._output_cost) / 1_000_000
        return Usage(model=self._model, input_tokens=input_tokens, output_tokens=output_tokens, cost_usd=cost)

    async def _chat(self, messages: list[Any], max_tokens: int | None = None) -> tuple[str, Usage]:
        from purgatory.domain.model import OpenedState

        kwargs = {"max_tokens": max_tokens} if max_tokens else {}
        try:
            breaker = await self._breaker.get_breaker("anthropic")
            async with breaker:
                response = await self._llm.achat(messages, **kwargs)
        except OpenedState as exc:
            raise LLMUnavailable("circuit open") from exc
        except Exception as exc:
            log.warning("knowledge.llm_failed", error=type(exc).__name__)
            raise LLMUnavailable(type(exc).__name__) from exc
        raw_usage = response.raw.get("usage") if isinstance(response.raw, dict) else None
        usage = self.usage(
            int(getattr(raw_usage, "input_tokens", 0) or 0), int(getattr(raw_usage, "output_tokens", 0) or 0)
        )
        return str(response.message.content or ""), usage

    async def condense(self, question: str, history: Sequence[Turn]) -> tuple[str, Usage]:
        from llama_index.core.llms import ChatMessage, MessageRole

        prompt = CONDENSE_PROMPT.format(history=history_text(history), question=question)
        text, usage = await self._chat([ChatMessage(role=MessageRole.USER, content=prompt)], max_tokens=200)
        return text.strip() or question, usage

    def _messages(self, question: str, hits: Sequence[Hit]) -> list[Any]:
        from llama_index.core.llms import ChatMessage, MessageRole

        passages = [(i, h.meta("title"), h.meta("section"), h.text) for i, h in enumerate(hits, 1)]
        return [
            ChatMessage(role=MessageRole.SYSTEM, content=SYSTEM_PROMPT),
            ChatMessage(role=MessageRole.USER, content=user_message(question, fence_documents(passages))),
        ]

    async def answer(self, question: str, hits: Sequence[Hit]) -> Draft:
        text, usage = await self._chat(self._messages(question, hits))
        return self._draft(text, usage)

    def _draft(self, text: str, usage: Usage) -> Draft:
        text = text.strip()
        if leaks_prompt(text):
            log.warning("knowledge.prompt_leak_blocked")
            return Draft(text="", answerer=self.name, usage=usage, declined=True)
        declined = not text or text.startswith(NO_ANSWER)
        return Draft(text="" if declined else text, answerer=self.name, usage=usage, declined=declined)

    async def stream(self, question: str, hits: Sequence[Hit]) -> AsyncIterator[str | Draft]:
        """Yield text deltas as they arrive, then the final `Draft`. Raises `LLMUnavailable` before the first delta."""
        from purgatory.domain.model import OpenedState

        try:
            breaker = await self._breaker.get_breaker("anthropic")
            async with breaker:
                stream = await self._llm.astream_chat(self._messages(question, hits))
                first = await anext(stream)
        except OpenedState as exc:
            raise LLMUnavailable("circuit open") from exc
        except Exception as exc:
            log.warning("knowledge.llm_failed", error=type(exc).__name__)
            raise LLMUnavailable(type(exc).__name__) from exc
        text, usage_raw = "", dict[str, Any]()
        held = ""  # hold back text that might still turn into NO_ANSWER
        async for chunk in _chain(first, stream):
            delta = chunk.delta or ""
            text += delta
            usage_raw = chunk.message.additional_kwargs.get("usage") or usage_raw
            if NO_ANSWER.startswith(text.strip()[: len(NO_ANSWER)]) and len(text.strip()) < len(NO_ANSWER):
                held += delta
                continue
            if not text.strip().startswith(NO_ANSWER):
                yield held + delta
                held = ""
        usage = self.usage(int(usage_raw.get("input_tokens") or 0), int(usage_raw.get("output_tokens") or 0))
        yield self._draft(text, usage)


async def _chain(first: Any, rest: AsyncIterator[Any]) -> AsyncIterator[Any]:
    yield first
    async for item in rest:
        yield item
