"""Ticket offers over the JSON API carry their token, and `POST /api/actions/{token}/confirm` opens the ticket: only
for the key and the conversation the offer was made in, and only once however often it is called."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from app.build import build_service
from app.serve import SupportApp
from app.settings import Settings
from bot.offers import offer_reference
from bot.store.tables import TicketRow
from bot.strings import for_customers
from tests.doubles import ScriptedKnowledge

KEY_A, KEY_B = "key-a-1234567890abcdef", "key-b-1234567890abcdef"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[SupportApp, str]]:
    settings = Settings(_env_file=None, data_dir=tmp_path, http_port=0, api_keys=[KEY_A, KEY_B])  # type: ignore[call-arg]
    services = await build_service(settings, knowledge=ScriptedKnowledge())  # escalation on, no agents' channel
    app = SupportApp(services)
    await app.start()
    try:
        yield app, f"http://127.0.0.1:{app.port}"
    finally:
        await app.stop(grace_seconds=0)


async def _post(http: aiohttp.ClientSession, url: str, key: str, body: dict[str, Any]) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with http.post(url, json=body, headers=headers) as resp:
        return resp.status, await resp.json()


async def test_an_api_offer_is_confirmed_once_by_its_own_key_and_conversation(api: tuple[SupportApp, str]) -> None:
    app, base = api
    async with aiohttp.ClientSession() as http:
        status, asked = await _post(
            http, f"{base}/api/ask", KEY_A, {"question": "Why is my VAT wrong?", "conversation_id": "c1"}
        )
        assert status == 200 and asked["outcome"] == "abstained"
        (offer,) = [a for a in asked["actions"] if a["kind"] == "offer_ticket"]
        token = offer["token"]
        assert offer["reference"] == offer_reference(token)
        confirm = f"{base}{offer['confirm']}"
        assert confirm == f"{base}/api/actions/{token}/confirm"

        assert (await _post(http, confirm, "", {"conversation_id": "c1"}))[0] == 401  # no key
        assert (await _post(http, confirm, "wrong-key-1234567890", {"conversation_id": "c1"}))[0] == 401
        status, refused = await _post(http, confirm, KEY_B, {"conversation_id": "c1"})  # another client
        assert status == 403 and refused["error"] == for_customers.NOT_YOURS
        status, refused = await _post(http, confirm, KEY_A, {"conversation_id": "c2"})  # another conversation
        assert status == 403 and refused["error"] == for_customers.NOT_YOURS
        assert (await _post(http, confirm, KEY_A, {}))[0] == 400

        first = await _post(http, confirm, KEY_A, {"conversation_id": "c1"})
        again = await _post(http, confirm, KEY_A, {"conversation_id": "c1"})
    expected = for_customers.TICKET_CREATED.format(reference="#1")
    assert first == (200, {**first[1], "answer": expected, "outcome": "handoff"})
    assert again[0] == 200 and again[1]["answer"] == expected
    async with app.services.db.sessions() as session:
        assert (await session.execute(select(func.count()).select_from(TicketRow))).scalar_one() == 1


async def test_an_api_request_for_a_person_promises_nothing_and_offers_a_ticket(api: tuple[SupportApp, str]) -> None:
    _app, base = api
    async with aiohttp.ClientSession() as http:
        status, body = await _post(http, f"{base}/api/ask", KEY_A, {"question": "Can I talk to a human please?"})
    assert status == 200 and body["outcome"] == "handoff"
    assert body["answer"] == for_customers.NO_AGENT_OFFER_TICKET
    assert [a["kind"] for a in body["actions"]] == ["offer_ticket"] and body["actions"][0]["token"]
