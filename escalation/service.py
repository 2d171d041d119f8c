"""`EscalationService`: the `bot.ports.Escalation` port over the database, a ticket backend and the outbox.

Everything it knows lives in the database (pending actions, tickets, conversation state), so any replica can
answer any button press or email reply, and a restart loses nothing. Posts to the agents' channel go through the
outbox with stable idempotency keys, so retries never post twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import structlog

from bot import metrics
from bot.errors import InvalidTransition, NotAllowed
from bot.messages import Channel, InboundMessage, Role, TicketRef, Turn
from bot.ports import ActionPreview, Clock, TicketBackend
from bot.store.conversations import HUMAN, RESOLVED, ConversationStore
from bot.store.db import Database
from bot.store.outbox import Outbox
from bot.strings import for_agents
from escalation.actions import DONE, STATES, ActionStore, NewAction, PendingAction
from escalation.backlog import HandoffLog
from escalation.config import EscalationConfig
from escalation.email_confirm import offer_tokens, same_address, says_yes
from escalation.flow import ConfirmFlow
from escalation.handoff import agent_post, conversation_links
from escalation.tickets import CREATE_TICKET, TicketExecutor, TicketStore, TicketView, ticket_ref

log = structlog.get_logger(__name__)

HISTORY_TURNS = 12
SUMMARY_TURNS = 6


class EscalationService:
    """Proposes tickets and opens them once a person confirms; hands cases to agents, who claim and resolve."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        outbox: Outbox,
        conversations: ConversationStore,
        backend: TicketBackend,
        config: EscalationConfig,
        *,
        lease: timedelta = timedelta(minutes=2),
        wait_seconds: float = 20.0,
    ) -> None:
        self._clock = clock
        self._outbox = outbox
        self._conversations = conversations
        self._config = config
        self.backend = backend
        self._actions = ActionStore(db, clock, lease=lease)
        self._tickets = TicketStore(db, clock)
        self._handoffs = HandoffLog(db, clock)
        executor = TicketExecutor(db, clock, outbox, backend, config.escalation_channel)
        self._flow = ConfirmFlow(self._actions, clock, {CREATE_TICKET: executor}, wait_seconds=wait_seconds)

    # --- confirm before act -------------------------------------------------------------------------------

    async def propose_ticket(self, msg: InboundMessage, reason: str) -> ActionPreview:
        turns = await self._turns(msg)
        preview: dict[str, Any] = {
            "subject": _subject(msg, turns),
            "summary": _summary(reason, turns),
            "conversation_link": msg.metadata.get("permalink", ""),
            "reason": reason,
            "transcript": [{"role": t.role.value, "text": t.text[:2000], "at": t.at.isoformat()} for t in turns],
        }
        action = await self._actions.create(
            NewAction(
                kind=CREATE_TICKET,
                channel=msg.channel,
                conversation_key=msg.conversation_key,
                requester=msg.sender,
                confirmers=[msg.sender, *self._config.agent_users],
                preview=preview,
                ttl=timedelta(minutes=self._config.confirmation_ttl_minutes),
            )
        )
        log.info("ticket.proposed", message_id=msg.message_id, token_prefix=action.token[:6], reason=reason)
        return _preview(action)

    async def preview(self, token: str) -> ActionPreview:
        return _preview(await self._flow.load(token))

    async def confirm(self, token: str, actor: str) -> TicketRef:
        """Open the ticket (once); every repeated or concurrent call returns the same `TicketRef`."""
        return ticket_ref((await self._flow.confirm(token, actor)).result)

    async def cancel(self, token: str, actor: str) -> None:
        await self._flow.cancel(token, actor)

    async def confirm_by_reply(self, msg: InboundMessage) -> TicketRef | None:
        if msg.channel is not Channel.EMAIL:
            return None
        tokens = offer_tokens(msg.metadata, self._config.support_address)
        if not tokens:
            log.warning("email_confirm.not_a_reply_to_an_offer", message_id=msg.message_id)
            return None
        for token in tokens:
            action = await self._actions.get(token)
            if action is None or action.channel is not Channel.EMAIL:
                continue
            if not same_address(msg.sender, action.requester):
                log.warning("email_confirm.wrong_sender", message_id=msg.message_id, token_prefix=token[:6])
                return None
            if not says_yes(msg.text):
                log.info("email_confirm.not_a_yes", message_id=msg.message_id)
                return None
            return await self.confirm(token, action.requester)
        log.warning("email_confirm.unknown_offer", message_id=msg.message_id)
        return None

    # --- hand-off, claim, resolve -----------------------------------------------------------------------------

    async def hand_off(self, channel: Channel, conversation_key: str, requester: str, summary: str) -> bool:
        state = await self._conversations.ensure(channel, conversation_key, requester)
        round_ = str(state.links.get("resolutions", 0))
        links = conversation_links(channel, conversation_key, state.links)
        turns = await self._conversations.history(channel, conversation_key, SUMMARY_TURNS)
        if summary.strip() and all(t.text != summary for t in turns):
            turns.append(Turn(Role.CUSTOMER, summary, self._clock.now()))
        escalation_channel = self._config.escalation_channel
        # ESCALATIONS is counted by the callers (conversation service, Slack button), once per request.
        if str(state.links.get("handoff_round", "")) == round_:
            log.info("handoff.already_escalated", channel=channel.value)
        elif escalation_channel:
            await self._outbox.enqueue(
                agent_post(
                    escalation_channel=escalation_channel,
                    idempotency_key=f"escalation:handoff:{_case_hash(channel, conversation_key)}:{round_}",
                    headline=for_agents.AGENT_POST_HANDOFF.format(requester=requester, channel=channel.value),
                    summary=_summary("asked for a person", turns),
                    channel=channel,
                    conversation_key=conversation_key,
                    links=links,
                )
            )
        else:
            log.warning("handoff.no_escalation_channel", channel=channel.value)
        await self._handoffs.requested(channel, conversation_key, int(round_), bool(escalation_channel))
        new_links = {k: v for k, v in links.items() if k not in state.links}
        await self._conversations.mark_escalated(channel, conversation_key, {**new_links, "handoff_round": round_})
        log.info("handoff.recorded", channel=channel.value, agents_notified=bool(escalation_channel))
        return bool(escalation_channel)

    async def claim(self, channel: Channel, conversation_key: str, agent: str) -> None:
        """A person takes the case: the bot stops answering the conversation until it is resolved."""
        self._require_agent(agent)
        state = await self._conversations.get(channel, conversation_key)
        if state is not None and state.state == HUMAN and state.assignee:
            if state.assignee.casefold() == agent.casefold():
                return
            raise InvalidTransition(for_agents.ALREADY_CLAIMED.format(assignee=state.assignee), (state.assignee,))
        await self._conversations.set_state(channel, conversation_key, HUMAN, assignee=agent)
        await self._tickets.claim(channel, conversation_key, agent)
        await self._handoffs.claimed(channel, conversation_key, agent)
        log.info("case.claimed", channel=channel.value)

    async def resolve(self, channel: Channel, conversation_key: str, agent: str) -> None:
        """The case is closed: its tickets are resolved and the bot answers the conversation again."""
        self._require_agent(agent)
        state = await self._conversations.get(channel, conversation_key)
        if state is not None and state.state == RESOLVED:
            return
        resolutions = int(state.links.get("resolutions", 0)) if state is not None else 0
        await self._conversations.set_state(channel, conversation_key, RESOLVED, assignee=agent)
        await self._tickets.resolve(channel, conversation_key)
        await self._handoffs.resolved(channel, conversation_key)
        await self._conversations.mark_escalated(channel, conversation_key, {"resolutions": resolutions + 1})
        log.info("case.resolved", channel=channel.value)

    def _require_agent(self, actor: str) -> None:
        # Deny by default: with no agent list configured nobody may claim or resolve (being able to press a button
        # in a channel is no proof of being an agent).
        agents = {a.casefold() for a in self._config.agent_users}
        if not agents:
            log.warning("case.denied_no_agents", detail="SLACK_AGENT_USERS is empty: nobody may claim or resolve")
        if actor.casefold() not in agents:
            raise NotAllowed(for_agents.ONLY_AGENTS)

    # --- jobs and operators ---------------------------------------------------------------------------------

    async def expire_due(self) -> int:
        """The scheduler's job: expire overdue offers, finish stalled confirmations, refresh the gauges."""
        expired = await self._actions.expire()
        finished = await self._flow.recover()
        await self.refresh_metrics()
        if expired or finished:
            log.info("actions.swept", expired=expired, finished=finished)
        return expired

    async def list_tickets(self, limit: int = 50) -> list[TicketView]:
        return await self._tickets.list(limit)

    async def refresh_metrics(self) -> None:
        counts = await self._actions.count_by_state()
        for state in STATES:
            metrics.PENDING_ACTIONS.labels(state).set(counts.get(state, 0))

    async def _turns(self, msg: InboundMessage) -> list[Turn]:
        turns = await self._conversations.history(msg.channel, msg.conversation_key, HISTORY_TURNS)
        if not turns or turns[-1].role is not Role.CUSTOMER or turns[-1].text != msg.text:
            turns.append(Turn(Role.CUSTOMER, msg.text, msg.received_at))
        return turns


