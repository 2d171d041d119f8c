"""Answerers turn a question and retrieved passages into text with [n] citations.

`ClaudeAnswerer` calls Claude through `llama-index-llms-anthropic` (timeout and retries with exponential backoff
are the Anthropic SDK's own; a purgatory circuit breaker stops calling after repeated failures until a cool-down
passes). `ExtractiveAnswerer` needs nothing: it quotes the most relevant whole units (sentences, list items with
their lead-in, table rows with their header; see `knowledge.segments`) of the best passages with their citations,
so the bot stays useful offline, with no API key, and while the breaker is open.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from bot import metrics
from bot.errors import LLMUnavailable
from bot.messages import Turn, Usage
from knowledge.budget import DailyBudget
from knowledge.citations import page_key
from knowledge.prompts import (
    NO_ANSWER,
    SYSTEM_PROMPT,
    condense_prompt,
    fence_documents,
    leaks_prompt,
    user_message,
)
from knowledge.retrieval import Hit
from knowledge.safety import PlantedInstructionDetector
from knowledge.segments import Unit, segment
from knowledge.sparse import Bm25Encoder

log = structlog.get_logger(__name__)

# Expected answer types: a "how long" question wants a duration, a "how many" or "limit" question a number.
ASKS_DURATION = re.compile(
    r"\bhow (long|soon|quickly|fast)\b|\buntil when\b|\bvalid\b|\bexpires?\b|\bdeadline\b|\bwithin\b|\bkept\b",
    re.IGNORECASE,
)
ASKS_NUMBER = re.compile(
    r"\bhow (many|much|big|large|often)\b|\blimits?\b|\brate\b|\bmaximum\b|\bminimum\b|\bmax\b|\bcost\b|"
    r"\bprice\b|\bsize\b",
    re.IGNORECASE,
)
_QUESTION_WORDS = re.compile(r"\bhow (long|soon|quickly|fast|many|much|big|large|often)\b", re.IGNORECASE)
DURATION = re.compile(
    r"\b\d+(?:[.,]\d+)?(?:\*\*)?[\s-]*(?:\*\*)?(?:business |calendar |working )?"
    r"(?:seconds?|minutes?|min|hours?|h|days?|weeks?|months?|years?)\b",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"\d")
# Signposts talk about the page rather than the product ("This page describes when a refund is possible"): they
# share the question's words and state nothing, so they rank below any unit that states something.
SIGNPOST = re.compile(
    r"\bthis (page|article|guide|section|document)\b|\b(described|explained|covered) (in|on|below|above)\b|"
    r"^see \W|^for (more|details)\b",
    re.IGNORECASE,
)
SIGNPOST_WEIGHT = 0.3


@dataclass(frozen=True, slots=True)
class Draft:
    """An answer before citations are checked: text with [n] markers (n = position in the passages, from 1)."""

    text: str
    answerer: str
    usage: Usage = field(default_factory=Usage)
    declined: bool = False  # the answerer said the passages do not answer the question


class UnitRanker:
    """Scores quotable units against a question: the IDF-weighted question terms each unit contains (IDF from the
    candidate units, so a word every unit shares counts for little), the heading above it at a lower weight, and a
    nudge towards units holding the kind of answer the question asks for: a duration for "how long" / "valid" /
    "expire", a number for "how many" / "limit" / "cost". Measured in `bench/bench_extractive.py`: on the Samsung
    e-manual set this beats raw overlap, BM25 term-frequency weighting (it favours short units) and MiniLM cosine.
    """

    def __init__(self, encoder: Bm25Encoder, type_boost: float = 1.4, context_weight: float = 0.3) -> None:
        self._encoder = encoder
        self._type_boost = type_boost
        self._context_weight = context_weight  # the heading above a unit helps, but less than the unit's own words

    def rank(self, question: str, units: Sequence[Unit]) -> list[float]:
        """One score per unit (0 = shares no question term), in the units' order."""
        # "how long" / "how many" say what kind of answer is wanted; as words they match nothing useful
        terms = set(self._encoder.query(_QUESTION_WORDS.sub(" ", question)).indices)
        texts = [self._terms(unit.quoted, terms) for unit in units]
        contexts = [self._terms(unit.context, terms) for unit in units]
        count = len(units)
        frequency = {t: sum(1 for text in texts if t in text) for t in terms}
        idf = {t: math.log(1 + (count - n + 0.5) / (n + 0.5)) for t, n in frequency.items()}
        wants_duration = ASKS_DURATION.search(question) is not None
        wants_number = wants_duration or ASKS_NUMBER.search(question) is not None
        scores = []
        for unit, text, context in zip(units, texts, contexts, strict=True):
            # A table row means what its table's heading says ("Rate limits"): its heading counts in full.
            weight = 1.0 if unit.kind == "row" else self._context_weight
            score = sum(idf[t] for t in text) + weight * sum(idf[t] for t in context - text)
            if score and wants_duration and DURATION.search(unit.quoted):
                score *= self._type_boost * self._type_boost
            elif score and wants_number and _NUMBER.search(unit.quoted):
                score *= self._type_boost
            if SIGNPOST.search(unit.text):
                score *= SIGNPOST_WEIGHT
            scores.append(score)
        return scores

    def _terms(self, text: str, terms: set[int]) -> set[int]:
        return set(self._encoder.document(text).indices) & terms if text else set()


