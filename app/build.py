"""Building the object graph: the one place that constructs concrete classes.

- `build_service(settings)` builds everything `serve` (and the end-to-end tests) need: the database and its
  stores, the knowledge engine, escalation, the conversation service, the inquiry pipeline, the outbox
  dispatcher. Channels and the scheduler are built on top of it by `app.serve.SupportApp`.
- `build_for_command(settings)` is the lazy variant for one-shot CLI commands: it opens the database and builds
  the knowledge engine, escalation or channels only when the command asks for them, so `report` never opens the
  embedded index that a running service owns, and no command needs a stand-in engine.
"""

from __future__ import annotations

import dataclasses
import socket
from types import TracebackType
from typing import TYPE_CHECKING, Any

from app.process import offline_environment
from app.settings import Settings, secret
from app.wiring import Wiring
from bot.actions import ActionPolicy, ActionService, InboundRouter
from bot.conversation import ConversationService, Policy
from bot.delivery import OutboxDispatcher
from bot.inquiries import InquiryPipeline
from bot.intent import RuleClassifier
from bot.messages import Channel
from bot.ports import (
    Clock,
    Embedder,
    IntentClassifier,
    KnowledgeEngine,
    KnowledgeIndex,
    ReplySender,
    SpendMeter,
    SystemClock,
)
from bot.reports import REPORT_KIND
from bot.senders import SenderGuard, SenderLimits
from bot.store.conversations import ConversationStore
from bot.store.db import Database
from bot.store.documents import DocumentStateStore
from bot.store.events import EventLog
from bot.store.feedback import FeedbackStore
from bot.store.leases import LeaseStore
from bot.store.ledger import InboundLedger
from bot.store.mailboxes import MailboxStore
from bot.store.outbox import Outbox
from bot.store.pages import PageStore
from bot.store.threads import ThreadStore
from escalation import EscalationConfig, EscalationService, TicketBackendConfig, build_escalation
from knowledge.config import KnowledgeConfig
from knowledge.pasted import UPLOADS, PastedPages

# Channels, the knowledge engine and the intent classifier are imported where they are built (`# lazy:` below):
# together they take seconds to import (LlamaIndex, Qdrant, ONNX, the Slack SDK), and a one-shot command, a test
# runner with a scripted engine or a start that fails on a bad setting builds none or only some of them.
if TYPE_CHECKING:
    from channels.email import EmailChannel, EmailConfig  # lazy: types only (see above)
    from channels.slack import SlackChannel, SlackConfig  # lazy: types only (see above)
    from knowledge import KnowledgeService  # lazy: types only (see above)


def open_database(settings: Settings) -> Database:
    return Database(settings.resolved_database_url)


def knowledge_config(settings: Settings) -> KnowledgeConfig:
    """The knowledge engine's part of the settings."""
    return KnowledgeConfig(
        data_dir=settings.data_dir,
        knowledge_paths=tuple(settings.knowledge_paths),
        knowledge_base_url=settings.knowledge_base_url,
        include_community=settings.knowledge_include_community,
        trusted_domains=tuple(settings.knowledge_trusted_domains),
        embedding_model=settings.embedding_model,
        embedding_batch_size=settings.embedding_batch_size,
        qdrant_url=settings.qdrant_url,
        qdrant_api_key=secret(settings.qdrant_api_key),
        qdrant_collection=settings.qdrant_collection,
        retrieval_top_k=settings.retrieval_top_k,
        rerank_depth=settings.rerank_depth,
        hybrid_fusion=settings.hybrid_fusion,
        hybrid_dense_weight=settings.hybrid_dense_weight,
        hybrid_sparse_weight=settings.hybrid_sparse_weight,
        hybrid_rrf_k=settings.hybrid_rrf_k,
        abstain_threshold=settings.abstain_threshold,
        low_confidence_threshold=settings.low_confidence_threshold,
        anthropic_api_key=secret(settings.anthropic_api_key),
        anthropic_base_url=settings.anthropic_base_url,
        anthropic_model=settings.anthropic_model,
        anthropic_max_tokens=settings.anthropic_max_tokens,
        anthropic_timeout_seconds=settings.anthropic_timeout_seconds,
        anthropic_max_retries=settings.anthropic_max_retries,
        llm_breaker_failures=settings.llm_breaker_failures,
        llm_breaker_reset_seconds=settings.llm_breaker_reset_seconds,
        llm_input_cost_per_mtok=settings.llm_input_cost_per_mtok,
        llm_output_cost_per_mtok=settings.llm_output_cost_per_mtok,
        llm_daily_budget_usd=settings.llm_daily_budget_usd,
    )


