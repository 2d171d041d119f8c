"""What every `supportbot` process sets up first, kept light: the CLI imports this before it knows which command
runs, so `--help` and a bad setting answer in about a second, without loading the service graph."""

from __future__ import annotations

import os
from pathlib import Path

from app.settings import Settings, secret
from bot.logging import configure_logging


def offline_environment() -> None:
    """No library may reach a model hub at run time: the default model ships inside a package."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(name, "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "false")


def setup_logging(settings: Settings) -> None:
    values = [
        secret(s)
        for s in (
            settings.anthropic_api_key,
            settings.slack_bot_token,
            settings.slack_app_token,
            settings.slack_signing_secret,
            settings.imap_password,
            settings.smtp_password,
            settings.qdrant_api_key,
            settings.ticket_webhook_secret,
            settings.zendesk_api_token,
            settings.jira_api_token,
        )
    ]
    configure_logging(
        settings.log_level,
        settings.log_format,
        [*values, *settings.api_keys, *settings.admin_keys, *settings.reviewer_keys],
    )


def local_key_path(data_dir: Path) -> Path:
    """Where the running service leaves the key local tools (`supportbot ask`, `ingest`) call it with."""
    return data_dir / "local-api.key"
