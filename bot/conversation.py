"""The conversation service: one inbound message in, the replies to send out.

It applies the guards (empty, too long, a person already on the case), lets an email reply confirm a proposed
ticket, hands off when someone asks for a person, asks the knowledge engine with the stored history, and
decides: answer; answer and offer a ticket (low confidence); or abstain and offer a ticket. Every turn is
stored with its trace in the same transaction that queues the replies, so nothing is lost or sent twice.
It returns replies and never sends them: the composition root routes them through the outbox.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
import time
from dataclasses import dataclass

import structlog

from bot import metrics
from bot.errors import UserFacingError
from bot.handoff import hand_off
from bot.messages import Action, ActionKind, Answer, InboundMessage, Outcome, Reply
from bot.ports import Escalation, KnowledgeEngine
from bot.store.conversations import ConversationStore, Trace
from bot.strings import for_customers

log = structlog.get_logger(__name__)

_HUMAN_REQUEST = re.compile(
    r"\b(talk|speak|chat)\s+(to|with)\s+(a\s+|an\s+|some\s*one|some\s+body|your\s+)?"
    r"(human|person|agent|real\s+person|someone|somebody|support\s+(agent|person|team)|representative)\b"
    r"|\b(human|live)\s+agent\b|\brepresentative,?\s+please\b",
    re.IGNORECASE,
)


def wants_a_person(text: str) -> bool:
    """True when the message asks for a human rather than an answer."""
    return bool(_HUMAN_REQUEST.search(text))


@dataclass(frozen=True, slots=True)
class Policy:
    max_chars: int = 4000
    low_confidence: float = 0.55
    history_turns: int = 12


class ConversationService:
    def __init__(
        self,
        knowledge: KnowledgeEngine,
        conversations: ConversationStore,
        escalation: Escalation | None,
        policy: Policy = Policy(),
    ) -> None:
        self._knowledge = knowledge
        self._conversations = conversations
        self._escalation = escalation
        self._policy = policy

    async def handle(self, msg: InboundMessage) -> list[Reply]:
        """Decide and store the replies to `msg` (empty when the bot must stay quiet)."""
        if msg.action is not None:  # a wiring bug, loud: a click stored as an empty question would be answered
            raise TypeError("clicks are handled by bot.actions.ActionService; route them with InboundRouter")
        started = time.perf_counter()
        log_ = log.bind(message_id=msg.message_id, channel=msg.channel.value)
        trace, replies = await self._decide(msg, log_)
        elapsed = time.perf_counter() - started
        if trace is not None:
            trace = _with_latency(trace, elapsed * 1000)
        await self._conversations.record_turn(msg, trace, replies)
        outcome = trace.outcome if trace else Outcome.SUPPRESSED.value
        metrics.INQUIRIES.labels(msg.channel.value, outcome).inc()
        metrics.ANSWER_LATENCY.labels(msg.channel.value).observe(elapsed)
        log_.info("inquiry.handled", outcome=outcome, replies=len(replies), ms=round(elapsed * 1000, 1))
        return replies

    async def _decide(
        self, msg: InboundMessage, log_: structlog.typing.FilteringBoundLogger
    ) -> tuple[Trace | None, list[Reply]]:
        text = msg.text.strip()
        if not text:
            return self._simple(msg, Outcome.REJECTED, for_customers.EMPTY)
        if len(text) > self._policy.max_chars:
            return self._simple(
                msg, Outcome.REJECTED, for_customers.TOO_LONG.format(length=len(text), limit=self._policy.max_chars)
            )
        state = await self._conversations.get(msg.channel, msg.conversation_key)
        if state is not None and state.human_on_case:
            return None, []
        try:
            if self._escalation is not None and (msg.metadata.get("in_reply_to") or msg.metadata.get("references")):
                ticket = await self._escalation.confirm_by_reply(msg)
                if ticket is not None:
                    return self._simple(
                        msg, Outcome.HANDOFF, for_customers.TICKET_CONFIRMED.format(reference=ticket.reference)
                    )
            if wants_a_person(text):
                return await self._hand_off(msg, text)
            history = await self._conversations.history(msg.channel, msg.conversation_key, self._policy.history_turns)
            answer = await self._knowledge.answer(text, history)
            return await self._answer(msg, text, answer)
        except UserFacingError as exc:
            return self._simple(msg, Outcome.REJECTED, exc.message)
        except Exception:
            reference = secrets.token_hex(4)
            metrics.ERRORS.labels("conversation").inc()
            log_.exception("inquiry.failed", reference=reference)
            return self._simple(
                msg, Outcome.FAILED, for_customers.APOLOGY.format(reference=reference), reference=reference
            )

    async def _hand_off(self, msg: InboundMessage, text: str) -> tuple[Trace, list[Reply]]:
        result = await hand_off(self._escalation, msg, msg.conversation_key, msg.sender, text)
        trace, replies = self._simple(msg, Outcome.HANDOFF, result.text)
        if result.offer is not None:
            replies = [dataclasses.replace(r, actions=(result.offer,)) for r in replies]
        return trace, replies

    async def _answer(self, msg: InboundMessage, question: str, answer: Answer) -> tuple[Trace, list[Reply]]:
        low = not answer.abstained and answer.confidence < self._policy.low_confidence
        actions: list[Action] = []
        key = _reply_key(msg, 0)
        if not answer.abstained:
            actions += [
                Action(ActionKind.FEEDBACK_UP, for_customers.HELPFUL, key),
                Action(ActionKind.FEEDBACK_DOWN, for_customers.NOT_HELPFUL, key),
            ]
        if answer.abstained or low:
            offer = await self._offer_ticket(msg, "abstained" if answer.abstained else "low confidence")
            if offer is not None:
                actions.append(offer)
        actions.append(Action(ActionKind.TALK_TO_PERSON, for_customers.TALK_TO_PERSON, msg.conversation_key))
        if answer.abstained:
            outcome, text = Outcome.ABSTAINED, for_customers.ABSTAIN
        else:
            outcome, text = (Outcome.ANSWERED_OFFER if low else Outcome.ANSWERED), answer.text
        reply = self._reply(
            msg,
            text,
            outcome,
            key,
            citations=() if answer.abstained else answer.citations,
            actions=tuple(actions),
            confidence=answer.confidence,
            low_confidence=low,
        )
        for stage, ms in answer.stage_ms.items():
            metrics.STAGE_LATENCY.labels(stage).observe(ms / 1000)
        metrics.CONFIDENCE.observe(answer.confidence)
        if answer.usage.input_tokens or answer.usage.output_tokens:
            metrics.LLM_TOKENS.labels(answer.usage.model, "input").inc(answer.usage.input_tokens)
            metrics.LLM_TOKENS.labels(answer.usage.model, "output").inc(answer.usage.output_tokens)
            metrics.LLM_COST.labels(answer.usage.model).inc(answer.usage.cost_usd)
        trace = Trace(
            outcome=outcome.value,
            question=question,
            text=text,
            latency_ms=0.0,
            stage_ms=dict(answer.stage_ms),
            confidence=answer.confidence,
            answerer=answer.answerer,
            model=answer.usage.model,
            input_tokens=answer.usage.input_tokens,
            output_tokens=answer.usage.output_tokens,
            cost_usd=answer.usage.cost_usd,
            citations=answer.citations,
        )
        return trace, [reply]

    async def _offer_ticket(self, msg: InboundMessage, reason: str) -> Action | None:
        if self._escalation is None:
            return None
        preview = await self._escalation.propose_ticket(msg, reason)
        return Action(ActionKind.OFFER_TICKET, for_customers.OFFER_TICKET, preview.token)

    def _simple(
        self, msg: InboundMessage, outcome: Outcome, text: str, *, reference: str = ""
    ) -> tuple[Trace, list[Reply]]:
        reply = self._reply(msg, text, outcome, _reply_key(msg, 0), reference_id=reference)
        trace = Trace(outcome.value, msg.text[:2000], text, 0.0, {}, reference_id=reference)
        return trace, [reply]

    @staticmethod
    def _reply(msg: InboundMessage, text: str, outcome: Outcome, key: str, **extra: object) -> Reply:
        return Reply(
            channel=msg.channel,
            conversation_key=msg.conversation_key,
            in_reply_to=msg.message_id,
            text=text,
            outcome=outcome,
            idempotency_key=key,
            recipient=msg.sender,
            subject=msg.subject,
            metadata=msg.metadata,
            **extra,  # type: ignore[arg-type]
        )


def _reply_key(msg: InboundMessage, n: int) -> str:
    return f"{msg.channel.value}:{msg.message_id}:{n}"


def _with_latency(trace: Trace, ms: float) -> Trace:
    return dataclasses.replace(trace, latency_ms=ms, stage_ms={**trace.stage_ms, "total": round(ms, 3)})