def build_knowledge_engine(settings: Settings, db: Database, spend: SpendMeter | None = None) -> KnowledgeService:
    """The knowledge engine, its ingestion state in `db` (shared by every replica); `spend` (the conversation
    store) enforces LLM_DAILY_BUDGET_USD across replicas."""
    from knowledge import build_knowledge  # lazy: LlamaIndex, Qdrant and ONNX, only for a command that needs them

    offline_environment()
    states = DocumentStateStore(db, SystemClock(), settings.qdrant_collection)
    return build_knowledge(knowledge_config(settings), spend=spend, states=states, holder=replica_name(settings))


def escalation_config(settings: Settings) -> EscalationConfig:
    return EscalationConfig(
        agent_users=tuple(settings.slack_agent_users),
        escalation_channel=settings.slack_escalation_channel,
        support_address=settings.support_address,
        confirmation_ttl_minutes=settings.confirmation_ttl_minutes,
        backend=TicketBackendConfig(
            kind=settings.ticket_backend,
            webhook_url=settings.ticket_webhook_url,
            webhook_secret=secret(settings.ticket_webhook_secret),
            zendesk_url=settings.zendesk_url,
            zendesk_email=settings.zendesk_email,
            zendesk_api_token=secret(settings.zendesk_api_token),
            jira_url=settings.jira_url,
            jira_email=settings.jira_email,
            jira_api_token=secret(settings.jira_api_token),
            jira_project=settings.jira_project,
            jira_issue_type=settings.jira_issue_type,
        ),
    )


def build_escalation_service(
    settings: Settings, db: Database, clock: Clock, outbox: Outbox, conversations: ConversationStore
) -> EscalationService:
    return build_escalation(escalation_config(settings), db, clock, outbox, conversations)


async def build_service(
    settings: Settings,
    *,
    knowledge: KnowledgeEngine | None = None,
    clock: Clock | None = None,
    with_escalation: bool = True,
    migrate: bool = True,
    intent: IntentClassifier | None = None,
) -> Wiring:
    """Build the shared services of one process; runs database migrations first (unless `migrate=False`).

    `knowledge` replaces the real engine (tests pass a scripted double; it then cannot ingest or embed). `intent`
    reads requests for a person: by default the embedding classifier over the engine's model, or the rule set
    when there is no embedding model (a test double)."""
    offline_environment()
    clock = clock or SystemClock()
    db = open_database(settings)
    if migrate:
        await db.upgrade()
    lease = settings.processing_lease_seconds
    outbox = Outbox(db, clock, lease_seconds=lease)
    ledger = InboundLedger(db, clock, lease_seconds=lease)
    conversations = ConversationStore(db, clock, outbox)
    index: KnowledgeIndex | None = None
    embedder: Embedder | None = None
    if knowledge is None:
        engine = build_knowledge_engine(settings, db, spend=conversations)
        knowledge, index, embedder = engine, engine, engine
    escalation = build_escalation_service(settings, db, clock, outbox, conversations) if with_escalation else None
    if intent is None:
        intent = embedding_intent(embedder) if embedder is not None else RuleClassifier()
    service = ConversationService(
        knowledge,
        conversations,
        escalation,
        Policy(max_chars=settings.max_question_chars, low_confidence=settings.low_confidence_threshold),
        intent,
    )
    feedback = FeedbackStore(db, clock)
    actions = ActionService(conversations, feedback, escalation, ActionPolicy(frozenset(settings.slack_agent_users)))
    dispatcher = OutboxDispatcher(outbox, {}, interval=settings.outbox_flush_seconds)
    for channel, sender in report_senders(settings, outbox).items():
        dispatcher.register(channel, sender, kind=REPORT_KIND)
    pipeline = InquiryPipeline(ledger, InboundRouter(service, actions), on_replies=dispatcher.on_replies)
    return Wiring(
        settings=settings,
        clock=clock,
        db=db,
        ledger=ledger,
        outbox=outbox,
        conversations=conversations,
        feedback=feedback,
        events=EventLog(db, clock),
        leases=LeaseStore(db, clock),
        knowledge=knowledge,
        index=index,
        embedder=embedder,
        escalation=escalation,
        service=service,
        pipeline=pipeline,
        dispatcher=dispatcher,
        pasted=pasted_pages(settings, db, clock, index) if index is not None else None,
    )


def pasted_pages(settings: Settings, db: Database, clock: Clock, index: KnowledgeIndex) -> PastedPages:
    """Pages pasted in the console: kept in the database, written to DATA_DIR/uploads, ingested into `index`."""
    return PastedPages(PageStore(db, clock), (settings.data_dir / UPLOADS).resolve(), index)


