"""The console's aiohttp sub-application: configuration, ports, the security middleware, login and logout.

Every response carries a Content-Security-Policy without `unsafe-inline` (scripts and styles come from
/console/static only), every page but the login form needs a session, and every POST must echo the session's
CSRF token. Templates are Jinja2 with autoescape on: customer text is untrusted HTML and is shown as text.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import jinja2
import structlog
from aiohttp import web

from bot.confidence import ABSTAIN_THRESHOLD, LOW_CONFIDENCE_THRESHOLD
from bot.ports import Clock, IngestSummary, KnowledgeEngine
from bot.store.audit import AuditLog
from bot.store.db import Database
from bot.store.ledger import InboundLedger
from bot.store.outbox import Outbox
from bot.store.report_archive import ReportArchive
from bot.store.reviews import ReviewStore
from channels.api.handler import FailureLimiter
from console.auth import SECURITY_HEADERS, KeyRing, Operator, Session, Sessions, csrf_ok
from console.queries import Bands

log = structlog.get_logger(__name__)

HERE = Path(__file__).parent
PUBLIC = ("/console/login", "/console/static/")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SESSION = web.RequestKey("console_session", Session)
ANONYMOUS = Session(csrf="")  # no cookie (or a bad one): no CSRF token, no operator


@dataclass(frozen=True, slots=True)
class ConsoleConfig:
    """The console's part of the settings (built by the composition root)."""

    admin_keys: tuple[str, ...] = ()
    reviewer_keys: tuple[str, ...] = ()
    abstain_threshold: float = ABSTAIN_THRESHOLD
    low_confidence_threshold: float = LOW_CONFIDENCE_THRESHOLD
    session_hours: float = 12.0
    failed_logins_per_minute: int = 10
    page_size: int = 50
    handoff_sla_minutes: int = 240

    @property
    def enabled(self) -> bool:
        return bool(self.admin_keys)


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    """One knowledge-base document as the Knowledge page lists it."""

    title: str
    source: str
    chunks: int
    updated: str  # when its last version was indexed (UTC)


class DocumentCatalog(Protocol):
    """The documents in the index with their chunk counts (implemented by the composition root)."""

    async def documents(self) -> list[DocumentInfo]: ...


class PageUploads(Protocol):
    """Where a pasted or uploaded page goes: kept, written where the KB sync reads it, and ingested at once
    (implemented by `knowledge.pasted.PastedPages`). Raises ValueError for a name or size it does not accept."""

    async def add(self, name: str, body: str, author: str) -> IngestSummary: ...


@dataclass(frozen=True, slots=True)
class ConsolePorts:
    """What the console reads and acts through: the store, the ledger and outbox (replay), the knowledge engine
    ("try a question" asks it directly; nothing is recorded or sent), the document catalog, and where pasted pages
    go (None when this process has no writable index)."""

    db: Database
    clock: Clock
    ledger: InboundLedger
    outbox: Outbox
    knowledge: KnowledgeEngine
    catalog: DocumentCatalog | None = None
    pages: PageUploads | None = None


class Console:
    """Shared state of the console's handlers."""

    def __init__(self, config: ConsoleConfig, ports: ConsolePorts) -> None:
        self.config = config
        self.ports = ports
        self.keys = KeyRing(config.admin_keys, config.reviewer_keys)
        self.sessions = Sessions(self.keys.secret(), int(config.session_hours * 3600))
        self.failures = FailureLimiter(config.failed_logins_per_minute)
        self.audit = AuditLog(ports.db, ports.clock)
        self.reviews = ReviewStore(ports.db, ports.clock)
        self.reports = ReportArchive(ports.db, ports.clock)
        self.bands = Bands(config.abstain_threshold, config.low_confidence_threshold)
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,  # every template, every value: customer text is untrusted HTML
            undefined=jinja2.StrictUndefined,
        )
        self.templates.filters["when"] = _when
        self.templates.filters["href"] = safe_href

    def render(self, request: web.Request, name: str, status: int = 200, **context: Any) -> web.Response:
        session = request.get(SESSION, ANONYMOUS)
        body = self.templates.get_template(name).render(
            operator=session.operator,
            csrf=session.csrf,
            path=request.path,
            **context,
        )
        return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


def operator(request: web.Request) -> Operator:
    session = request[SESSION]
    assert session.operator is not None  # the middleware lets no one else through
    return session.operator


def admin_only(handler: Handler) -> Handler:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        if not operator(request).is_admin:
            raise web.HTTPForbidden(text="admins only")
        return await handler(request)

    return wrapped


def safe_href(url: object) -> str:
    """A link target fit for an href: http(s) only; anything else (javascript:, data:) becomes empty."""
    text = str(url or "")
    return text if urlsplit(text).scheme in ("http", "https") else ""


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "—"


def local_target(raw: object, default: str = "/console/") -> str:
    """A redirect target inside the console (never another site)."""
    text = str(raw or "")
    return text if text.startswith("/console/") and not text.startswith("/console//") and "\\" not in text else default


def build_middleware(console: Console) -> Any:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await _guarded(console, request, handler)
        except web.HTTPException as exc:
            response = exc
        response.headers.update(SECURITY_HEADERS)
        return response

    return guard


async def _guarded(console: Console, request: web.Request, handler: Handler) -> web.StreamResponse:
    session = console.sessions.load(request) or ANONYMOUS
    request[SESSION] = session
    if request.path.startswith(PUBLIC[1]):
        return await handler(request)
    if request.method == "POST":
        form = await request.post()
        if not csrf_ok(session, form.get("csrf")):
            log.info("console.csrf_refused", path=request.path, remote=request.remote)
            raise web.HTTPForbidden(text="missing or stale form token; reload the page and try again")
    if request.path != PUBLIC[0] and session.operator is None:
        raise web.HTTPSeeOther("/console/login")
    return await handler(request)


def login_routes(console: Console) -> Sequence[web.RouteDef]:
    async def form(request: web.Request) -> web.StreamResponse:
        session = request[SESSION]
        if session.operator is not None:
            raise web.HTTPSeeOther("/console/")
        session = session if session.csrf else console.sessions.fresh()
        request[SESSION] = session
        response = console.render(request, "login.html", error="")
        console.sessions.store(response, request, session)
        return response

    async def login(request: web.Request) -> web.StreamResponse:
        remote = request.remote or "unknown"
        if console.failures.exhausted(remote):
            return console.render(request, "login.html", status=429, error="Too many failed attempts; wait a minute.")
        data = await request.post()
        match = console.keys.match(str(data.get("key", "")))
        name = " ".join(str(data.get("name", "")).split())[:64]
        if match is None:
            await console.failures.record(remote)
            await console.audit.record("anonymous", "login_failed", remote)
            return console.render(request, "login.html", status=401, error="That key is not valid.")
        who = Operator(match[0], match[1], name)
        session = console.sessions.fresh(who)  # a new CSRF token with every login
        await console.audit.record(who.actor, "login", remote)
        response = web.HTTPSeeOther("/console/")
        console.sessions.store(response, request, session)
        raise response

    async def logout(request: web.Request) -> web.StreamResponse:
        await console.audit.record(operator(request).actor, "logout")
        response = web.HTTPSeeOther("/console/login")
        console.sessions.clear(response)
        raise response

    return [web.get("/login", form), web.post("/login", login), web.post("/logout", logout)]
