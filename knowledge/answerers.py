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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from bot import metrics
from bot.errors import LLMUnavailable
from bot.messages import Turn, Usage
from knowledge.budget import DailyBudget
from knowledge.chunking import SECTION_SEPARATOR
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

    def rank(self, question: str, units: Sequence[Unit], vocabulary: Sequence[Unit] | None = None) -> list[float]:
        """One score per unit (0 = shares no question term), in the units' order. The IDF comes from `vocabulary`
        (default: the units themselves), so sections made of the same units can be scored on the same scale."""
        # "how long" / "how many" say what kind of answer is wanted; as words they match nothing useful
        terms = set(self._encoder.query(_QUESTION_WORDS.sub(" ", question)).indices)
        texts = [self._terms(unit.quoted, terms) for unit in units]
        contexts = [self._terms(unit.context, terms) for unit in units]
        known = texts if vocabulary is None else [self._terms(unit.quoted, terms) for unit in vocabulary]
        count = len(known)
        frequency = {t: sum(1 for text in known if t in text) for t in terms}
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
            if SIGNPOST.search(unit.text) and vocabulary is None:
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
    # The section the unit is quoted under: (passage, section) of the first passage that holds it. A section the
    # chunker cut into several passages is one section, so its heading and its body are scored and quoted together.
    key: tuple[int, int]
    offset: int  # where the passage starts in its section: orders the units of a cut section

    @property
    def order(self) -> tuple[int, int]:
        return self.offset, self.unit.position


def _leaf(hit: Hit) -> str:
    """The innermost heading of the section the passage belongs to ("" when the page has none)."""
    return hit.meta("section").rpartition(SECTION_SEPARATOR)[2]


def _pool(hits: Sequence[Hit], quotable: Callable[[Unit], bool]) -> list[tuple[tuple[int, int], int, Unit]]:
    """(section key, passage, unit) for every quotable unit of the passages. The chunker splits a long section into
    passages, and only the first starts with the heading line: the units of a passage's own section (before its
    first heading when it continues a section, else under the heading that opens it) share one key per page and
    section path, whichever passages were retrieved."""
    pool: list[tuple[tuple[int, int], int, Unit]] = []
    owners: dict[tuple[str, str], tuple[int, int]] = {}
    for index, hit in enumerate(hits, 1):
        units, path = segment(hit.text, _leaf(hit)), hit.meta("section")
        own = 0 if any(unit.section == 0 for unit in units) else 1
        for unit in units:
            key = (index, unit.section)
            if unit.section == own and path:
                key = owners.setdefault((hit.doc_id, path), key)
            if quotable(unit):
                pool.append((key, index, unit))
    return pool


def _words(unit: Unit) -> int:
    return len(unit.quoted.split())


