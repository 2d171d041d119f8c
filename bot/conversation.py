"""The conversation service: one inbound message in, the replies to send out.

It applies the guards (empty, too long, a person already on the case), lets an email reply confirm a proposed
ticket, asks the `IntentClassifier` port what the message wants (a person: hand off; a complaint, billing dispute
or urgent problem: answer and offer a ticket), asks the knowledge engine with the stored history, and decides:
answer; answer and offer a ticket (low confidence, complaint); or abstain and offer a ticket. Every turn is
stored with its trace in the same transaction that queues the replies, so nothing is lost or sent twice.
It returns replies and never sends them: the composition root routes them through the outbox.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from dataclasses import dataclass

import structlog

from bot import metrics
from bot.confidence import LOW_CONFIDENCE_THRESHOLD
from bot.errors import UserFacingError
from bot.handoff import hand_off
from bot.intent import Intent, RuleClassifier
from bot.messages import Action, ActionKind, Answer, Channel, InboundMessage, Outcome, Reply
from bot.ports import Escalation, IntentClassifier, KnowledgeEngine
from bot.store.conversations import ConversationStore, Trace
from bot.strings import for_customers

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Policy:
    """`answer_with_handoff`: channels where a request for a person also gets the answer (when there is one) and a
    ticket offer in the same reply, because every round trip is slow there (email)."""

    max_chars: int = 4000
    low_confidence: float = LOW_CONFIDENCE_THRESHOLD
    history_turns: int = 12
    answer_with_handoff: frozenset[Channel] = frozenset({Channel.EMAIL})


class ConversationService:
    def __init__(
        self,
        knowledge: KnowledgeEngine,
        conversations: ConversationStore,
        escalation: Escalation | None,
        policy: Policy = Policy(),
        intent: IntentClassifier | None = None,
    ) -> None:
        self._knowledge = knowledge
        self._intent: IntentClassifier = intent or RuleClassifier()
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
            intent = await self._intent.classify(text)
            if intent is not Intent.NONE:
                log_.info("inquiry.intent", intent=intent.value, classifier=self._intent.name)
            if intent is Intent.PERSON:
                return await self._hand_off(msg, text)
            return await self._answer(msg, text, await self._ask(msg, text), complaint=intent is Intent.COMPLAINT)
        except UserFacingError as exc:
            return self._simple(msg, Outcome.REJECTED, exc.message)
        except Exception:
            reference = secrets.token_hex(4)
            metrics.ERRORS.labels("conversation").inc()
            log_.exception("inquiry.failed", reference=reference)
            return self._simple(
                msg, Outcome.FAILED, for_customers.APOLOGY.format(reference=reference), reference=reference
            )

    async def _ask(self, msg: InboundMessage, text: str) -> Answer:
        history = await self._conversations.history(msg.channel, msg.conversation_key, self._policy.history_turns)
        return await self._knowledge.answer(text, history)

    async def _hand_off(self, msg: InboundMessage, text: str) -> tuple[Trace, list[Reply]]:
        result = await hand_off(self._escalation, msg, msg.conversation_key, msg.sender, text)
        if msg.channel in self._policy.answer_with_handoff:
            return await self._answer_and_hand_off(msg, text, result.text, result.offer)
        trace, replies = self._simple(msg, Outcome.HANDOFF, result.text)
        if result.offer is not None:
            replies = [dataclasses.replace(r, actions=(result.offer,)) for r in replies]
        return trace, replies

    async def _answer_and_hand_off(
        self, msg: InboundMessage, text: str, handoff_text: str, offer: Action | None
    ) -> tuple[Trace, list[Reply]]:
        """One reply that does everything: the answer when there is one, what happens next, and a ticket offer
        (with how to confirm it) even when the agents were notified, so the case never rests on a live reply."""
        answer = await self._ask(msg, text)
        offer = offer or await self._offer_ticket(msg, "asked for a person")
        answered = not answer.abstained and answer.confidence >= self._policy.low_confidence
        body = f"{answer.text}\n\n{handoff_text}" if answered else handoff_text
        reply = self._reply(
            msg,
            body,
            Outcome.HANDOFF,
            _reply_key(msg, 0),
            citations=answer.citations if answered else (),
            actions=(offer,) if offer is not None else (),
            confidence=answer.confidence,
        )
        _observe(answer)
        unshown = () if answered else answer.citations  # retrieved and cited, but the reply did not show them
        trace = dataclasses.replace(
            self._trace(Outcome.HANDOFF, text, body, answer),
            citations=reply.citations,
            passages=(*unshown, *answer.passages),
        )
        return trace, [reply]

    async def _answer(
        self, msg: InboundMessage, question: str, answer: Answer, *, complaint: bool = False
    ) -> tuple[Trace, list[Reply]]:
        low = not answer.abstained and answer.confidence < self._policy.low_confidence
        actions: list[Action] = []
        key = _reply_key(msg, 0)
        if not answer.abstained:
            actions += [
                Action(ActionKind.FEEDBACK_UP, for_customers.HELPFUL, key),
                Action(ActionKind.FEEDBACK_DOWN, for_customers.NOT_HELPFUL, key),
            ]
        if answer.abstained or low or complaint:
            reason = "abstained" if answer.abstained else "low confidence" if low else "complaint or urgent"
            offer = await self._offer_ticket(msg, reason)
            if offer is not None:
                actions.append(offer)
        actions.append(Action(ActionKind.TALK_TO_PERSON, for_customers.TALK_TO_PERSON, msg.conversation_key))
        if answer.abstained:
            outcome, text = Outcome.ABSTAINED, for_customers.ABSTAIN
        else:
            outcome, text = (Outcome.ANSWERED_OFFER if low or complaint else Outcome.ANSWERED), answer.text
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
        _observe(answer)
        return self._trace(outcome, question, text, answer), [reply]

    @staticmethod
    def _trace(outcome: Outcome, question: str, text: str, answer: Answer) -> Trace:
        return Trace(
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
            passages=answer.passages,
        )

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


def _observe(answer: Answer) -> None:
    for stage, ms in answer.stage_ms.items():
        metrics.STAGE_LATENCY.labels(stage).observe(ms / 1000)
    metrics.CONFIDENCE.observe(answer.confidence)
    if answer.usage.input_tokens or answer.usage.output_tokens:
        metrics.LLM_TOKENS.labels(answer.usage.model, "input").inc(answer.usage.input_tokens)
        metrics.LLM_TOKENS.labels(answer.usage.model, "output").inc(answer.usage.output_tokens)
        metrics.LLM_COST.labels(answer.usage.model).inc(answer.usage.cost_usd)


def _reply_key(msg: InboundMessage, n: int) -> str:
    return f"{msg.channel.value}:{msg.message_id}:{n}"


def _with_latency(trace: Trace, ms: float) -> Trace:
    return dataclasses.replace(trace, latency_ms=ms, stage_ms={**trace.stage_ms, "total": round(ms, 3)})
