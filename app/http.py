"""The aiohttp server's assembly: health, metrics, and the routes of the HTTP channels (JSON API, Slack events).

`/health/ready` checks the database, the vector store and the index, and answers 503 while the process drains
(after SIGTERM) so load balancers stop sending work before shutdown.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.catalog import IndexCatalog
from app.listener import body_deadline
from app.settings import Settings
from app.wiring import Wiring
from bot import metrics
from bot.store.audit import AuditLog
from bot.store.documents import DocumentStateStore
from channels.api import ApiConfig, ApiGate, AskEndpoint, ConfirmEndpoint
from channels.api.admin import AdminConfig, AdminEndpoints
from channels.api.handler import error
from console import ConsoleConfig, ConsolePorts, build_console_app

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Readiness:
    """Readiness state: flips to draining on SIGTERM."""

    def __init__(self) -> None:
        self.draining = False


def build_http_app(
    services: Wiring,
    readiness: Readiness,
    *,
    slack_handler: Handler | None = None,
    local_key: str = "",
    with_metrics: bool = True,
) -> web.Application:
    """The service's routes. `local_key` is the per-run key `supportbot ask` reads from DATA_DIR (mode 0600);
    `with_metrics=False` when /metrics has a listener of its own (`METRICS_PORT`)."""
    settings = services.settings
    api = ApiConfig(
        (*settings.api_keys, local_key),
        settings.api_rate_limit_per_minute,
        max_question_chars=settings.max_question_chars,
    )
    app = web.Application(client_max_size=1024 * 1024, middlewares=[body_deadline(settings.http_body_timeout_seconds)])

    async def live(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def ready(_request: web.Request) -> web.Response:
        if readiness.draining:
            metrics.READY.set(0)
            return web.json_response({"status": "draining"}, status=503)
        db_ok, index_ok = await asyncio.gather(_database_writable(services), _knowledge_ready(services))
        checks = {"database": db_ok, "vector_store_and_index": index_ok}
        ok = all(checks.values())
        metrics.READY.set(1 if ok else 0)
        return web.json_response({"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503)

    async def slack(request: web.Request) -> web.StreamResponse:
        if slack_handler is None:
            return error(404, "Slack HTTP events are not enabled (set SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN)")
        return await slack_handler(request)

    app.router.add_get("/health/live", live)
    app.router.add_get("/health/ready", ready)
    if with_metrics:
        app.router.add_get("/metrics", prometheus)
    gate = ApiGate(api)
    app.router.add_post("/api/ask", AskEndpoint(gate, services.pipeline, services.clock, api.max_question_chars))
    app.router.add_post("/api/actions/{token}/confirm", ConfirmEndpoint(gate, services.pipeline, services.clock))
    app.router.add_post("/slack/events", slack)
    admin = AdminConfig(tuple(settings.admin_keys), local_key, tuple(settings.knowledge_paths))
    app.router.add_routes(AdminEndpoints(admin, services.index, AuditLog(services.db, services.clock)).routes())
    if settings.admin_keys:  # the console is off unless ADMIN_KEYS is set
        app.add_subapp("/console", build_console_app(console_config(settings), console_ports(services)))
    return app


def console_config(settings: Settings) -> ConsoleConfig:
    return ConsoleConfig(
        admin_keys=tuple(settings.admin_keys),
        reviewer_keys=tuple(settings.reviewer_keys),
        abstain_threshold=settings.abstain_threshold,
        low_confidence_threshold=settings.low_confidence_threshold,
        handoff_sla_minutes=settings.handoff_sla_minutes,
    )


def console_ports(services: Wiring) -> ConsolePorts:
    catalog = None
    if services.index is not None:
        states = DocumentStateStore(services.db, services.clock, services.settings.qdrant_collection)
        catalog = IndexCatalog(states)
    return ConsolePorts(
        services.db, services.clock, services.ledger, services.outbox, services.knowledge, catalog, services.pasted
    )


READY_PROBE = f"ready-probe:{socket.gethostname()}:{os.getpid()}"


async def prometheus(_request: web.Request) -> web.Response:
    body = generate_latest()  # database-backed gauges are refreshed by the service, not per scrape
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def build_metrics_app() -> web.Application:
    """/metrics alone, for its own listener (`METRICS_PORT`): scrapes never share the public port."""
    app = web.Application()
    app.router.add_get("/metrics", prometheus)
    return app


async def _database_writable(services: Wiring) -> bool:
    """A write, not a SELECT: a database that answers reads but refuses writes (disk full, read-only replica,
    lost lock) would lose every inquiry, so the process is not ready."""
    try:
        return await services.leases.acquire(READY_PROBE, READY_PROBE, 30.0)
    except Exception:
        log.warning("health.database_not_writable", exc_info=True)
        return False


async def _knowledge_ready(services: Wiring) -> bool:
    try:
        return await services.knowledge.ready()
    except Exception:
        log.exception("health.knowledge_failed")
        return False
