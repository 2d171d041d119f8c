"""Ports: the boundaries the core talks through.

The conversation service knows these Protocols, never the concrete classes; `app/build.py` picks the
implementations (LlamaIndex over Qdrant, Zendesk or Jira, Slack or email) from settings: the composition root in `app/`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from bot.intent import Intent
from bot.messages import Answer, Channel, InboundMessage, Reply, TicketRef, TicketRequest, Turn


@runtime_checkable
class KnowledgeEngine(Protocol):
    """Answers a question from the knowledge base, with citations and a confidence."""

    async def answer(
        self,
        question: str,
        history: Sequence[Turn] = (),
        filters: Mapping[str, str] | None = None,
    ) -> Answer: ...

    async def ready(self) -> bool:
        """True when the vector store is reachable and the index holds documents."""
        ...


class IngestSummary(Protocol):
    """What an ingest run reports; `summary()` is one human-readable paragraph."""

    @property
    def docs_deleted(self) -> int: ...

    def summary(self) -> str: ...


class KnowledgeIndex(Protocol):
    """The writable side of the knowledge base: ingest folders or files (incremental), and close the index."""

    async def ingest(self, paths: Sequence[Path], progress: bool = False) -> IngestSummary: ...

    async def close(self) -> None: ...


class AuditTrail(Protocol):
    """Where operator actions are recorded (`bot.store.audit.AuditLog`): who, what, on what; never customer text."""

    async def record(self, actor: str, action: str, target: str = "", detail: dict[str, Any] | None = None) -> None: ...


class Embedder(Protocol):
    """Turns texts into vectors with the knowledge base's embedding model (the gap backlog clusters with it)."""

    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


class IntentClassifier(Protocol):
    """Says whether a customer's message asks for a person, raises a complaint / billing dispute / urgent problem,
    or is a question to answer (`bot.intent`). Implementations never raise for content; the embedding classifier
    falls back to the rule set when its model fails."""

    name: str

    async def classify(self, text: str) -> Intent: ...


class SpendMeter(Protocol):
    """What the language model cost since a moment, across every replica (implemented by the conversation store,
    which records each turn's cost): the knowledge engine checks it against `LLM_DAILY_BUDGET_USD`."""

    async def spent_since(self, since: datetime) -> float: ...


class TicketBackend(Protocol):
    """Opens tickets. `idempotency_key` (the pending action's token) makes a repeated call return the same ticket."""

    name: str

    async def create(self, request: TicketRequest, idempotency_key: str) -> TicketRef: ...


class ReplySender(Protocol):
    """Delivers one reply on its channel. Raises on failure; the outbox retries."""

    async def send(self, reply: Reply) -> str:
        """Send and return the channel's reference for what was sent (Slack ts, email Message-ID)."""
        ...


@runtime_checkable
class DeliveryCheck(Protocol):
    """Asks "did this reply already go out?" before a resend (implemented by a channel's `ReplySender`).

    A crash between a send and the outbox's "sent" mark leaves a row that is sent again after restart. A sender
    that can look at what it delivered (the mailbox's Sent folder by Message-ID; a Slack thread by the reply's
    metadata) answers with the reference it was delivered under, and the dispatcher marks the row sent without
    sending; None means "not found" (send it). `since` is when the reply was decided: nothing older can be it.
    Raising means "cannot tell", and the reply is sent (a repeat is better than a loss).
    """

    async def delivered_ref(self, reply: Reply, since: datetime) -> str | None: ...


class Intake(Protocol):
    """What a channel adapter hands inbound messages to (implemented by `bot.inquiries.InquiryPipeline`).

    `accept` records the message in the inbound ledger under its keys (a repeated key drops it) and schedules its
    answer; it returns after the commit, so the adapter may ack. `record_only` records a message we deliberately
    do not answer (auto-replies, bot messages), so its keys still dedupe. `seen` asks whether a key was recorded.
    """

    async def accept(self, msg: InboundMessage, keys: Sequence[str] = (), *, wait: bool = False) -> bool: ...

    async def record_only(self, msg: InboundMessage, keys: Sequence[str], reason: str) -> bool: ...

    async def seen(self, key: str) -> bool: ...


