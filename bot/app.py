"""The composition root: the one place that knows every concrete class.

`build_services()` builds the shared services from settings; `SupportApp` starts the channels that are
configured, the outbox dispatcher, the scheduler and the HTTP server, and stops them in order on SIGTERM:
readiness flips to 503 for a grace period, channels stop taking work, work in flight finishes, the outbox is
flushed, and whatever could not be sent stays in the outbox for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import secrets
import signal
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import structlog
from aiohttp import web

from bot.conversation import ConversationService, Policy
from bot.delivery import OutboxDispatcher
from bot.http import Readiness, build_http_app
from bot.inquiries import InquiryPipeline
from bot.logging import configure_logging
from bot.ports import Clock, Escalation, KnowledgeEngine, SystemClock
from bot.services import Services
from bot.settings import Settings, secret
from bot.store.conversations import ConversationStore
from bot.store.db import Database
from bot.store.events import EventLog
from bot.store.feedback import FeedbackStore
from bot.store.leases import LeaseStore
from bot.store.ledger import InboundLedger
from bot.store.outbox import Outbox

log = structlog.get_logger(__name__)

RECOVER_EVERY_SECONDS = 30.0


def offline_environment() -> None:
    """No library may reach a model hub at run time: the default model ships inside a package."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(name, "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "false")


def setup_logging(settings: Settings) -> None:
    values = [
        secret(s)
        for s in (
            settings.anthropic_api_key,
            settings.slack_bot_token,
            settings.slack_app_token,
            settings.slack_signing_secret,
            settings.imap_password,
            settings.smtp_password,
            settings.qdrant_api_key,
            settings.ticket_webhook_secret,
            settings.zendesk_api_token,
            settings.jira_api_token,
        )
    ]
    configure_logging(settings.log_level, settings.log_format, [*values, *settings.api_keys])


def build_knowledge_engine(settings: Settings) -> KnowledgeEngine:
    from knowledge import build_knowledge

    return build_knowledge(settings)


def build_escalation_service(
    settings: Settings, db: Database, clock: Clock, outbox: Outbox, conversations: ConversationStore
) -> Escalation:
    from escalation import build_escalation

    return build_escalation(settings, db, clock, outbox, conversations)


async def build_services(
    settings: Settings,
    *,
    knowledge: KnowledgeEngine | None = None,
    clock: Clock | None = None,
    with_escalation: bool = True,
    migrate: bool = True,
) -> Services:
    """Build every shared service; runs database migrations first (unless `migrate=False`)."""
    offline_environment()
    clock = clock or SystemClock()
    db = Database(settings.resolved_database_url)
    if migrate:
        await db.upgrade()
    lease = settings.processing_lease_seconds
    outbox = Outbox(db, clock, lease_seconds=lease)
    ledger = InboundLedger(db, clock, lease_seconds=lease)
    conversations = ConversationStore(db, clock, outbox)
    knowledge = knowledge or build_knowledge_engine(settings)
    escalation = build_escalation_service(settings, db, clock, outbox, conversations) if with_escalation else None
    service = ConversationService(
        knowledge,
        conversations,
        escalation,
        Policy(max_chars=settings.max_question_chars, low_confidence=settings.low_confidence_threshold),
    )
    dispatcher = OutboxDispatcher(outbox, {}, interval=settings.outbox_flush_seconds)
    pipeline = InquiryPipeline(ledger, service, on_replies=dispatcher.on_replies)
    return Services(
        settings=settings,
        clock=clock,
        db=db,
        ledger=ledger,
        outbox=outbox,
        conversations=conversations,
        feedback=FeedbackStore(db, clock),
        events=EventLog(db, clock),
        leases=LeaseStore(db, clock),
        knowledge=knowledge,
        escalation=escalation,
        service=service,
        pipeline=pipeline,
        dispatcher=dispatcher,
    )


