"""Console access: off without ADMIN_KEYS, login with a key, signed strict cookies, CSRF on every POST, a CSP
without unsafe-inline, rate-limited login, reviewer vs admin, and an audit row for every action."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from app.build import build_service
from app.http import Readiness, build_http_app
from app.settings import Settings
from bot.store.tables import AuditRow
from tests.console.conftest import ADMIN_KEY, CSRF, REVIEWER_KEY, ConsoleRig
from tests.doubles import RecordingIndex, ScriptedKnowledge

PAGES = [
    "/console/",
    "/console/conversations",
    "/console/conversations/1",
    "/console/review",
    "/console/knowledge",
    "/console/dead-letters",
    "/console/tickets",
    "/console/gaps",
    "/console/reports",
    "/console/reports/2026-W47",
    "/console/reports/2026-W47/chart.png",
    "/console/audit",
]


async def audit(rig: ConsoleRig) -> list[tuple[str, str, str]]:
    async with rig.db.sessions() as session:
        rows = (await session.execute(select(AuditRow).order_by(AuditRow.id))).scalars()
        return [(r.actor, r.action, r.target) for r in rows]


async def test_the_console_is_mounted_only_when_admin_keys_are_set(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path, http_port=0)  # type: ignore[call-arg]
    services = await build_service(settings, knowledge=ScriptedKnowledge(), with_escalation=False)
    try:
        off = TestClient(TestServer(build_http_app(services, Readiness())))
        await off.start_server()
        assert (await off.get("/console/login")).status == 404
        await off.close()
        with_keys = dataclasses.replace(services, settings=settings.model_copy(update={"admin_keys": [ADMIN_KEY]}))
        on = TestClient(TestServer(build_http_app(with_keys, Readiness())))
        await on.start_server()
        resp = await on.get("/console/login")
        assert resp.status == 200 and "Log in" in await resp.text()
        await on.close()
    finally:
        await services.db.dispose()


async def test_logged_out_every_page_redirects_to_login(rig: ConsoleRig) -> None:
    for path in PAGES:
        resp = await rig.client.get(path, allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"] == "/console/login", path
    css = await rig.client.get("/console/static/console.css")
    assert css.status == 200  # static files need no session (the login page uses them)


async def test_login_sets_a_strict_httponly_cookie_and_a_csp_without_unsafe_inline(rig: ConsoleRig) -> None:
    form = await rig.client.get("/console/login")
    csp = form.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert form.headers["X-Content-Type-Options"] == "nosniff"
    token = CSRF.search(await form.text())
    assert token
    resp = await rig.client.post(
        "/console/login", data={"csrf": token.group(1), "key": ADMIN_KEY, "name": "Dana"}, allow_redirects=False
    )
    assert resp.status == 303
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # over loopback only; any other address gets Secure
    assert "Overview" in await rig.page("/console/")
    assert await audit(rig) == [("Dana (admin:" + _kid(ADMIN_KEY) + ")", "login", "127.0.0.1")]


async def test_a_wrong_key_is_refused_audited_and_rate_limited(rig: ConsoleRig) -> None:
    form = await rig.client.get("/console/login")
    token = CSRF.search(await form.text())
    assert token
    statuses = []
    for n in range(11):
        resp = await rig.client.post("/console/login", data={"csrf": token.group(1), "key": f"guess-{n}"})
        statuses.append(resp.status)
    assert statuses[:10] == [401] * 10 and statuses[10] == 429
    right = await rig.client.post("/console/login", data={"csrf": token.group(1), "key": ADMIN_KEY})
    assert right.status == 429  # the address waits for its bucket to drain, whatever key it sends
    assert [a for _, a, _ in await audit(rig)] == ["login_failed"] * 10


async def test_a_post_without_the_csrf_token_is_refused(rig: ConsoleRig) -> None:
    form = await rig.client.get("/console/login")
    no_token = await rig.client.post("/console/login", data={"key": ADMIN_KEY}, allow_redirects=False)
    assert no_token.status == 403 and "form token" in await no_token.text()
    assert no_token.headers["Content-Security-Policy"]  # error pages carry the headers too
    assert form.status == 200
    await rig.login()
    for path in (
        "/console/logout",
        "/console/dead-letters/replay-all",
        "/console/knowledge/try",
        "/console/knowledge/pages",
        "/console/review/1",
    ):
        wrong = await rig.client.post(path, data={"csrf": "forged"}, allow_redirects=False)
        assert wrong.status == 403, path
    assert (await rig.client.get("/console/", allow_redirects=False)).status == 200  # still logged in


async def test_a_tampered_cookie_is_a_logged_out_visitor(rig: ConsoleRig) -> None:
    await rig.login(REVIEWER_KEY)
    cookie = rig.client.session.cookie_jar.filter_cookies(rig.client.make_url("/console/"))["sb_console"]
    rig.client.session.cookie_jar.clear()
    genuine = await rig.client.get("/console/", headers={"Cookie": f"sb_console={cookie.value}"}, allow_redirects=False)
    assert genuine.status == 200
    payload, _, signature = cookie.value.partition(".")
    forged = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1] + "." + signature
    resp = await rig.client.get("/console/", headers={"Cookie": f"sb_console={forged}"}, allow_redirects=False)
    assert resp.status == 303


async def test_reviewers_cannot_replay_or_read_the_audit_log_and_logout_ends_the_session(rig: ConsoleRig) -> None:
    csrf = await rig.login(REVIEWER_KEY, name="Rae")
    page = await rig.page("/console/dead-letters")
    assert "Replay all" not in page and "Audit log" not in page
    refused = await rig.client.post("/console/dead-letters/replay-all", data={"csrf": csrf}, allow_redirects=False)
    assert refused.status == 403
    assert (await rig.client.get("/console/audit")).status == 403
    out = await rig.client.post("/console/logout", data={"csrf": csrf}, allow_redirects=False)
    assert out.status == 303
    assert (await rig.client.get("/console/", allow_redirects=False)).status == 303
    actions = [(actor.split(" ")[0], action) for actor, action, _ in await audit(rig)]
    assert actions == [("Rae", "login"), ("Rae", "logout")]
    csrf = await rig.login(ADMIN_KEY)
    assert "Rae (reviewer:" in await rig.page("/console/audit")


def _kid(key: str) -> str:
    import hashlib

    return hashlib.sha256(key.encode()).hexdigest()[:12]


async def test_every_admin_api_call_is_audited_with_the_keys_id(tmp_path: Path) -> None:
    kb = tmp_path / "kb"
    kb.mkdir()
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, data_dir=tmp_path, http_port=0, admin_keys=[ADMIN_KEY], knowledge_paths=[str(kb)]
    )
    services = await build_service(settings, knowledge=ScriptedKnowledge(), with_escalation=False)
    index = RecordingIndex()
    client = TestClient(TestServer(build_http_app(dataclasses.replace(services, index=index), Readiness())))
    await client.start_server()
    try:
        bearer = {"Authorization": f"Bearer {ADMIN_KEY}"}
        assert (await client.post("/api/admin/sync", headers=bearer)).status == 200
        page = str(kb / "hours.md")
        assert (await client.post("/api/admin/ingest", json={"paths": [page]}, headers=bearer)).status == 200
        outside = await client.post("/api/admin/ingest", json={"paths": ["/etc/hostname"]}, headers=bearer)
        assert outside.status == 403
        assert (await client.post("/api/admin/sync", headers={"Authorization": "Bearer nope"})).status == 401
        async with services.db.sessions() as session:
            rows = (await session.execute(select(AuditRow).order_by(AuditRow.id))).scalars().all()
        who = f"admin:{_kid(ADMIN_KEY)}"
        assert [(r.actor, r.action, r.target) for r in rows] == [
            (who, "api_sync", str(kb.resolve())),
            (who, "api_ingest", str(Path(page).resolve())),
            (who, "api_ingest_refused", "/etc/hostname"),
        ]  # an unauthenticated call is refused, not written: nobody can fill the log without a key
        assert rows[0].detail["paths"] == 1 and rows[0].detail["summary"].startswith("1 files: 1 added, 0 updated")
        assert index.ingested == [[kb.resolve()], [Path(page).resolve()]]
    finally:
        await client.close()
        await services.db.dispose()