@dataclass(frozen=True, slots=True)
class _Pick:
    score: float
    passage: int  # 1-based position in the hits: the [n] marker
    unit: Unit


class ExtractiveAnswerer:
    """Quotes the best whole units (sentences, list items with their lead-in, table rows with their header) of the
    top passages, best first, each with its [n]."""

    name = "extractive"

    def __init__(
        self,
        encoder: Bm25Encoder,
        max_units: int = 3,
        min_share: float = 0.25,
        detector: PlantedInstructionDetector | None = None,
        window: int = 2,
    ) -> None:
        self._ranker = UnitRanker(encoder)
        # The engine drops passages with planted instructions; checking each unit again keeps this answerer safe
        # on its own (the bench, the eval) too.
        self._detector = detector or PlantedInstructionDetector()
        self._max_units = max_units
        # A unit scoring below this share of the best one is not quoted. 0.25 keeps the three best units in most
        # answers (0.5 cut a fifth of the reference answer's words on the Samsung bench, 0.546 vs 0.673).
        self.min_share = min_share
        # After the best unit, quote the next `window` units under the same heading. Measured on the retrieved
        # passages (fact in answer, answerable questions): Samsung 0.157 -> 0.272 with 2 (1: 0.214; instead a
        # 4th/5th best unit: 0.192/0.226 for as many words), sample set 0.533 -> 0.567.
        self.window = window

    def answer(self, question: str, hits: Sequence[Hit]) -> Draft:
        picks = self.select(question, hits)
        if not picks:
            return Draft(text="", answerer=self.name, declined=True)
        return Draft(text=render(picks, hits), answerer=self.name)

    def select(self, question: str, hits: Sequence[Hit]) -> list[_Pick]:
        """The units to quote, best first. Every retrieved passage's units set the word statistics (one passage
        alone makes its own topic word look rare); only passages close to the best one are quoted."""
        best = hits[0].cosine if hits else 0.0
        quotable = self._quotable
        pool = [(index, unit) for index, hit in enumerate(hits, 1) for unit in segment(hit.text) if quotable(unit)]
        if not pool:
            return []
        scores = self._ranker.rank(question, [unit for _, unit in pool])
        close = {index for index, hit in enumerate(hits, 1) if index == 1 or hit.cosine >= best - 0.15}
        ranked = sorted(
            (_Pick(score, index, unit) for score, (index, unit) in zip(scores, pool, strict=True) if index in close),
            key=lambda pick: (-pick.score, pick.passage, pick.unit.position),
        )
        if ranked[0].score <= 0:  # nothing shares a word with the question: the best passage's opening
            return [pick for pick in ranked if pick.passage == ranked[0].passage][:1]
        chosen: list[_Pick] = []
        for pick in ranked:
            if len(chosen) == self._max_units or pick.score < self.min_share * ranked[0].score:
                break
            if not any(_overlaps(pick, other) for other in chosen):
                chosen.append(pick)
        return self._with_window(chosen, pool)

    def _with_window(self, chosen: list[_Pick], pool: Sequence[tuple[int, Unit]]) -> list[_Pick]:
        """The best unit and the `window` units right after it under the same heading: an answer often goes on in
        the next sentence or step ("From Settings, tap Location." then "Tap to turn on Location services.")."""
        if not chosen or not self.window:
            return chosen
        best = chosen[0]
        taken = {(pick.passage, pick.unit.position) for pick in chosen}
        following = [
            unit
            for index, unit in pool
            if index == best.passage
            and best.unit.position < unit.position <= best.unit.position + self.window
            and unit.context == best.unit.context
            and unit.kind != "list"
        ]
        extra = [_Pick(0.0, best.passage, unit) for unit in following if (best.passage, unit.position) not in taken]
        return [*chosen, *[pick for pick in extra if not any(_overlaps(pick, other) for other in chosen)]]

    def _quotable(self, unit: Unit) -> bool:
        """Not a planted instruction, and not the tail of a sentence cut off by a chunk boundary."""
        fragment = unit.kind == "sentence" and unit.text[:1].islower()
        return len(unit.text) > 3 and not fragment and self._detector.scan(unit.quoted) is None