class InlineIntake(Protocol):
    """Record a message and answer it before returning (the JSON API and the CLI answer inline)."""

    async def ask(self, msg: InboundMessage) -> list[Reply]: ...


class SenderRegistry(Protocol):
    """Where a channel registers the sender that delivers its replies (implemented by the outbox dispatcher)."""

    def register(self, channel: Channel, sender: ReplySender) -> None: ...


class ChannelAdapter(Protocol):
    """A running channel: receives events, and stops cleanly on shutdown."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """The real clock, always timezone-aware UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class ActionPreview:
    """A proposed irreversible action as a person sees it before confirming."""

    token: str
    kind: str  # "create_ticket"
    state: str  # pending | confirmed | done | cancelled | expired
    subject: str
    summary: str
    requester: str
    channel: Channel
    conversation_key: str
    expires_at: datetime
    conversation_link: str = ""
    ticket: TicketRef | None = None


class Escalation(Protocol):
    """The way to a person: propose tickets (confirmed by a human), hand off, claim and resolve.

    Every method is safe to call twice (Slack retries, double clicks, two replicas): a repeated confirmation
    returns the existing ticket; invalid transitions raise `InvalidTransition` with a message fit for the user.
    """

    async def propose_ticket(self, msg: InboundMessage, reason: str) -> ActionPreview: ...

    async def preview(self, token: str) -> ActionPreview: ...

    async def confirm(self, token: str, actor: str) -> TicketRef: ...

    async def cancel(self, token: str, actor: str) -> None: ...

    async def confirm_by_reply(self, msg: InboundMessage) -> TicketRef | None:
        """Email: `msg` confirms when it replies (In-Reply-To/References in msg.metadata) to an offer message
        from the offer's requester and says yes. None (and a log line) for anything else."""
        ...

    async def hand_off(self, channel: Channel, conversation_key: str, requester: str, summary: str) -> bool:
        """Record the request for a person and notify the agents; True when agents were (or already are)
        notified of this round, False when there is nobody to notify (no agents' channel)."""
        ...

    async def claim(self, channel: Channel, conversation_key: str, agent: str) -> None: ...

    async def resolve(self, channel: Channel, conversation_key: str, agent: str) -> None: ...


class MessageHandler(Protocol):
    """Handles one recorded inbound message and returns the replies to queue (the conversation service for
    questions, `bot.actions.ActionService` for clicks, `bot.actions.InboundRouter` for both)."""

    async def handle(self, msg: InboundMessage) -> list[Reply]: ...


class ThreadView(Protocol):
    """What a channel adapter may know about a stored conversation to route a message in it."""

    @property
    def requester(self) -> str: ...

    @property
    def escalated_at(self) -> datetime | None: ...

    @property
    def human_on_case(self) -> bool: ...


class Threads(Protocol):
    """Conversation state for a channel adapter (implemented by `bot.store.conversations.ConversationStore`):
    read a thread's state to decide whether to answer, and record a message a person (an agent) wrote in it, which
    hands the thread to that person (the bot stays quiet until the case is resolved)."""

    async def get(self, channel: Channel, key: str) -> ThreadView | None: ...

    async def record_human_message(
        self, channel: Channel, key: str, sender: str, text: str, message_id: str
    ) -> None: ...


# --- narrow ports for channel adapters (the email channel receives these, never the service bag) -------------


class Leases(Protocol):
    """Named leases in the shared store (implemented by `bot.store.leases.LeaseStore`): one holder at a time."""

    async def acquire(self, name: str, holder: str, ttl_seconds: float) -> bool: ...

    async def release(self, name: str, holder: str) -> None: ...