def _preview(action: PendingAction) -> ActionPreview:
    return ActionPreview(
        token=action.token,
        kind=action.kind,
        state=action.state,
        subject=str(action.preview.get("subject", "")),
        summary=str(action.preview.get("summary", "")),
        requester=action.requester,
        channel=action.channel,
        conversation_key=action.conversation_key,
        expires_at=action.expires_at,
        conversation_link=str(action.preview.get("conversation_link", "")),
        ticket=ticket_ref(action.result) if action.state == DONE else None,
    )


def _subject(msg: InboundMessage, turns: Sequence[Turn]) -> str:
    if msg.subject.strip():
        return msg.subject.strip()[:200]
    first = next((t.text for t in turns if t.role is Role.CUSTOMER and t.text.strip()), msg.text)
    line = " ".join(first.split())
    return line if len(line) <= 80 else line[:79].rstrip() + "…"


def _summary(reason: str, turns: Sequence[Turn]) -> str:
    """Why, then the last few turns of the conversation, each shortened; bounded for chat and ticket fields."""
    lines = [for_agents.TICKET_SUMMARY_HEADER.format(reason=reason), ""]
    for turn in turns[-SUMMARY_TURNS:]:
        text = " ".join(turn.text.split())
        lines.append(f"{turn.role.value}: {text if len(text) <= 300 else text[:299] + '…'}")
    return "\n".join(lines)[:2000]


def _case_hash(channel: Channel, conversation_key: str) -> str:
    return hashlib.sha256(f"{channel.value}|{conversation_key}".encode()).hexdigest()[:24]
