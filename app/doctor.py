"""`supportbot doctor`: check configuration and reachability, print what is missing, never a secret value."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse
from zoneinfo import ZoneInfo

import anthropic
from apscheduler.triggers.cron import CronTrigger

from app.build import knowledge_config, open_database
from app.settings import Settings, secret
from bot.store.db import safe_url
from knowledge.embedding import check_model
from knowledge.rerank import reranker_files


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    required: bool = True


async def _tcp(host: str, port: int) -> bool:
    timeout = 3.0
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


def _set(value: object) -> str:
    return "set" if value else "not set"


async def collect(settings: Settings) -> list[Check]:
    checks: list[Check] = []
    data_dir = settings.data_dir
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        writable = os.access(data_dir, os.W_OK)
    except OSError:
        writable = False
    checks.append(Check("DATA_DIR", writable, f"{data_dir.resolve()} {'writable' if writable else 'NOT writable'}"))
    db = open_database(settings)
    try:
        reachable = await db.ping()
    finally:
        await db.dispose()
    checks.append(
        Check(
            "DATABASE_URL",
            reachable,
            f"{safe_url(settings.resolved_database_url)} " + ("reachable" if reachable else "NOT reachable"),
        )
    )
    checks.append(_model_check(settings))
    checks.append(_reranker_check(settings))
    if settings.qdrant_url:
        checks.append(await _qdrant_check(settings))
    else:
        checks.append(Check("QDRANT_URL", True, f"not set: embedded Qdrant under {data_dir / 'qdrant'}", False))
    checks.append(await _anthropic_check(settings))
    checks += _schedule_checks(settings)
    for path in settings.knowledge_paths:
        exists = Path(path).exists()  # noqa: ASYNC240  (a stat per configured folder, once, in a CLI command)
        checks.append(Check("KNOWLEDGE_PATHS", exists, f"{path} " + ("exists" if exists else "does NOT exist")))
    if settings.slack_bot_token:
        mode = "Socket Mode" if settings.slack_app_token else "HTTP events at /slack/events"
        ok = settings.slack_enabled
        checks.append(
            Check(
                "SLACK",
                ok,
                f"bot token set, {mode}"
                if ok
                else "SLACK_BOT_TOKEN set but neither SLACK_APP_TOKEN nor SLACK_SIGNING_SECRET",
            )
        )
        agents = len(settings.slack_agent_users)
        checks.append(
            Check(
                "SLACK_AGENT_USERS",
                agents > 0,
                f"{agents} agent(s) may claim, resolve and act for others"
                if agents
                else "empty: nobody can claim or resolve a case (set the agents' Slack user ids)",
                False,
            )
        )
    else:
        checks.append(Check("SLACK", True, "off (SLACK_BOT_TOKEN not set)", False))
    if settings.imap_host or settings.smtp_host or settings.support_address:
        missing = [
            n
            for n, v in (
                ("IMAP_HOST", settings.imap_host),
                ("SMTP_HOST", settings.smtp_host),
                ("SUPPORT_ADDRESS", settings.support_address),
            )
            if not v
        ]
        checks.append(
            Check("EMAIL settings", not missing, "complete" if not missing else f"missing {', '.join(missing)}")
        )
        if settings.imap_host:
            ok = await _tcp(settings.imap_host, settings.imap_port)
            checks.append(
                Check(
                    "IMAP",
                    ok,
                    f"{settings.imap_host}:{settings.imap_port} ({settings.imap_security}) "
                    + ("reachable" if ok else "NOT reachable")
                    + f", password {_set(settings.imap_password)}",
                )
            )
        if settings.smtp_host:
            ok = await _tcp(settings.smtp_host, settings.smtp_port)
            checks.append(
                Check(
                    "SMTP",
                    ok,
                    f"{settings.smtp_host}:{settings.smtp_port} ({settings.smtp_security}) "
                    + ("reachable" if ok else "NOT reachable"),
                )
            )
    else:
        checks.append(Check("EMAIL", True, "off (IMAP_HOST, SMTP_HOST, SUPPORT_ADDRESS not set)", False))
    checks.append(_ticket_check(settings))
    checks.append(
        Check(
            "API_KEYS",
            True,
            f"{len(settings.api_keys)} key(s)" if settings.api_keys else "none: POST /api/ask refuses every request",
            False,
        )
    )
    checks.append(
        Check(
            "CONSOLE",
            True,
            f"on at /console: {len(settings.admin_keys)} admin, {len(settings.reviewer_keys)} reviewer key(s)"
            if settings.admin_keys
            else "off (ADMIN_KEYS not set)",
            False,
        )
    )
    return checks


async def _qdrant_check(settings: Settings) -> Check:
    parsed = urlparse(settings.qdrant_url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return Check("QDRANT_URL", False, "not a URL: use http://HOST:6333 (or https://...)")
    port = parsed.port or (443 if parsed.scheme == "https" else 6333)
    ok = await _tcp(parsed.hostname, port)
    where = f"{parsed.scheme}://{parsed.hostname}:{port}"
    state = "reachable" if ok else "NOT reachable: start Qdrant there or unset QDRANT_URL for the embedded store"
    return Check("QDRANT_URL", ok, f"{where} {state}, api key {_set(settings.qdrant_api_key)}")


async def _anthropic_check(settings: Settings) -> Check:
    """One cheap authenticated call (list one model), so a rejected or unreachable key shows here, not in the
    first customer's answer."""
    key = secret(settings.anthropic_api_key)
    if not key:
        return Check("ANTHROPIC_API_KEY", True, "not set: extractive answers only", False)
    client = anthropic.AsyncAnthropic(
        api_key=key, base_url=settings.anthropic_base_url or None, max_retries=0, timeout=10.0
    )
    try:
        await client.models.list(limit=1)
    except anthropic.AuthenticationError:
        return Check("ANTHROPIC_API_KEY", False, "rejected by the API (401): check the key")
    except anthropic.PermissionDeniedError:
        return Check("ANTHROPIC_API_KEY", False, "not allowed to use the API (403): check the key's workspace")
    except anthropic.APIConnectionError:
        where = settings.anthropic_base_url or "the Anthropic API"
        return Check("ANTHROPIC_API_KEY", False, f"set, but {where} is NOT reachable")
    except anthropic.APIStatusError as exc:
        return Check("ANTHROPIC_API_KEY", False, f"set, but the API answered HTTP {exc.status_code}")
    finally:
        await client.close()
    return Check("ANTHROPIC_API_KEY", True, f"accepted; answers by {settings.anthropic_model}")