def embedding_intent(embedder: Embedder) -> IntentClassifier:
    """Requests for a person read by the embedding classifier over the engine's model."""
    from escalation.intent import EmbeddingIntentClassifier  # lazy: NumPy, only next to a real engine

    return EmbeddingIntentClassifier(embedder)


def replica_name(settings: Settings) -> str:
    """Stable across restarts of this process (same host, same DATA_DIR), so a restart after a crash takes its
    mailbox lease and its ingestion claims back at once instead of waiting for them to expire; others still wait."""
    return f"{socket.gethostname()}:{settings.data_dir.resolve()}"


def slack_config(settings: Settings) -> SlackConfig:
    """The Slack channel's frozen config from the settings (SLACK_*)."""
    from channels.slack import SlackConfig  # lazy: the Slack SDK, only when Slack is on

    return SlackConfig(
        bot_token=secret(settings.slack_bot_token),
        app_token=secret(settings.slack_app_token),
        signing_secret=secret(settings.slack_signing_secret),
        api_url=settings.slack_api_url,
        escalation_channel=settings.slack_escalation_channel,
        report_channel=settings.slack_report_channel,
        allowed_channels=frozenset(settings.slack_allowed_channels),
        top_level_channels=frozenset(settings.slack_top_level_channels),
        no_followup_channels=frozenset(settings.slack_no_followup_channels),
        allowed_bots=frozenset(settings.slack_allowed_bots),
        agent_users=frozenset(settings.slack_agent_users),
        link_domains=frozenset(settings.slack_link_domains),
    )


def build_slack(w: Wiring, **options: Any) -> SlackChannel:
    """The Slack channel on the core's narrow ports (Socket Mode with SLACK_APP_TOKEN, else HTTP events);
    `options`: a test's web client or retry policy."""
    from channels.slack import SlackChannel  # lazy: the Slack SDK, only when Slack is on

    return SlackChannel(
        slack_config(w.settings),
        intake=w.pipeline,
        senders=w.dispatcher,
        threads=w.conversations,
        clock=w.clock,
        **options,
    )


def report_senders(settings: Settings, outbox: Outbox) -> dict[Channel, ReplySender]:
    """The outbox's senders for queued weekly reports: Slack when it is on and SLACK_REPORT_CHANNEL is set; email
    when REPORT_EMAIL, SMTP_HOST and SUPPORT_ADDRESS are set (IMAP is not needed to send it)."""
    senders: dict[Channel, ReplySender] = {}
    if settings.slack_enabled and settings.slack_report_channel:
        from channels.slack.client import build_web_client  # lazy: the Slack SDK, only when Slack is on
        from channels.slack.report import SlackReportPublisher, SlackReportSender  # lazy: as above

        publisher = SlackReportPublisher(build_web_client(slack_config(settings)))
        senders[Channel.SLACK] = SlackReportSender(publisher, outbox)
    if settings.report_email and settings.smtp_host and settings.support_address:
        from channels.email.sender import EmailSender  # lazy: the email channel, only when a report is mailed
        from scheduler.mail import ReportMailSender  # lazy: as above

        transport = EmailSender(email_config(settings), outbox)
        senders[Channel.EMAIL] = ReportMailSender(transport, outbox, settings.support_address)
    return senders


def email_config(settings: Settings, **overrides: Any) -> EmailConfig:
    """The email channel's frozen config from the settings (`overrides`: a test's timeouts or limits)."""
    from channels.email import EmailConfig  # lazy: the email channel, only when email is on

    values: dict[str, Any] = {
        "imap_host": settings.imap_host,
        "imap_port": settings.imap_port,
        "imap_user": settings.imap_user,
        "imap_password": secret(settings.imap_password),
        "imap_security": settings.imap_security,
        "imap_folder": settings.imap_folder,
        "imap_done_action": settings.imap_done_action,
        "imap_done_folder": settings.imap_done_folder,
        "imap_quarantine_folder": settings.imap_quarantine_folder,
        "imap_sent_folder": settings.imap_sent_folder,
        "imap_save_sent": settings.imap_save_sent,
        "imap_idle": settings.imap_idle,
        "imap_poll_seconds": settings.imap_poll_seconds,
        "smtp_host": settings.smtp_host,
        "smtp_port": settings.smtp_port,
        "smtp_user": settings.smtp_user,
        "smtp_password": secret(settings.smtp_password),
        "smtp_security": settings.smtp_security,
        "support_address": settings.support_address,
        "bot_addresses": tuple(settings.email_bot_addresses),
        "max_bytes": settings.email_max_bytes,
        "fetch_batch_bytes": settings.email_fetch_batch_bytes,
        "parse_timeout_seconds": settings.email_parse_timeout_seconds,
    }
    return EmailConfig(**{**values, **overrides})


