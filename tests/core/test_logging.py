"""The log redactor: secrets never reach a log line, by key name or by value."""

from __future__ import annotations

import json
import logging

import pytest
import structlog
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from bot.logging import MASK, Redactor, configure_logging
from bot.store.db import Database


def test_redactor_masks_secret_keys_and_values() -> None:
    redact = Redactor(["xoxb-123456-secret", "short"])
    event = redact(
        None,
        "info",
        {
            "event": "slack.call",
            "token": "anything",
            "Authorization": "Bearer abc",
            "detail": "called with xoxb-123456-secret inside",
            "note": "short values are left alone",
        },
    )
    assert event["token"] == MASK and event["Authorization"] == MASK
    assert event["detail"] == f"called with {MASK} inside"
    assert event["note"] == "short values are left alone"  # under 6 characters: too short to mask safely
    assert event["event"] == "slack.call"


def test_configured_logging_writes_json_without_the_secret(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json", ["sk-ant-super-secret-value"])
    try:
        structlog.get_logger("test").info("llm.failed", error="401 for key sk-ant-super-secret-value", message_id="m1")
        line = capsys.readouterr().err.strip().splitlines()[-1]
    finally:
        logging.getLogger().handlers.clear()
        structlog.reset_defaults()
    record = json.loads(line)
    assert "sk-ant-super-secret-value" not in line
    assert record["event"] == "llm.failed" and record["message_id"] == "m1" and MASK in record["error"]


def test_debug_logging_never_writes_raw_mail_or_wire_payloads(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("DEBUG", "json")
    try:
        raw = "Subject: my card\r\n\r\nPlease refund, my account secret is hunter2-raw-body"
        logging.getLogger("imapclient.imaplib").debug("< * 1 FETCH (BODY[] {%d}\r\n%s)", len(raw), raw)
        logging.getLogger("slack_sdk.web.async_base_client").debug("Sending a request - body: %s", raw)
        logging.getLogger("aiosqlite").debug("executing %r", raw)
        structlog.get_logger("test").debug("email.fetched", message_id="<m1@example.org>")
    finally:
        configure_logging("INFO", "json")
    err = capsys.readouterr().err
    assert "hunter2-raw-body" not in err
    assert "email.fetched" in err  # our own debug lines still appear


async def test_database_errors_never_carry_bound_values(sqlite_db: Database) -> None:
    card = "4111 1111 1111 1111"
    with pytest.raises(DBAPIError) as caught:
        async with sqlite_db.engine.begin() as conn:
            await conn.execute(text("INSERT INTO no_such_table (body) VALUES (:body)"), {"body": card})
    assert card not in str(caught.value) and "hidden" in str(caught.value)