def _overlaps(pick: _Pick, other: _Pick) -> bool:
    """A list quoted whole already holds its items; an item already quoted makes its whole list redundant."""
    same_list = pick.passage == other.passage and pick.unit.group == other.unit.group and pick.unit.group >= 0
    return same_list and "list" in (pick.unit.kind, other.unit.kind)


def render(picks: Sequence[_Pick], hits: Sequence[Hit]) -> str:
    """Markdown: per page (in order of its best unit) a label line and the quoted units in document order, each
    ending with its [n] and set apart by an empty quote line; a list's lead-in is quoted once, above its items."""
    pages: dict[str, list[_Pick]] = {}
    for pick in picks:
        pages.setdefault(page_key(hits[pick.passage - 1]), []).append(pick)
    blocks = []
    for group in pages.values():
        group.sort(key=lambda p: (p.passage, p.unit.position))
        hit = hits[group[0].passage - 1]
        section = group[0].unit.context or hit.meta("section")  # the heading right above the first quoted unit
        label = f"**{hit.meta('title')}**" + (f" ({section})" if section and section != hit.meta("title") else "")
        lines = [label + ":"]
        leads_done: set[tuple[int, int]] = set()
        for number, pick in enumerate(group):
            unit = pick.unit
            same_list = number > 0 and unit.lead and (pick.passage, unit.group) in leads_done
            if number > 0 and not same_list:
                lines.append(">")  # a quoted paragraph break: separate units do not run together when rendered
            if unit.lead and (pick.passage, unit.group) not in leads_done:
                lines.append(f"> {unit.lead}")
                leads_done.add((pick.passage, unit.group))
            body = unit.text.split("\n")
            body[-1] = f"{body[-1]} [{pick.passage}]"
            lines += [f"> {line}" for line in body]
        blocks.append("\n".join(lines))
    return "Here is what the help centre says:\n\n" + "\n\n".join(blocks)


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
        budget: DailyBudget | None = None,
    ) -> None:
        self._budget = budget  # past LLM_DAILY_BUDGET_USD, calls are refused and answers fall back to extractive
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
        if self._budget is not None and not await self._budget.allows():
            raise LLMUnavailable("daily budget reached")
        try:
            breaker = await self._breaker.get_breaker("anthropic")
            async with breaker:
                response = await self._llm.achat(messages, **kwargs)
        except OpenedState as exc:
            metrics.LLM_CIRCUIT_OPEN.set(1)
            raise LLMUnavailable("circuit open") from exc
        except Exception as exc:
            log.warning("knowledge.llm_failed", error=type(exc).__name__)
            raise LLMUnavailable(type(exc).__name__) from exc
        metrics.LLM_CIRCUIT_OPEN.set(0)  # a call went through: the breaker is closed (again)
        raw_usage = response.raw.get("usage") if isinstance(response.raw, dict) else None
        usage = self.usage(
            int(getattr(raw_usage, "input_tokens", 0) or 0), int(getattr(raw_usage, "output_tokens", 0) or 0)
        )
        return str(response.message.content or ""), usage

    async def condense(self, question: str, history: Sequence[Turn]) -> tuple[str, Usage]:
        from llama_index.core.llms import ChatMessage, MessageRole

        prompt = condense_prompt(question, history)
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
        # The sentinel anywhere counts: Claude sometimes explains first ("The documents don't cover this. NO_ANSWER"),
        # and the sentinel must never reach a customer as text.
        declined = not text or NO_ANSWER in text
        return Draft(text="" if declined else text, answerer=self.name, usage=usage, declined=declined)
