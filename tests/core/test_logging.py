"""The log redactor: secrets never reach a log line, by key name or by value."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from bot.logging import MASK, Redactor, configure_logging


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