def sender_limits(settings: Settings) -> SenderLimits:
    return SenderLimits(
        per_sender=settings.email_replies_per_sender_per_hour,
        per_recipient=settings.email_replies_per_recipient_per_hour,
        global_limit=settings.email_replies_per_hour,
    )


def build_email(w: Wiring, *, holder: str | None = None, **options: Any) -> EmailChannel:
    """The email channel on the core's narrow ports (`options`: TLS contexts, or `EmailConfig` overrides)."""
    from channels.email import EmailChannel, PollerPorts  # lazy: the email channel, only when email is on

    tls = {k: options.pop(k) for k in ("imap_tls", "smtp_tls") if k in options}
    ports = PollerPorts(
        intake=w.pipeline,
        leases=w.leases,
        positions=MailboxStore(w.db, w.clock),
        threads=ThreadStore(w.db),
        events=w.events,
        sender_policy=SenderGuard(w.db, sender_limits(w.settings)),
        clock=w.clock,
    )
    return EmailChannel(email_config(w.settings, **options), ports, w.dispatcher, w.outbox, holder=holder, **tls)


def build_channels(w: Wiring) -> tuple[SlackChannel | None, EmailChannel | None]:
    """The channels whose settings are present (a channel is on when configured, off otherwise)."""
    settings = w.settings
    slack = build_slack(w) if settings.slack_enabled else None
    email = build_email(w, holder=replica_name(settings)) if settings.email_enabled else None
    return slack, email


class CommandContext:
    """The lazily built graph of a one-shot command: `async with build_for_command(settings) as ctx:`.

    The database is opened (and migrated) on entry; `knowledge()`, `wiring()` and `channels()` build on first
    use, and everything built is closed on exit."""

    def __init__(self, settings: Settings, clock: Clock | None = None, *, migrate: bool = True) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.db = open_database(settings)
        self._migrate = migrate
        self._knowledge: KnowledgeService | None = None
        self._wiring: Wiring | None = None

    async def __aenter__(self) -> CommandContext:
        offline_environment()
        if self._migrate:
            await self.db.upgrade()
        return self

    async def __aexit__(
        self, _type: type[BaseException] | None, _exc: BaseException | None, _tb: TracebackType | None
    ) -> None:
        if self._knowledge is not None:
            await self._knowledge.close()
        if self._wiring is not None and self._wiring.db is not self.db:
            await self._wiring.db.dispose()
        await self.db.dispose()

    def knowledge(self) -> KnowledgeService:
        if self._knowledge is None:
            spend = ConversationStore(self.db, self.clock, self.outbox())
            self._knowledge = build_knowledge_engine(self.settings, self.db, spend=spend)
        return self._knowledge

    def outbox(self) -> Outbox:
        return Outbox(self.db, self.clock)

    def ledger(self) -> InboundLedger:
        return InboundLedger(self.db, self.clock)

    def escalation(self) -> EscalationService:
        outbox = self.outbox()
        return build_escalation_service(
            self.settings, self.db, self.clock, outbox, ConversationStore(self.db, self.clock, outbox)
        )

    async def wiring(self) -> Wiring:
        """The full service graph on this command's database (with the knowledge engine)."""
        if self._wiring is None:
            engine = self.knowledge()
            built = await build_service(
                self.settings,
                knowledge=engine,
                clock=self.clock,
                migrate=False,
                intent=embedding_intent(engine),
            )
            self._wiring = dataclasses.replace(built, index=engine, embedder=engine)
        return self._wiring

    async def channels(self) -> tuple[SlackChannel | None, EmailChannel | None]:
        return build_channels(await self.wiring())

    def report_delivery(self) -> OutboxDispatcher | None:
        """Only what delivering a report needs: a dispatcher that knows only the report senders (no channel, no
        engine); None when there is nowhere to deliver a report."""
        outbox = self.outbox()
        senders = report_senders(self.settings, outbox)
        if not senders:
            return None
        dispatcher = OutboxDispatcher(outbox, {})
        for channel, sender in senders.items():
            dispatcher.register(channel, sender, kind=REPORT_KIND)
        return dispatcher


def build_for_command(settings: Settings, clock: Clock | None = None, *, migrate: bool = True) -> CommandContext:
    return CommandContext(settings, clock, migrate=migrate)
