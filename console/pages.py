"""The console's pages: overview, conversations, review queue, knowledge (try a question, add a page), dead letters,
tickets and hand-offs, gaps, reports, audit log. Handlers read through `console.queries`, act through the stores,
and audit every action."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import PurePath
from typing import Any

import structlog
from aiohttp import web
from multidict import MultiDictProxy

from bot.messages import Channel, Outcome
from bot.store.reviews import VERDICTS
from console import queries
from console.app import Console, admin_only, local_target, operator, safe_href
from knowledge.pasted import MAX_PAGE_BYTES, SUFFIXES, markdown_page, page_name

log = structlog.get_logger(__name__)

MAX_TRY_CHARS = 2000
WEEK = re.compile(r"^\d{4}-W\d{2}$")


def _cursor(request: web.Request) -> int | None:
    raw = request.query.get("before", "")
    return int(raw) if raw.isdigit() else None


def _day(raw: str) -> date | None:
    try:
        return date.fromisoformat(raw) if raw else None
    except ValueError:
        return None


def page_routes(console: Console) -> Sequence[web.RouteDef]:
    db, size = console.ports.db, console.config.page_size

    async def overview(request: web.Request) -> web.Response:
        now = console.ports.clock.now()
        today = now.replace(hour=0, minute=0, second=0, microsecond=0)
        week = today - timedelta(days=today.weekday())
        periods = [("Today", await queries.overview(db, today)), ("This week", await queries.overview(db, week))]
        sla = timedelta(minutes=console.config.handoff_sla_minutes)
        late_count, late = await queries.late_handoffs(db, now, sla)
        return console.render(
            request,
            "overview.html",
            periods=periods,
            now=now,
            late_count=late_count,
            late=late,
            sla_minutes=console.config.handoff_sla_minutes,
            age=lambda t: _age(now, t),
        )

    async def conversations(request: web.Request) -> web.Response:
        q = request.query
        f = queries.TurnFilter(
            channel=q.get("channel", "") if q.get("channel", "") in {c.value for c in Channel} else "",
            outcome=q.get("outcome", "") if q.get("outcome", "") in {o.value for o in Outcome} else "",
            band=q.get("band", "") if q.get("band", "") in ("low", "medium", "high") else "",
            since=_day(q.get("since", "")),
            until=_day(q.get("until", "")),
            feedback=q.get("feedback", "") if q.get("feedback", "") in ("down", "up", "any") else "",
        )
        page = await queries.bot_turns(db, console.bands, f, _cursor(request), size)
        keep = {k: v for k, v in q.items() if k != "before" and v}
        return console.render(
            request,
            "conversations.html",
            page=page,
            f=f,
            keep=keep,
            channels=[c.value for c in Channel],
            outcomes=[o.value for o in Outcome],
        )

    async def conversation(request: web.Request) -> web.Response:
        raw = request.match_info["id"]
        view = await queries.conversation(db, int(raw)) if raw.isdigit() else None
        if view is None:
            raise web.HTTPNotFound(text="no such conversation")
        return console.render(request, "conversation.html", view=view, verdicts=VERDICTS)

    async def review(request: web.Request) -> web.Response:
        after = queries.review_cursor(request.query.get("after", ""))
        page = await queries.review_queue(db, console.bands, after, size)
        return console.render(request, "review.html", page=page, verdicts=VERDICTS)

    async def verdict(request: web.Request) -> web.StreamResponse:
        raw = request.match_info["turn"]
        data = await request.post()
        choice = str(data.get("verdict", ""))
        if not raw.isdigit() or choice not in VERDICTS:
            raise web.HTTPBadRequest(text=f"verdict must be one of {', '.join(VERDICTS)}")
        who = operator(request)
        note, expected = str(data.get("note", "")).strip(), str(data.get("expected_source", "")).strip()
        if not await console.reviews.record(int(raw), choice, who.actor, note, expected):
            raise web.HTTPNotFound(text="no such answer")
        await console.audit.record(who.actor, "verdict", f"turn:{raw}", {"verdict": choice, "expected": expected})
        raise web.HTTPSeeOther(local_target(data.get("next"), "/console/review"))

    async def knowledge(request: web.Request) -> web.Response:
        return console.render(request, "knowledge.html", **(await _knowledge_context(console)))

    async def try_question(request: web.Request) -> web.Response:
        data = await request.post()
        question = " ".join(str(data.get("question", "")).split())[:MAX_TRY_CHARS]
        who = operator(request)
        tried = None
        error = ""
        if question:
            try:
                tried = await console.ports.knowledge.answer(question)  # asks only: nothing recorded, nothing sent
            except Exception:
                reference = secrets.token_hex(4)
                log.exception("console.try_failed", reference=reference)
                error = f"The knowledge engine failed (reference {reference})."
            await console.audit.record(who.actor, "try_question", "", {"chars": len(question)})
        context: dict[str, Any] = {
            **(await _knowledge_context(console)),
            "tried": tried,
            "question": question,
            "error": error,
        }
        return console.render(request, "knowledge.html", **context)

    @admin_only
    async def add_page(request: web.Request) -> web.Response:
        data = await request.post()
        who = operator(request)
        context = await _knowledge_context(console)
        pages = console.ports.pages
        try:
            if pages is None:
                raise PageRefused("This process has no writable knowledge index; add the page to KNOWLEDGE_PATHS.")
            name, body, how = _page_from_form(data)
            report = await pages.add(name, body, who.actor)
        except (PageRefused, ValueError) as exc:
            message = str(exc) if isinstance(exc, PageRefused) else "That page cannot be stored (name or size)."
            return console.render(request, "knowledge.html", status=400, **{**context, "page_error": message})
        except Exception:
            reference = secrets.token_hex(4)
            log.exception("console.page_failed", reference=reference)
            failed = f"The page could not be ingested (reference {reference})."
            return console.render(request, "knowledge.html", status=500, **{**context, "page_error": failed})
        summary = report.summary().splitlines()[0]
        await console.audit.record(who.actor, "page_ingested", name, {"bytes": len(body.encode()), "how": how})
        context = await _knowledge_context(console)  # the list now holds the page
        return console.render(request, "knowledge.html", **{**context, "ingested": (name, summary)})

    async def dead_letters(request: web.Request) -> web.Response:
        page = await queries.dead_letters(db, _cursor(request), size)
        _pending, _age, dead_replies = await console.ports.outbox.stats()
        return console.render(request, "dead_letters.html", page=page, dead_replies=dead_replies)

    @admin_only
    async def replay_one(request: web.Request) -> web.StreamResponse:
        raw = request.match_info["id"]
        done = raw.isdigit() and await console.ports.ledger.requeue(int(raw))
        await console.audit.record(operator(request).actor, "replay", f"inbound:{raw}", {"requeued": bool(done)})
        raise web.HTTPSeeOther("/console/dead-letters")

    @admin_only
    async def replay_all(request: web.Request) -> web.StreamResponse:
        ledger = console.ports.ledger
        requeued = [r.id for r in await ledger.dead_letters(10_000) if await ledger.requeue(r.id)]
        replies = await console.ports.outbox.requeue_dead()
        detail = {"inbound": len(requeued), "replies": replies}
        await console.audit.record(operator(request).actor, "replay_all", "", detail)
        raise web.HTTPSeeOther("/console/dead-letters")

    async def tickets(request: web.Request) -> web.Response:
        page = await queries.tickets(db, _cursor(request), size)
        handoffs = await queries.handoffs(db, None, size)
        now = console.ports.clock.now()
        return console.render(request, "tickets.html", page=page, handoffs=handoffs, age=lambda t: _age(now, t))

    async def gaps(request: web.Request) -> web.Response:
        return console.render(request, "gaps.html", gaps=await queries.gaps(db))

    @admin_only
    async def audit(request: web.Request) -> web.Response:
        entries = await console.audit.recent(size + 1, _cursor(request))
        more = len(entries) > size
        entries = entries[:size]
        return console.render(
            request, "audit.html", entries=entries, next_before=entries[-1].id if more and entries else None
        )

    async def reports(request: web.Request) -> web.Response:
        before = request.query.get("before", "")
        entries = await console.reports.recent(size + 1, before if WEEK.match(before) else None)
        more = len(entries) > size
        entries = entries[:size]
        next_before = entries[-1].week if more and entries else None
        return console.render(request, "reports.html", entries=entries, next_before=next_before)

    async def report(request: web.Request) -> web.Response:
        week = request.match_info["week"]
        entry = await console.reports.get(week) if WEEK.match(week) else None
        if entry is None:
            raise web.HTTPNotFound(text="no report for that week")
        return console.render(request, "report.html", entry=entry)

    async def chart(request: web.Request) -> web.Response:
        week = request.match_info["week"]
        png = await console.reports.chart(week) if WEEK.match(week) else b""
        if not png:
            raise web.HTTPNotFound(text="no chart for that week")
        return web.Response(body=png, content_type="image/png")

    return [
        web.get("/", overview),
        web.get("/conversations", conversations),
        web.get("/conversations/{id}", conversation),
        web.get("/review", review),
        web.post("/review/{turn}", verdict),
        web.get("/knowledge", knowledge),
        web.post("/knowledge/try", try_question),
        web.post("/knowledge/pages", add_page),
        web.get("/dead-letters", dead_letters),
        web.post("/dead-letters/replay-all", replay_all),
        web.post("/dead-letters/{id}/replay", replay_one),
        web.get("/tickets", tickets),
        web.get("/gaps", gaps),
        web.get("/reports", reports),
        web.get("/reports/{week}", report),
        web.get("/reports/{week}/chart.png", chart),
        web.get("/audit", audit),
    ]


async def _knowledge_context(console: Console) -> dict[str, Any]:
    catalog = console.ports.catalog
    documents = await catalog.documents() if catalog is not None else []
    chunks = sum(d.chunks for d in documents)
    return {
        "documents": documents,
        "chunks": chunks,
        "question": "",
        "error": "",
        "tried": None,
        "can_add": console.ports.pages is not None,
        "page_error": "",
        "ingested": None,
        "max_page_kb": MAX_PAGE_BYTES // 1024,
    }


class PageRefused(Exception):
    """A pasted or uploaded page the form refuses; the text is shown to the admin."""


def _page_from_form(data: MultiDictProxy[Any]) -> tuple[str, str, str]:
    """(file name, file content, "upload" or "paste") from the Add-a-page form, or PageRefused."""
    title = " ".join(str(data.get("title", "")).split())[:200]
    url = safe_href(str(data.get("url", "")).strip())
    upload = data.get("file")
    if isinstance(upload, web.FileField) and upload.filename:
        suffix = PurePath(upload.filename).suffix.lower()
        if suffix not in SUFFIXES:
            raise PageRefused("Upload a .md, .txt or .html file.")
        raw = upload.file.read(MAX_PAGE_BYTES + 1)
        if len(raw) > MAX_PAGE_BYTES:
            raise PageRefused(f"The file is larger than {MAX_PAGE_BYTES // 1024} KB.")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise PageRefused("The file is not UTF-8 text.") from None
        suffix = {".markdown": ".md", ".htm": ".html"}.get(suffix, suffix)
        name = page_name(title or PurePath(upload.filename).stem, suffix)
        body = markdown_page(title, text, url) if suffix == ".md" and (title or url) else text
        return name, body, "upload"
    text = str(data.get("text", ""))
    if not title or not text.strip():
        raise PageRefused("Give the page a title and its text (Markdown), or choose a file.")
    if len(text.encode()) > MAX_PAGE_BYTES:
        raise PageRefused(f"The text is larger than {MAX_PAGE_BYTES // 1024} KB.")
    return page_name(title, ".md"), markdown_page(title, text, url), "paste"


def _age(now: datetime, then: datetime | None) -> str:
    if then is None:
        return "—"
    minutes = int((now - then).total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h"
    return f"{minutes // 1440} d"
