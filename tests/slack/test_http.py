"""The HTTP Events API endpoint: signatures are checked, the URL handshake answered, unknown events acked."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

from tests.slack.conftest import SlackHarness, load_fixture


async def test_bad_signature_is_refused(harness: SlackHarness) -> None:
    body = json.dumps(load_fixture("01_app_mention")["body"])
    headers = {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": str(int(time.time())),
        "X-Slack-Signature": "v0=" + "0" * 64,
    }
    async with harness.http.post(harness.url, data=body, headers=headers) as response:
        assert response.status == 401
    await harness.settle()
    assert harness.fake.messages == []
    assert await harness.services.ledger.count_by_status() == {}


async def test_stale_timestamp_is_refused(harness: SlackHarness) -> None:
    """A captured request replayed later fails the timestamp check even with a valid signature."""
    from slack_sdk.signature import SignatureVerifier

    from tests.slack.conftest import SIGNING_SECRET

    body = json.dumps(load_fixture("01_app_mention")["body"])
    old = str(int(time.time()) - 600)
    headers = {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": old,
        "X-Slack-Signature": SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=old, body=body),
    }
    async with harness.http.post(harness.url, data=body, headers=headers) as response:
        assert response.status == 401


async def test_url_verification_answers_the_challenge(harness: SlackHarness) -> None:
    body = json.dumps(
        {
            "token": "XXYYZZ",
            "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
            "type": "url_verification",
        }
    )
    response = await harness.post(body, "application/json")
    assert response.status == 200
    assert (await response.json())["challenge"] == "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"


async def test_events_are_acked_before_the_answer_is_posted(harness: SlackHarness) -> None:
    """The ack (HTTP 200) comes back while the answer is still to be delivered: the work runs afterwards."""
    status = await harness.event(load_fixture("01_app_mention")["body"])
    assert status == 200
    assert await harness.services.ledger.seen("slack:event:Ev0001MENTION")
    await harness.settle()
    assert len(harness.fake.messages) == 1


async def test_requests_without_slack_headers_are_refused_before_the_body_is_read(harness: SlackHarness) -> None:
    """No signature, a stale timestamp or a declared body over 1 MiB: 401 without reading (or waiting for) the
    body, so a slow or huge unsigned upload costs the service nothing."""
    import asyncio

    async def endless() -> AsyncIterator[bytes]:  # a body that never ends: only a refusal before reading answers
        while True:
            yield b"x" * 65536
            await asyncio.sleep(0.05)

    async with harness.http.post(harness.url, data=endless(), headers={"Content-Type": "application/json"}) as response:
        assert response.status == 401
    now = str(int(time.time()))
    huge = {"X-Slack-Request-Timestamp": now, "X-Slack-Signature": "v0=" + "0" * 64, "Content-Type": "application/json"}
    async with harness.http.post(harness.url, data=b"x" * (2 * 1024 * 1024), headers=huge) as response:
        assert response.status == 401
    assert await harness.services.ledger.count_by_status() == {}