class ExtractiveAnswerer:
    """Quotes the best-matching section of the top passages: the units under one heading, in document order, up to
    a word budget (a help-centre snippet, not a collage of sentences from several pages), each with its [n]."""

    name = "extractive"

    def __init__(
        self,
        encoder: Bm25Encoder,
        budget: int = 100,
        second_share: float = 0.5,
        detector: PlantedInstructionDetector | None = None,
        prior: float = 2.0,
    ) -> None:
        self._ranker = UnitRanker(encoder)
        # The engine drops passages with planted instructions; checking each unit again keeps this answerer safe
        # on its own (the bench, the eval) too.
        self._detector = detector or PlantedInstructionDetector()
        # Words quoted per answer (the quoted units; labels and markers come on top). 100 quotes as many words as
        # the three best units plus a window did (~115 words per answer with labels) and holds the fact more often;
        # 80 holds it less often (Samsung 0.30 vs 0.36 of answers), 120 a little more for a longer read (0.38).
        self.budget = budget
        # A second section is quoted (with the budget's remaining words) when it scores at least this share of the
        # best one: an answer often spans two sections or pages (Samsung source hit 0.58 -> 0.63, fact 0.29 -> 0.36).
        self.second_share = second_share
        # A section's score is multiplied by (its passage's retrieval score / the best passage's) ** prior: retrieval
        # saw the title and the whole passage, the unit ranker only the question's words in it.
        self.prior = prior

    def answer(self, question: str, hits: Sequence[Hit]) -> Draft:
        picks = self.select(question, hits)
        if not picks:
            return Draft(text="", answerer=self.name, declined=True)
        return Draft(text=render(picks, hits), answerer=self.name)

    def select(self, question: str, hits: Sequence[Hit]) -> list[_Pick]:
        """The units to quote: the best section's, in document order, then (when it scores close) the next one's.
        Every retrieved passage's units set the word statistics (one passage alone makes its own topic word look
        rare), and every retrieved passage may be quoted: its retrieval score weighs its sections (`prior`). Before
        the rerank, only passages within 0.15 of the best one's dense cosine were; that dropped passages the
        cross-encoder ranked high but the dense arm reads badly, such as a table of supported versions (Samsung, no
        holdout: fact 0.367 -> 0.375, source hit 0.710 -> 0.724; sample set: one answer gained, one lost)."""
        pool = _pool(hits, self._quotable)
        if not pool:
            return []
        units = [unit for _, _, unit in pool]
        scores = self._ranker.rank(question, units)
        # a TextNode's start in its section: orders the passages of a section the chunker cut
        offsets = [getattr(hit.node, "start_char_idx", None) or 0 for hit in hits]
        sections: dict[tuple[int, int], list[_Pick]] = {}
        for score, (key, index, unit) in zip(scores, pool, strict=True):
            sections.setdefault(key, []).append(_Pick(score, index, unit, key, offsets[index - 1]))
        merged = {key: self._merged(picks) for key, picks in sections.items()}
        covered = dict(zip(merged, self._ranker.rank(question, list(merged.values()), units), strict=True))
        lead = hits[0].score or 1.0
        value = {key: covered[key] * max(hits[key[0] - 1].score / lead, 0.0) ** self.prior for key in sections}
        order = sorted(sections, key=lambda key: (-value[key], key))
        ranked = [sections[key] for key in order]
        top = value[order[0]]
        if top <= 0:  # nothing shares a word with the question: the best passage's opening
            first = min(ranked, key=lambda picks: (picks[0].key, min(pick.order for pick in picks)))
            return self._quote([pick for pick in first if pick.unit.kind != "list"][:1], self.budget)
        # When the words chose another passage than retrieval's best (the two signals disagree, and either may be
        # right: "How long do I have to ask for a refund?" matches "ask" in "When refunds are not available",
        # retrieval, whose cross-encoder read each passage with the question, ranks "The 14-day refund window"
        # first), both are quoted, retrieval's first, each with half the budget (sample set fact 0.633 -> 0.667,
        # Samsung 0.371 -> 0.361: 5 answers gained, 10 lost). Else the runner-up follows when it scores at least
        # `second_share` of the best.
        retrieved = [key for key in order[1:] if key[0] == 1 and value[key] > 0]
        if order[0][0] != 1 and retrieved:
            chosen = self._quote(sections[retrieved[0]], self.budget // 2)
            second: tuple[int, int] | None = order[0]
        else:
            chosen = self._quote(ranked[0], self.budget)
            close_enough = self.second_share and len(order) > 1 and value[order[1]] >= self.second_share * top
            second = order[1] if close_enough else None
        room = self.budget - sum(_words(pick.unit) for pick in chosen)
        if second is not None and room > 0:
            chosen += self._quote(sections[second], room)
        return chosen

    @staticmethod
    def _merged(picks: Sequence[_Pick]) -> Unit:
        """A section as one unit for scoring: the words of its units that state something (a signpost such as
        "Rate limits are described in ..." shares the question's words and answers nothing), its heading as
        context."""
        first = picks[0].unit
        text = "\n".join(pick.unit.quoted for pick in picks if not SIGNPOST.search(pick.unit.text))
        return Unit(text, first.position, "section", context=first.heading, section=first.section)

    def _quote(self, picks: Sequence[_Pick], budget: int) -> list[_Pick]:
        """The section's units in document order, all of them when they fit the budget, else the run of consecutive
        units within the budget that holds the most score (the best unit alone when even it is longer). A run does
        not start in the middle of numbered steps when the steps before fit too: "2. Click Create key" is no
        answer without "1. Sign in to the web console and open Developer > API keys"."""
        listed = {(pick.passage, pick.unit.group) for pick in picks if pick.unit.kind == "list"}
        # a short list with its lead-in is one unit: its items are not quoted again on their own
        alone = [pick for pick in picks if not (pick.unit.kind == "item" and (pick.passage, pick.unit.group) in listed)]
        units = _once(sorted(alone, key=lambda pick: pick.order))
        if not units:
            return []
        if sum(_words(pick.unit) for pick in units) <= budget:
            return units
        best = max(range(len(units)), key=lambda i: (units[i].score, -i))
        first, last = (
            _window(units, best, budget, lambda i: not _continues_steps(units, i))
            or _window(units, best, budget, lambda i: True)
            or (best, best)
        )
        return units[first : last + 1]

    def _quotable(self, unit: Unit) -> bool:
        """Not a planted instruction, and not the tail of a sentence cut off by a chunk boundary."""
        fragment = unit.kind == "sentence" and unit.text[:1].islower()
        return len(unit.text) > 3 and not fragment and self._detector.scan(unit.quoted) is None


def _once(units: Sequence[_Pick]) -> list[_Pick]:
    """Each unit once: chunks overlap, so two retrieved passages of a section can hold the same unit (the copy from
    another passage is dropped; the first keeps the better score). One passage saying a thing twice ("Click OK."
    in two procedures) keeps both."""
    kept: list[_Pick] = []
    first: dict[str, int] = {}
    for pick in units:
        seen = first.get(pick.unit.quoted)
        if seen is None:
            first[pick.unit.quoted] = len(kept)
        elif kept[seen].passage != pick.passage:
            if pick.score > kept[seen].score:
                kept[seen] = replace(kept[seen], score=pick.score)
            continue
        kept.append(pick)
    return kept


_STEP = re.compile(r"(\d{1,3})[.)]\s")


def _continues_steps(units: Sequence[_Pick], index: int) -> bool:
    """Whether `units[index]` is a numbered step that follows the step quoted just before it (step n after n - 1)."""
    if index == 0:
        return False
    step, before = _STEP.match(units[index].unit.text), _STEP.match(units[index - 1].unit.text)
    kinds = {units[index].unit.kind, units[index - 1].unit.kind}
    return kinds == {"item"} and step is not None and before is not None and int(step[1]) == int(before[1]) + 1


def _window(units: Sequence[_Pick], best: int, budget: int, may_start: Callable[[int], bool]) -> tuple[int, int] | None:
    """(first, last) of the run of consecutive units that holds `best`, fits `budget` words, starts where `may_start`
    allows and holds the most score; ties go to more words (zero-score units around the best one still fill the
    budget, so a list's lead-in is quoted with the item that matched), then to the earlier start. None: no such run."""
    choice: tuple[int, int] | None = None
    value: tuple[float, int, int] | None = None
    for first in range(best + 1):
        if not may_start(first):
            continue
        words = 0
        for last in range(first, len(units)):
            words += _words(units[last].unit)
            if words > budget:
                break
            if last < best:
                continue
            candidate = (sum(p.score for p in units[first : last + 1]), words, -first)
            if value is None or candidate > value:
                choice, value = (first, last), candidate
    return choice


def render(picks: Sequence[_Pick], hits: Sequence[Hit]) -> str:
    """Markdown: per quoted section (best first) a label line naming the page and heading, then its units in
    document order as a quote, each paragraph ending with its [n] and set apart by an empty quote line; a list's
    lead-in is quoted once, above its items; a code block stays a fenced block."""
    sections: dict[tuple[int, int], list[_Pick]] = {}
    for pick in picks:
        sections.setdefault(pick.key, []).append(pick)
    blocks = []
    for key, group in sections.items():
        group.sort(key=lambda p: p.order)
        hit = hits[key[0] - 1]
        section = group[0].unit.heading or hit.meta("section")
        label = f"**{hit.meta('title')}**" + (f" ({section})" if section and section != hit.meta("title") else "")
        lines = [label + ":"]
        leads_done: set[tuple[int, int]] = set()
        for number, pick in enumerate(group):
            unit, marker, list_id = pick.unit, f" [{pick.passage}]", (pick.passage, pick.unit.group)
            previous = group[number - 1] if number and group[number - 1].passage == pick.passage else None
            same_list = previous is not None and unit.lead and list_id in leads_done
            same_paragraph = previous is not None and unit.paragraph >= 0 and unit.paragraph == previous.unit.paragraph
            if same_paragraph:
                lines[-1] = lines[-1].removesuffix(marker) + f" {unit.text}{marker}"
                continue
            if number > 0 and not same_list:
                lines.append(">")  # a quoted paragraph break: separate units do not run together when rendered
            if unit.lead and list_id not in leads_done:
                lines.append(f"> {unit.lead}")
                leads_done.add(list_id)
            if unit.kind == "code":  # a fence cannot carry the marker: the section's next unit does (same passage)
                fence = "~~~~" if "```" in unit.text else "```"
                lines += [f"> {fence}", *(f"> {line}" for line in unit.text.split("\n")), f"> {fence}"]
                if number == len(group) - 1:
                    lines.append(f">{marker}")
                continue
            body = unit.text.split("\n")
            body[-1] = f"{body[-1]}{marker}"
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
