"""The HTTP surface on a real socket: health, readiness drain, metrics, and the JSON API's keys and limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from app.build import build_service
from app.serve import SupportApp
from app.settings import Settings
from tests.doubles import ScriptedKnowledge
from tests.ports import free_port


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[SupportApp, str, ScriptedKnowledge]]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path,
        http_port=0,
        api_keys=["old-key-1234567890", "new-key-0987654321"],
        api_rate_limit_per_minute=3,
    )
    knowledge = ScriptedKnowledge()
    services = await build_service(settings, knowledge=knowledge, with_escalation=False)
    app = SupportApp(services)
    await app.start()
    try:
        yield app, f"http://127.0.0.1:{app.port}", knowledge
    finally:
        await app.stop(grace_seconds=0)


async def test_health_and_readiness(running: tuple[SupportApp, str, ScriptedKnowledge]) -> None:
    app, base, knowledge = running
    async with aiohttp.ClientSession() as http:
        assert (await http.get(f"{base}/health/live")).status == 200
        ready = await http.get(f"{base}/health/ready")
        assert ready.status == 200 and (await ready.json())["checks"]["database"] is True
        knowledge.is_ready = False
        assert (await http.get(f"{base}/health/ready")).status == 503
        knowledge.is_ready = True
        app.readiness.draining = True
        drained = await http.get(f"{base}/health/ready")
        assert drained.status == 503 and (await drained.json())["status"] == "draining"
        assert (await http.get(f"{base}/health/live")).status == 200


async def test_ask_needs_a_valid_key_and_answers_with_sources(
    running: tuple[SupportApp, str, ScriptedKnowledge],
) -> None:
    _app, base, _knowledge = running
    async with aiohttp.ClientSession() as http:
        assert (await http.post(f"{base}/api/ask", json={"question": "backup?"})).status == 401
        wrong = await http.post(
            f"{base}/api/ask", json={"question": "backup?"}, headers={"Authorization": "Bearer nope"}
        )
        assert wrong.status == 401
        for key in ("old-key-1234567890", "new-key-0987654321"):  # both keys work during a rotation
            resp = await http.post(
                f"{base}/api/ask",
                json={"question": "How often does backup run?"},
                headers={"Authorization": f"Bearer {key}"},
            )
            body = await resp.json()
            assert resp.status == 200, body
            assert body["outcome"] == "answered" and body["citations"][0]["source"] == "kb/backups.md"
        bad = await http.post(
            f"{base}/api/ask", data=b"not json", headers={"Authorization": "Bearer old-key-1234567890"}
        )
        assert bad.status == 400 and "question" in (await bad.json())["error"]


async def test_rate_limit_per_key(running: tuple[SupportApp, str, ScriptedKnowledge]) -> None:
    _app, base, _knowledge = running
    statuses = []
    async with aiohttp.ClientSession() as http:
        for _ in range(5):
            resp = await http.post(
                f"{base}/api/ask", json={"question": "backup?"}, headers={"Authorization": "Bearer old-key-1234567890"}
            )
            statuses.append(resp.status)
        other = await http.post(
            f"{base}/api/ask", json={"question": "backup?"}, headers={"Authorization": "Bearer new-key-0987654321"}
        )
    assert statuses[:3] == [200, 200, 200] and 429 in statuses[3:]
    assert other.status == 200  # limits are per key


async def test_metrics_and_slack_mount(running: tuple[SupportApp, str, ScriptedKnowledge]) -> None:
    _app, base, _knowledge = running
    async with aiohttp.ClientSession() as http:
        await http.post(
            f"{base}/api/ask", json={"question": "backup?"}, headers={"Authorization": "Bearer old-key-1234567890"}
        )
        text = await (await http.get(f"{base}/metrics")).text()
        assert "supportbot_inquiries_total" in text and "supportbot_outbox_pending" in text
        slack = await http.post(f"{base}/slack/events", json={})
        assert slack.status == 404


async def test_refused_requests_are_counted_and_failed_keys_are_limited(
    running: tuple[SupportApp, str, ScriptedKnowledge],
) -> None:
    _app, base, _knowledge = running
    from prometheus_client import REGISTRY

    before = REGISTRY.get_sample_value("supportbot_api_refused_total", {"reason": "unauthorized"}) or 0.0
    statuses = []
    async with aiohttp.ClientSession() as http:
        for n in range(12):
            resp = await http.post(
                f"{base}/api/ask", json={"question": "backup?"}, headers={"Authorization": f"Bearer guess-{n}"}
            )
            statuses.append(resp.status)
        valid_after = await http.post(
            f"{base}/api/ask", json={"question": "backup?"}, headers={"Authorization": "Bearer new-key-0987654321"}
        )
    assert statuses[:10] == [401] * 10 and statuses[10:] == [429, 429]
    assert valid_after.status == 429  # the address is refused without a key check until its bucket drains
    after = REGISTRY.get_sample_value("supportbot_api_refused_total", {"reason": "unauthorized"})
    assert after == before + 10
    assert (REGISTRY.get_sample_value("supportbot_api_refused_total", {"reason": "too_many_failures"}) or 0) >= 3


async def test_invalid_text_is_cleaned_at_the_edge(running: tuple[SupportApp, str, ScriptedKnowledge]) -> None:
    _app, base, knowledge = running
    body = b'{"question": "How often does backup run?\\ud800 \\u0000"}'  # a lone surrogate and a NUL, as JSON
    async with aiohttp.ClientSession() as http:
        resp = await http.post(
            f"{base}/api/ask",
            data=body,
            headers={"Authorization": "Bearer old-key-1234567890", "Content-Type": "application/json"},
        )
        payload = await resp.json()
    assert resp.status == 200, payload
    assert payload["outcome"] == "answered"
    assert knowledge.asked[-1][0] == "How often does backup run?\ufffd"  # the service strips the trailing space


async def test_malformed_requests_and_deep_json_get_4xx_never_a_500(
    running: tuple[SupportApp, str, ScriptedKnowledge],
) -> None:
    app, base, _knowledge = running
    auth = {"Authorization": "Bearer old-key-1234567890", "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as http:
        deep = await http.post(f"{base}/api/ask", data=b"[" * 100_000 + b"]" * 100_000, headers=auth)
        assert deep.status == 400 and "question" in (await deep.json())["error"]
        not_utf8 = await http.post(f"{base}/api/ask", data=b'{"question": "\xff\xfe"}', headers=auth)
        assert not_utf8.status == 200  # bytes that are not UTF-8 are cleaned at the edge (U+FFFD), never a 5xx
    for head in (b"GET /health/live HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", b"GET / HTTP/9\r\n\r\n"):
        reader, writer = await asyncio.open_connection("127.0.0.1", app.port)
        writer.write(head)
        status_line = await reader.readline()
        writer.close()
        assert status_line.split(b" ")[1] == b"400", status_line


async def test_an_oversized_question_is_refused_at_the_edge_and_stored_nowhere(
    running: tuple[SupportApp, str, ScriptedKnowledge],
) -> None:
    app, base, knowledge = running
    before = await app.services.ledger.count_by_status()
    async with aiohttp.ClientSession() as http:
        resp = await http.post(
            f"{base}/api/ask",
            json={"question": "x" * 980_000},
            headers={"Authorization": "Bearer old-key-1234567890"},
        )
        assert resp.status == 413 and "longer than 4000" in (await resp.json())["error"]
    assert await app.services.ledger.count_by_status() == before  # not recorded, so no turn either
    assert knowledge.asked == []


async def test_metrics_on_their_own_listener(tmp_path: Path) -> None:
    """With METRICS_PORT set, /metrics answers there and not on the public port."""
    metrics_port = free_port()
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path,
        http_port=0,
        metrics_port=metrics_port,
    )
    services = await build_service(settings, knowledge=ScriptedKnowledge(), with_escalation=False)
    app = SupportApp(services)
    await app.start()
    try:
        async with aiohttp.ClientSession() as http:
            public = await http.get(f"http://127.0.0.1:{app.port}/metrics")
            own = await http.get(f"http://127.0.0.1:{metrics_port}/metrics")
            assert public.status == 404
            assert own.status == 200 and "supportbot_inquiries_total" in await own.text()
            assert (await http.get(f"http://127.0.0.1:{metrics_port}/api/ask")).status == 404
    finally:
        await app.stop(grace_seconds=0)
