"""The public listener under a slowloris: stalled heads and bodies are closed by their deadlines, a connection over
the cap is refused at once, and /health/live answers throughout on a connection that was already open."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from app.build import build_service
from app.serve import SupportApp
from app.settings import Settings
from tests.doubles import ScriptedKnowledge

STALLED = 200
CAP = STALLED + 2  # the stalled sockets, the health session's connection, one more; the next is refused
HEAD_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
KEY = "listener-test-key-0123456789"


@pytest.fixture
async def guarded(tmp_path: Path) -> AsyncIterator[SupportApp]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path,
        http_port=0,
        api_keys=[KEY],
        http_max_connections=CAP,
        http_header_timeout_seconds=HEAD_TIMEOUT,
        http_body_timeout_seconds=BODY_TIMEOUT,
    )
    services = await build_service(settings, knowledge=ScriptedKnowledge(), with_escalation=False)
    app = SupportApp(services)
    await app.start()
    try:
        yield app
    finally:
        await app.stop(grace_seconds=0)


async def closed_by_server(reader: asyncio.StreamReader, within: float) -> bool:
    """True when the server closes the connection (EOF or reset) within `within` seconds."""
    try:
        return await asyncio.wait_for(reader.read(65536), within) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


async def test_stalled_connections_are_closed_by_the_deadline_and_the_cap_refuses_more(guarded: SupportApp) -> None:
    port = guarded.port
    assert guarded.connections is not None
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as health:
        live = f"http://127.0.0.1:{port}/health/live"
        assert (await health.get(live)).status == 200  # its connection is open before the flood

        opened = time.monotonic()
        stalled = [await asyncio.open_connection("127.0.0.1", port) for _ in range(STALLED)]
        for n, (_reader, writer) in enumerate(stalled[:20]):  # a few trickle a partial head
            writer.write(b"GET /health/live HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: y\r\n" * (n % 3))
        await asyncio.sleep(0.1)
        assert len(guarded.connections.open) == STALLED + 1

        more_reader, more_writer = await asyncio.open_connection("127.0.0.1", port)  # the cap's last slot
        over_reader, _over_writer = await asyncio.open_connection("127.0.0.1", port)
        refused = await asyncio.wait_for(over_reader.read(), 2.0)
        assert refused.startswith(b"HTTP/1.1 503 ") and b"too many connections" in refused
        assert (await health.get(live)).status == 200  # the kept-alive connection still works at the cap

        closed = await asyncio.gather(*(closed_by_server(r, HEAD_TIMEOUT + 2.0) for r, _w in stalled))
        assert all(closed)
        assert await closed_by_server(more_reader, 1.0)
        assert time.monotonic() - opened < HEAD_TIMEOUT + 2.0
        assert (await health.get(live)).status == 200
        for _r, writer in [*stalled, (more_reader, more_writer)]:
            writer.close()
        await asyncio.sleep(0.05)
        assert len(guarded.connections.open) == 1  # only the health session's

    async with aiohttp.ClientSession() as fresh:  # below the cap again: new connections are served
        assert (await fresh.get(f"http://127.0.0.1:{port}/health/live")).status == 200


async def test_a_body_that_trickles_is_cut_off_and_a_prompt_one_served(guarded: SupportApp) -> None:
    port = guarded.port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(  # a valid key: the handler reads the body, which never completes
        f"POST /api/ask HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n".encode()
        + b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        + b'{"question": "'
    )
    started = time.monotonic()
    assert await closed_by_server(reader, BODY_TIMEOUT + 2.0)
    assert time.monotonic() - started >= BODY_TIMEOUT * 0.9
    writer.close()
    async with aiohttp.ClientSession() as http:  # a whole body, sent at once, is read and answered
        resp = await http.post(
            f"http://127.0.0.1:{port}/api/ask",
            json={"question": "How often does backup run?"},
            headers={"Authorization": f"Bearer {KEY}"},
        )
        assert resp.status == 200