def _schedule_checks(settings: Settings) -> list[Check]:
    checks = []
    for name, cron in (
        ("REPORT_SCHEDULE", settings.report_schedule),
        ("GAPS_SCHEDULE", settings.gaps_schedule),
        ("KB_SYNC_SCHEDULE", settings.kb_sync_schedule),
    ):
        try:
            CronTrigger.from_crontab(cron, timezone=ZoneInfo(settings.timezone))
        except ValueError as exc:
            checks.append(Check(name, False, f"{cron!r} is not a crontab ({exc}); e.g. '0 9 * * mon'"))
        else:
            checks.append(Check(name, True, f"{cron} ({settings.timezone})"))
    return checks


def _model_check(settings: Settings) -> Check:
    try:
        detail = check_model(knowledge_config(settings))
    except Exception as exc:
        return Check("EMBEDDING_MODEL", False, str(exc))
    return Check("EMBEDDING_MODEL", True, detail)


def _reranker_check(settings: Settings) -> Check:
    if settings.rerank_depth <= 0:
        return Check("RERANK_DEPTH", True, "0: no reranking (the confidence uses its retrieval-only model)", False)
    try:
        folder = reranker_files()
    except Exception as exc:
        return Check("RERANK_DEPTH", False, str(exc))
    detail = f"{settings.rerank_depth}: ms-marco-MiniLM-L-12 cross-encoder (offline) in {folder}"
    return Check("RERANK_DEPTH", True, detail)


def _ticket_check(settings: Settings) -> Check:
    needs = {
        "internal": [],
        "webhook": [
            ("TICKET_WEBHOOK_URL", settings.ticket_webhook_url),
            ("TICKET_WEBHOOK_SECRET", settings.ticket_webhook_secret),
        ],
        "zendesk": [
            ("ZENDESK_URL", settings.zendesk_url),
            ("ZENDESK_EMAIL", settings.zendesk_email),
            ("ZENDESK_API_TOKEN", settings.zendesk_api_token),
        ],
        "jira": [
            ("JIRA_URL", settings.jira_url),
            ("JIRA_EMAIL", settings.jira_email),
            ("JIRA_API_TOKEN", settings.jira_api_token),
            ("JIRA_PROJECT", settings.jira_project),
        ],
    }[settings.ticket_backend]
    missing = [name for name, value in needs if not value]
    detail = settings.ticket_backend + (f": missing {', '.join(missing)}" if missing else "")
    return Check("TICKET_BACKEND", not missing, detail)


async def run_doctor(settings: Settings) -> int:
    checks = await collect(settings)
    for check in checks:
        mark = "ok  " if check.ok else ("FAIL" if check.required else "warn")
        print(f"[{mark}] {check.name}: {check.detail}")
    failed = [c for c in checks if not c.ok and c.required]
    print("all required checks passed" if not failed else f"{len(failed)} check(s) failed")
    return 0 if not failed else 1
