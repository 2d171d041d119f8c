"""`supportbot serve`: one running process.

`SupportApp` starts the channels that are configured, the outbox dispatcher, the scheduler and the HTTP server,
and stops them in order on SIGTERM: readiness flips to 503 for a grace period, channels stop taking work, work in
flight finishes, the outbox is flushed, and whatever could not be sent stays in the outbox for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import secrets
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import structlog
from aiohttp import web

from app.build import build_channels, build_service
from app.http import Readiness, build_http_app, build_metrics_app
from app.jobs import app_jobs, scheduler_config
from app.listener import KEEPALIVE_SECONDS, ConnectionGuard, GuardedSite, ListenerLimits
from app.process import local_key_path
from app.settings import Settings
from app.wiring import Wiring
from bot import metrics
from bot.store.ledger import DEAD_LETTER
from scheduler.jobs import job_table
from scheduler.service import SupportScheduler, build_scheduler

log = structlog.get_logger(__name__)

RECOVER_EVERY_SECONDS = 30.0
GAUGES_EVERY_SECONDS = 15.0


class Runnable(Protocol):
    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class SupportApp:
    """One running process: channels, dispatcher, scheduler, HTTP server."""

    def __init__(self, services: Wiring) -> None:
        self.services = services
        self.readiness = Readiness()
        self.channels: list[Runnable] = []
        self.scheduler: SupportScheduler | None = None
        self._runner: web.AppRunner | None = None
        self._metrics_runner: web.AppRunner | None = None
        self._background: list[asyncio.Task[Any]] = []
        self.port: int = 0
        self.connections: ConnectionGuard | None = None  # the public listener's open connections

    async def start(self) -> None:
        services = self.services
        settings = services.settings
        slack, email = build_channels(services)
        self.channels = [c for c in (slack, email) if c is not None]
        config = scheduler_config(settings)
        jobs = job_table(config, app_jobs(services, slack=slack))
        self.scheduler = build_scheduler(config, services.leases, services.db, jobs, clock=services.clock)
        for channel in self.channels:
            await channel.start()
        services.dispatcher.start()
        await services.pipeline.recover()
        self._background.append(asyncio.create_task(self._recover_loop()))
        await self.refresh_gauges()
        self._background.append(asyncio.create_task(self._gauges_loop()))
        await self.scheduler.start()
        local_key = write_local_key(settings.data_dir)
        separate_metrics = settings.metrics_port > 0
        http_app = build_http_app(
            services,
            self.readiness,
            slack_handler=slack.http_handler if slack else None,
            local_key=local_key,
            with_metrics=not separate_metrics,
        )
        self._runner = web.AppRunner(
            http_app, access_log=None, handle_signals=False, keepalive_timeout=KEEPALIVE_SECONDS
        )
        await self._runner.setup()
        limits = ListenerLimits(
            settings.http_max_connections, settings.http_header_timeout_seconds, settings.http_body_timeout_seconds
        )
        self.connections = ConnectionGuard(limits)
        await GuardedSite(self._runner, settings.http_host, settings.http_port, self.connections).start()
        self.port = _bound_port(self._runner, settings.http_port)
        metrics_url = f"http://{settings.http_host}:{self.port}/metrics"
        if separate_metrics:
            self._metrics_runner = web.AppRunner(build_metrics_app(), access_log=None, handle_signals=False)
            await self._metrics_runner.setup()
            host = settings.metrics_host or settings.http_host
            await web.TCPSite(self._metrics_runner, host, settings.metrics_port, reuse_address=True).start()
            metrics_url = f"http://{host}:{settings.metrics_port}/metrics"
        # Everything built so far lives as long as the process: move it out of the collector's reach, so a full
        # collection during a burst does not pause the event loop for 100+ ms (Slack acks must stay fast).
        gc.collect()
        gc.freeze()
        log.info(
            "service.started",
            http=f"http://{settings.http_host}:{self.port}",
            metrics=metrics_url,
            channels=[c.name for c in self.channels] or ["api"],
        )

    async def _recover_loop(self) -> None:
        while True:
            await asyncio.sleep(min(RECOVER_EVERY_SECONDS, self.services.settings.processing_lease_seconds))
            try:
                await self.services.pipeline.recover()
            except Exception:
                log.exception("service.recover_failed")

    async def refresh_gauges(self) -> None:
        """Set the gauges that need a database query (outbox depth and age, dead letters) from here, every
        `GAUGES_EVERY_SECONDS`, so a Prometheus scrape costs no query."""
        services = self.services
        try:
            pending, age, dead = await services.outbox.stats()
            by_status = await services.ledger.count_by_status()
        except Exception:
            log.warning("service.gauges_failed", exc_info=True)
            return
        metrics.OUTBOX_PENDING.set(pending)
        metrics.OUTBOX_OLDEST_AGE.set(age)
        metrics.OUTBOX_DEAD.set(dead)
        metrics.INBOUND_DEAD.set(by_status.get(DEAD_LETTER, 0))

    async def _gauges_loop(self) -> None:
        while True:
            await asyncio.sleep(GAUGES_EVERY_SECONDS)
            await self.refresh_gauges()

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
        if self._metrics_runner is not None:
            await self._metrics_runner.cleanup()
        if self._runner is not None:
            await self._runner.cleanup()
            local_key_path(services.settings.data_dir).unlink(missing_ok=True)
        if services.index is not None:
            await services.index.close()
        await services.db.dispose()
        log.info("service.stopped")


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
    services = await build_service(settings)
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
