"""Clicks, handled by the core: an `InboundMessage` carrying an `InboundAction` in, the replies to queue out.

A channel adapter records a click in the inbound ledger like any message (a retried or double-delivered click is
one action) and the pipeline hands it here through `InboundRouter`. `ActionService` decides and returns replies;
they go to the outbox in the transaction that settles the click, so a crash never loses or doubles them:

- 👍/👎: the vote is stored; the clicker alone sees a thank-you.
- "Create a ticket": the preview, with Confirm and Cancel, in the thread.
- Confirm / Cancel: the preview is replaced by the result (the same ticket however often Confirm is pressed).
- "Talk to a person": the one hand-off (`bot.handoff.hand_off`); only the requester or an agent may ask.
- Claim / Resolve: only agents, and only in the agents' channel.

Who may do what is decided here (`ActionPolicy`), not in a channel. A `UserFacingError` is shown to the clicker
alone; any other error is logged with a reference id and the clicker gets an apology with that id.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import structlog

from bot import metrics
from bot.errors import NotAllowed, UserFacingError
from bot.handoff import hand_off
from bot.messages import Action, ActionKind, InboundAction, InboundMessage, Outcome, Reply, Role, TicketRef, parse_case
from bot.ports import Escalation, MessageHandler
from bot.store.conversations import ConversationStore
from bot.store.feedback import FeedbackStore
from bot.strings import for_agents, for_customers

log = structlog.get_logger(__name__)

SUMMARY_TURNS = 6


@dataclass(frozen=True, slots=True)
class ActionPolicy:
    """Who may press what. `agents` may hand off for others, claim and resolve; an empty set means nobody may
    claim or resolve (deny by default: configure the agents)."""

    agents: frozenset[str] = frozenset()

    def is_agent(self, user: str) -> bool:
        wanted = user.strip().casefold()
        return bool(wanted) and any(wanted == a.strip().casefold() for a in self.agents)


@dataclass(frozen=True, slots=True)
class _Say:
    """One reply to make, before it is addressed."""

    text: str
    outcome: Outcome = Outcome.ANSWERED
    private: bool = False  # only the clicker sees it
    replace: bool = False  # overwrite the clicked message
    actions: tuple[Action, ...] = ()
    reference: str = ""
    mentions: tuple[str, ...] = ()  # who the text names, by the channel's own user id (see `Reply.mentions`)


class ActionService:
    """Handles clicks (implements `bot.ports.MessageHandler` for messages that carry an action)."""

    def __init__(
        self,
        conversations: ConversationStore,
        feedback: FeedbackStore,
        escalation: Escalation | None,
        policy: ActionPolicy = ActionPolicy(),
    ) -> None:
        self._conversations = conversations
        self._feedback = feedback
        self._escalation = escalation
        self._policy = policy
        if not policy.agents:
            log.warning("actions.no_agents", detail="no agent users configured: nobody can claim or resolve cases")

    async def handle(self, msg: InboundMessage) -> list[Reply]:
        """Decide the replies to the click in `msg`, queue them and settle the click; never raises for a bad click
        (only when the database fails, so the pipeline retries)."""
        action = msg.action
        if action is None:
            raise ValueError("ActionService.handle needs a message with an action")
        log_ = log.bind(message_id=msg.message_id, action=action.kind.value, channel=msg.channel.value)
        try:
            said = await self._decide(msg, action)
        except UserFacingError as exc:
            log_.info("action.refused", reason=type(exc).__name__)
            said = [_Say(exc.message, Outcome.REJECTED, private=True, mentions=exc.mentions)]
        except Exception:
            reference = secrets.token_hex(4)
            metrics.ERRORS.labels("actions").inc()
            log_.exception("action.failed", reference=reference)
            apology = for_customers.APOLOGY.format(reference=reference)
            said = [_Say(apology, Outcome.FAILED, private=True, reference=reference)]
        replies = [_reply(msg, action, say, n) for n, say in enumerate(said)]
        await self._conversations.settle(msg, replies)
        log_.info("action.handled", replies=len(replies))
        return replies

    async def _decide(self, msg: InboundMessage, action: InboundAction) -> list[_Say]:
        kind = action.kind
        if kind in (ActionKind.FEEDBACK_UP, ActionKind.FEEDBACK_DOWN):
            return await self._feedback_vote(msg, action)
        if kind is ActionKind.TALK_TO_PERSON:
            return await self._hand_off(msg, action)
        if self._escalation is None:
            return [_Say(for_customers.NO_ESCALATION, private=True)]
        if kind is ActionKind.OFFER_TICKET:
            return await self._offer(action, self._escalation)
        if kind is ActionKind.CONFIRM:
            await self._in_its_conversation(msg, action.value, self._escalation)
            ticket = await self._escalation.confirm(action.value, msg.sender)
            return [_Say(for_customers.TICKET_CREATED.format(reference=_ticket(ticket)), Outcome.HANDOFF, replace=True)]
        if kind is ActionKind.CANCEL:
            await self._in_its_conversation(msg, action.value, self._escalation)
            await self._escalation.cancel(action.value, msg.sender)
            return [_Say(for_customers.TICKET_CANCELLED, replace=True)]
        return await self._case(msg, action, self._escalation)

    async def _in_its_conversation(self, msg: InboundMessage, token: str, escalation: Escalation) -> None:
        """An offer is decided in the conversation it was made in (an agent may decide it anywhere): a token that
        leaked into another conversation, or another API client's, confirms nothing."""
        preview = await escalation.preview(token)
        here = (msg.channel, msg.conversation_key) == (preview.channel, preview.conversation_key)
        if not here and not self._policy.is_agent(msg.sender):
            log.warning("action.other_conversation", message_id=msg.message_id, token_prefix=token[:6])
            raise NotAllowed(for_customers.NOT_YOURS)

    async def _feedback_vote(self, msg: InboundMessage, action: InboundAction) -> list[_Say]:
        up = action.kind is ActionKind.FEEDBACK_UP
        reply_ref = action.value or action.message_ref
        await self._feedback.record(msg.channel, msg.conversation_key, reply_ref, msg.sender, 1 if up else -1)
        metrics.FEEDBACK.labels(msg.channel.value, "up" if up else "down").inc()
        return [_Say(for_customers.THANKS_UP if up else for_customers.THANKS_DOWN, private=True)]

    async def _offer(self, action: InboundAction, escalation: Escalation) -> list[_Say]:
        preview = await escalation.preview(action.value)
        if preview.state == "done" and preview.ticket is not None:
            return [_Say(for_customers.TICKET_EXISTS.format(reference=_ticket(preview.ticket)), private=True)]
        if preview.state != "pending":
            return [_Say(for_customers.OFFER_GONE.format(state=preview.state), private=True)]
        text = for_customers.PREVIEW.format(subject=preview.subject, summary=preview.summary)
        buttons = (
            Action(ActionKind.CONFIRM, for_customers.CONFIRM, preview.token),
            Action(ActionKind.CANCEL, for_customers.CANCEL, preview.token),
        )
        return [_Say(text, actions=buttons)]

    async def _hand_off(self, msg: InboundMessage, action: InboundAction) -> list[_Say]:
        key = action.value or msg.conversation_key
        state = await self._conversations.get(msg.channel, key)
        requester = state.requester if state is not None else ""
        if msg.sender != requester and not self._policy.is_agent(msg.sender):
            raise NotAllowed(for_customers.ONLY_REQUESTER_HANDS_OFF)
        history = await self._conversations.history(msg.channel, key, SUMMARY_TURNS)
        asked = [t.text for t in history if t.role is Role.CUSTOMER]
        result = await hand_off(self._escalation, msg, key, requester or msg.sender, asked[-1] if asked else "")
        return [_Say(result.text, Outcome.HANDOFF, actions=(result.offer,) if result.offer else ())]

    async def _case(self, msg: InboundMessage, action: InboundAction, escalation: Escalation) -> list[_Say]:
        """Claim or resolve: agents only, in the agents' channel only."""
        if not action.in_agents_channel:
            raise NotAllowed(for_agents.ONLY_IN_AGENTS_CHANNEL)
        if not self._policy.agents:
            log.warning("action.denied_no_agents", action=action.kind.value, message_id=msg.message_id)
        if not self._policy.is_agent(msg.sender):
            raise NotAllowed(for_agents.ONLY_AGENTS)
        try:
            channel, key = parse_case(action.value)
        except ValueError:
            raise NotAllowed(for_agents.UNKNOWN_CASE) from None
        if action.kind is ActionKind.CLAIM:
            await escalation.claim(channel, key, msg.sender)
            said = for_agents.CASE_CLAIMED.format(agent=msg.sender)
            return [_Say(said, Outcome.HANDOFF, mentions=(msg.sender,))]
        if action.kind is ActionKind.RESOLVE:
            await escalation.resolve(channel, key, msg.sender)
            said = for_agents.CASE_RESOLVED.format(agent=msg.sender)
            return [_Say(said, Outcome.HANDOFF, mentions=(msg.sender,))]
        raise ValueError(f"unknown action {action.kind.value}")