class Runnable(Protocol):
    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class SupportApp:
    """One running process: channels, dispatcher, scheduler, HTTP server."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.readiness = Readiness()
        self.channels: list[Runnable] = []
        self.scheduler: Runnable | None = None
        self._runner: web.AppRunner | None = None
        self._background: list[asyncio.Task[Any]] = []
        self.port: int = 0

    async def start(self) -> None:
        services = self.services
        settings = services.settings
        slack_handler = None
        if settings.slack_enabled:
            from channels.slack import build_slack_channel

            slack = build_slack_channel(services)
            slack_handler = slack.http_handler
            self.channels.append(slack)
        if settings.email_enabled:
            from channels.email import build_email_channel

            # Stable across restarts of this process (same host, same DATA_DIR), so a restart after a crash takes
            # the mailbox lease back at once instead of waiting for it to expire; other replicas still wait.
            holder = f"{socket.gethostname()}:{settings.data_dir.resolve()}"
            self.channels.append(build_email_channel(services, holder=holder))
        self.scheduler = self._build_scheduler()
        for channel in self.channels:
            await channel.start()
        services.dispatcher.start()
        await services.pipeline.recover()
        self._background.append(asyncio.create_task(self._recover_loop()))
        if settings.knowledge_paths:
            self._background.append(asyncio.create_task(self._sync_knowledge()))
        if self.scheduler is not None:
            await self.scheduler.start()
        local_key = write_local_key(settings.data_dir)
        http_app = build_http_app(services, self.readiness, slack_handler=slack_handler, local_key=local_key)
        self._runner = web.AppRunner(http_app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, settings.http_host, settings.http_port, reuse_address=True)
        await site.start()
        self.port = _bound_port(self._runner, settings.http_port)
        # Everything built so far lives as long as the process: move it out of the collector's reach, so a full
        # collection during a burst does not pause the event loop for 100+ ms (Slack acks must stay fast).
        gc.collect()
        gc.freeze()
        log.info(
            "service.started",
            http=f"http://{settings.http_host}:{self.port}",
            channels=[c.name for c in self.channels] or ["api"],
        )

    def _build_scheduler(self) -> Runnable:
        from bot.jobs import app_jobs, scheduler_config
        from scheduler.jobs import job_table
        from scheduler.service import build_scheduler

        services = self.services
        config = scheduler_config(services.settings)
        jobs = job_table(config, app_jobs(services, self.channels))
        return build_scheduler(config, services.leases, services.db, jobs, clock=services.clock)

    async def _recover_loop(self) -> None:
        while True:
            await asyncio.sleep(min(RECOVER_EVERY_SECONDS, self.services.settings.processing_lease_seconds))
            try:
                await self.services.pipeline.recover()
            except Exception:
                log.exception("service.recover_failed")

    async def _sync_knowledge(self) -> None:
        ingest = getattr(self.services.knowledge, "ingest", None)
        if ingest is None:
            return
        try:
            report = await ingest([Path(p) for p in self.services.settings.knowledge_paths])
            log.info("knowledge.synced", report=str(report))
            gc.collect()
            gc.freeze()  # the model and index loaded by the first sync live as long as the process, too
        except Exception:
            log.exception("knowledge.sync_failed")

    async def stop(self, grace_seconds: float | None = None) -> None:
        """Drain: not ready, stop intake, finish work in flight, flush the outbox, close."""
        services = self.services
        grace = services.settings.shutdown_grace_seconds if grace_seconds is None else grace_seconds
        self.readiness.draining = True
        log.info("service.draining", grace_seconds=grace)
        await asyncio.sleep(grace)
        for channel in reversed(self.channels):
            with contextlib.suppress(Exception):
                await channel.stop()
        if self.scheduler is not None:
            with contextlib.suppress(Exception):
                await self.scheduler.stop()
        for task in self._background:
            task.cancel()
        await services.pipeline.drain()
        with contextlib.suppress(Exception):
            await services.dispatcher.flush_once()
        await services.dispatcher.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            local_key_path(services.settings.data_dir).unlink(missing_ok=True)
        close = getattr(services.knowledge, "close", None)
        if close is not None:
            await close()
        await services.db.dispose()
        log.info("service.stopped")


def local_key_path(data_dir: Path) -> Path:
    return data_dir / "local-api.key"


def write_local_key(data_dir: Path) -> str:
    """A fresh API key for local tools (`supportbot ask` next to a running service), readable by this user only.

    The embedded vector store is single-process, so the CLI asks the running service instead of opening it.
    """
    key = secrets.token_urlsafe(32)
    path = local_key_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


def _bound_port(runner: web.AppRunner, configured: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return configured


async def serve(settings: Settings, *, on_started: Callable[[SupportApp], Awaitable[None]] | None = None) -> None:
    """Run until SIGTERM or SIGINT, then drain and stop."""
    services = await build_services(settings)
    app = SupportApp(services)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await app.start()
    if on_started is not None:
        await on_started(app)
    await stop.wait()
    await app.stop()