class ChannelEvents(Protocol):
    """Where a channel notes what it did instead of answering (implemented by `bot.store.events.EventLog`)."""

    async def record(
        self, channel: Channel, kind: str, *, sender: str = "", message_id: str = "", detail: str = ""
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class MailboxPosition:
    """How far a poller read a mailbox: its UIDVALIDITY and the last UID it settled."""

    uidvalidity: int
    last_uid: int


class MailboxPositions(Protocol):
    """Durable read positions per mailbox, plus a parse marker (implemented by `bot.store.mailboxes.MailboxStore`).

    `begin_parse` is written before an expensive parse and returns how many times that message's parse has
    begun; a count above one means an earlier attempt died (worker killed, process crashed) without settling it,
    so the poller can quarantine instead of feeding the same mail to the parser forever.
    """

    async def get(self, mailbox: str) -> MailboxPosition | None: ...

    async def set(self, mailbox: str, position: MailboxPosition) -> None: ...

    async def begin_parse(self, mailbox: str, uidvalidity: int, uid: int) -> int: ...


class ThreadIndex(Protocol):
    """Which conversation a reply belongs to (implemented by `bot.store.threads.ThreadStore`).

    `conversation_for` looks up message ids (inbound Message-IDs recorded under `message_key`, and the delivery
    references of our own replies) and answers only for a conversation `sender` takes part in: a stranger who
    quotes someone else's Message-ID starts a conversation of their own.
    """

    def message_key(self, message_id: str) -> str:
        """The inbound-ledger key an adapter records a message id under, so `conversation_for` can find it."""
        ...

    async def conversation_for(self, channel: Channel, thread_ids: Sequence[str], sender: str) -> str | None: ...


class DeliveryRefs(Protocol):
    """The reference a reply is delivered under, fixed before the first send (implemented by `Outbox`).

    A channel that names its messages itself (an email Message-ID) reserves a random name here first: the first
    reservation for an idempotency key wins and every later one gets it back, so a resend after a crash carries
    the same name, and the name is unguessable because it is derived from nothing the sender knows.
    """

    async def reserve_ref(self, idempotency_key: str, candidate: str) -> str: ...


SenderHold = Literal["loop", "throttled"]


class SenderPolicy(Protocol):
    """Loop breaker and reply limits per sender, recipient and channel (implemented by `bot.senders.SenderGuard`).

    `check` says whether a message from `sender` (answered at `recipient`, default the sender) may be answered
    now: "loop" when the sender floods us, "throttled" past a reply limit, else None. `count` notes one message
    (`kind` "answered" or the hold reason) so later checks see it.
    """

    async def check(
        self, channel: Channel, sender: str, now: datetime, *, recipient: str = ""
    ) -> SenderHold | None: ...

    async def count(self, channel: Channel, sender: str, kind: str, now: datetime, *, recipient: str = "") -> None: ...


# --- ingestion state (the knowledge index's bookkeeping, shared by every replica) --------------------------------

DocumentStatus = Literal["indexing", "indexed", "deleted"]


@dataclass(frozen=True, slots=True)
class DocumentState:
    """What the index holds of one knowledge document (its id is the file's resolved path).

    `content_hash` and `chunks` describe the last version that was fully indexed ("" and 0 before the first);
    `status` is `indexing` while a replica (`holder`) works on it, until `lease_until`; `version` moves on every
    write, so a claim is a compare-and-set on the version that was read.
    """

    doc_id: str
    content_hash: str
    chunks: int
    status: DocumentStatus
    holder: str
    version: int
    lease_until: datetime | None
    updated_at: datetime


class DocumentStates(Protocol):
    """Ingestion state in the shared database (implemented by `bot.store.documents.DocumentStateStore`), so every
    replica and every restart sees which document was indexed at which content hash, and two replicas syncing the
    same folder index each changed document once: a document is claimed before it is embedded, and a claim only
    succeeds against the version that was read (or an expired claim, or the holder's own)."""

    async def get(self, doc_ids: Sequence[str]) -> dict[str, DocumentState]: ...

    async def under(self, prefix: str) -> list[DocumentState]:
        """Every recorded document whose id starts with `prefix` (a folder path with its trailing separator)."""
        ...

    async def claim(self, doc_id: str, holder: str, seen: DocumentState | None, lease_seconds: float) -> bool:
        """Take `doc_id` for indexing; False when another replica moved it since `seen` or holds a live claim."""
        ...

    async def finish(self, doc_id: str, holder: str, content_hash: str, chunks: int) -> bool:
        """Record that `holder` indexed `doc_id` at `content_hash` in `chunks` chunks; False if it lost the claim."""
        ...

    async def release(self, doc_id: str, holder: str) -> None:
        """Give a claim back after a failure (the recorded hash and chunks stay those of the last good version)."""
        ...

    async def mark_deleted(self, doc_id: str) -> None:
        """The document's file is gone and its chunks were removed (kept as a tombstone for other indexes)."""
        ...