def _ticket(ticket: TicketRef) -> str:
    return f"{ticket.reference} ({ticket.url})" if ticket.url else ticket.reference


def _reply(msg: InboundMessage, action: InboundAction, say: _Say, n: int) -> Reply:
    """Every reply is plain text: previews and results quote customer words and ticket subjects verbatim."""
    return Reply(
        channel=msg.channel,
        conversation_key=msg.conversation_key,
        in_reply_to=msg.message_id,
        text=say.text,
        outcome=say.outcome,
        idempotency_key=f"{msg.channel.value}:{msg.message_id}:{n}",
        actions=say.actions,
        reference_id=say.reference,
        recipient=msg.sender,
        metadata=msg.metadata,
        visible_to=msg.sender if say.private else "",
        replaces=action.message_ref if say.replace else "",
        plain=True,
        mentions=say.mentions,
    )


class InboundRouter:
    """What the inquiry pipeline runs for each recorded message: clicks to the action service, everything else to
    the conversation service."""

    def __init__(self, conversation: MessageHandler, actions: MessageHandler) -> None:
        self._conversation = conversation
        self._actions = actions

    async def handle(self, msg: InboundMessage) -> list[Reply]:
        handler = self._actions if msg.action is not None else self._conversation
        return await handler.handle(msg)
