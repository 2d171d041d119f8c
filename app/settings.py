"""Settings from the environment (and an optional `.env`), with the ecosystem's usual variable names.

Field names map to upper-case variables: `slack_bot_token` is `SLACK_BOT_TOKEN`. Secrets are `SecretStr`, so
they never print. A channel is on when its settings are present. `load_settings()` turns a validation error
into one `ConfigError` line that names the variable and what to fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger
from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.confidence import ABSTAIN_THRESHOLD, LOW_CONFIDENCE_THRESHOLD
from bot.errors import ConfigError

Security = Literal["ssl", "starttls", "none"]
CommaList = Annotated[list[str], NoDecode]
MIN_KEY_LENGTH = 16  # API and admin keys: long enough that guessing (10 tries a minute per address) is hopeless


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True)

    # --- service ---
    data_dir: Path = Path("./var")
    database_url: str = ""  # default: sqlite under DATA_DIR
    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=0, le=65535)
    metrics_port: int = Field(0, ge=0, le=65535)  # >0: /metrics on its own listener (not the public port)
    http_max_connections: int = Field(512, ge=1)  # open at once on the public port; beyond: 503 and closed
    http_header_timeout_seconds: float = Field(10.0, gt=0)  # a request head must arrive within this
    http_body_timeout_seconds: float = Field(30.0, gt=0)  # and its body within this after the head
    metrics_host: str = ""  # where that listener binds (default: HTTP_HOST)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"
    shutdown_grace_seconds: float = Field(5.0, ge=0)
    api_keys: CommaList = []
    admin_keys: CommaList = []  # bearer keys for /api/admin/* (ingest, sync); also the console's admin logins
    reviewer_keys: CommaList = []  # console logins that may read and mark verdicts, not replay or see the audit log
    api_rate_limit_per_minute: int = Field(60, ge=1)
    max_question_chars: int = Field(4000, ge=1)
    processing_lease_seconds: float = Field(120.0, gt=0)  # a crashed replica's message is retried after this
    retention_days: int = Field(180, ge=0)  # message bodies and traces older than this are blanked (0: keep)

    # --- knowledge ---
    knowledge_paths: CommaList = []
    embedding_model: str = "sentence-transformers/all-MiniLM-L6-v2"
    embedding_batch_size: int = Field(8, ge=1)
    qdrant_url: str = ""
    qdrant_api_key: SecretStr | None = None
    qdrant_collection: str = "supportbot"
    retrieval_top_k: int = Field(5, ge=1, le=50)
    rerank_depth: int = Field(20, ge=0, le=100)  # fused candidates the cross-encoder reorders; 0 turns it off
    knowledge_base_url: str = ""  # public help-centre root: citations link to pages below it (never a file path)
    knowledge_include_community: bool = False  # answer from community/forum tips too (cited as community tips)
    knowledge_trusted_domains: CommaList = []  # hosts a KB page may send people to log in (+ KNOWLEDGE_BASE_URL's)
    hybrid_fusion: Literal["score", "rrf"] = "score"  # weighted sum of normalised scores, or weighted RRF
    hybrid_dense_weight: float = Field(0.4, ge=0)  # weight of the dense (embedding) list; fit with `eval fit`
    hybrid_sparse_weight: float = Field(0.6, ge=0)  # weight of the sparse (BM25) list
    hybrid_rrf_k: int = Field(60, ge=1)  # k of RRF (HYBRID_FUSION=rrf)
    abstain_threshold: float = Field(ABSTAIN_THRESHOLD, ge=0, le=1)  # below it the bot says it doesn't know
    low_confidence_threshold: float = Field(LOW_CONFIDENCE_THRESHOLD, ge=0, le=1)  # below it: flagged + ticket offer
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str = ""
    anthropic_model: str = "claude-sonnet-4-5"
    anthropic_max_tokens: int = Field(1024, ge=1)
    anthropic_timeout_seconds: float = Field(30.0, gt=0)
    anthropic_max_retries: int = Field(2, ge=0)
    llm_breaker_failures: int = Field(5, ge=1)
    llm_breaker_reset_seconds: float = Field(60.0, gt=0)
    llm_input_cost_per_mtok: float = Field(3.0, ge=0)
    llm_output_cost_per_mtok: float = Field(15.0, ge=0)
    llm_daily_budget_usd: float = Field(50.0, ge=0)

    # --- slack ---
    slack_bot_token: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    slack_escalation_channel: str = ""
    slack_report_channel: str = ""
    slack_allowed_channels: CommaList = []  # empty: every channel the bot is in
    slack_top_level_channels: CommaList = []  # channels where every top-level message is answered, not only mentions
    slack_no_followup_channels: CommaList = []  # channels where thread follow-ups need a new mention
    slack_allowed_bots: CommaList = []  # bot ids whose messages are answered (others are ignored)
    slack_agent_users: CommaList = []  # user ids who may confirm for others, claim and resolve (empty: nobody)
    slack_link_domains: CommaList = []  # hosts answers may link to on Slack (besides the cited sources)

    # --- email ---
    imap_host: str = ""
    imap_port: int = Field(993, ge=1, le=65535)
    imap_user: str = ""
    imap_password: SecretStr | None = None
    imap_security: Security = "ssl"
    imap_folder: str = "INBOX"
    imap_done_action: Literal["seen", "move"] = "seen"
    imap_done_folder: str = "Processed"
    imap_quarantine_folder: str = "Quarantine"
    imap_sent_folder: str = ""  # "": the folder flagged \Sent (SPECIAL-USE), else "Sent" (created if missing)
    imap_save_sent: bool = True  # APPEND each reply there; off when the SMTP server files sent mail itself
    imap_idle: bool = True
    imap_poll_seconds: float = Field(30.0, gt=0)
    smtp_host: str = ""
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_user: str = ""
    smtp_password: SecretStr | None = None
    smtp_security: Security = "starttls"
    support_address: str = ""
    email_bot_addresses: CommaList = []  # other addresses of ours, never answered
    email_max_bytes: int = Field(10_000_000, ge=1024)
    email_replies_per_sender_per_hour: int = Field(5, ge=1)
    email_replies_per_recipient_per_hour: int = Field(5, ge=1)  # answers to one address (From or aligned Reply-To)
    email_replies_per_hour: int = Field(500, ge=1)  # answers by email in all, per hour: a brake on abuse
    email_fetch_batch_bytes: int = Field(20_000_000, ge=1024)  # message bytes per IMAP fetch (at least one message)
    email_parse_timeout_seconds: float = Field(20.0, gt=0)  # a mail whose parse takes longer is quarantined

    # --- escalation ---
    ticket_backend: Literal["internal", "webhook", "zendesk", "jira"] = "internal"
    confirmation_ttl_minutes: int = Field(60 * 24, ge=1)
    ticket_webhook_url: str = ""
    ticket_webhook_secret: SecretStr | None = None
    zendesk_url: str = ""
    zendesk_email: str = ""
    zendesk_api_token: SecretStr | None = None
    jira_url: str = ""
    jira_email: str = ""
    jira_api_token: SecretStr | None = None
    jira_project: str = ""
    jira_issue_type: str = "Task"
    handoff_sla_minutes: int = Field(240, ge=1)  # an unclaimed hand-off older than this is late (backlog digest)
    escalation_email: CommaList = []  # where the backlog digest is mailed too (besides SLACK_ESCALATION_CHANNEL)

    # --- scheduler ---
    timezone: str = "UTC"
    report_schedule: str = "0 9 * * mon"
    # REPORT_EMAIL (REPORT_EMAIL_TO, its earlier name, still works): managers who get the weekly report by email
    report_email: CommaList = Field([], validation_alias=AliasChoices("report_email", "report_email_to"))
    gaps_schedule: str = "0 8 * * *"
    backlog_schedule: str = "0 8 * * *"
    kb_sync_schedule: str = "*/30 * * * *"
    outbox_flush_seconds: float = Field(5.0, gt=0)
    leader_lease_seconds: float = Field(30.0, gt=0)
    misfire_grace_seconds: int = Field(3600, ge=1)
    job_max_attempts: int = Field(4, ge=1)  # a failed job period is retried up to this many attempts in all
    job_retry_backoff_seconds: Annotated[list[float], NoDecode] = [60.0, 300.0, 900.0]  # wait before each retry

    _split = field_validator(
        "api_keys",
        "admin_keys",
        "reviewer_keys",
        "knowledge_paths",
        "slack_allowed_channels",
        "slack_top_level_channels",
        "slack_no_followup_channels",
        "slack_allowed_bots",
        "slack_agent_users",
        "slack_link_domains",
        "email_bot_addresses",
        "report_email",
        "escalation_email",
        mode="before",
    )(_split_commas)

    @field_validator(
        "qdrant_api_key",
        "anthropic_api_key",
        "slack_bot_token",
        "slack_app_token",
        "slack_signing_secret",
        "imap_password",
        "smtp_password",
        "ticket_webhook_secret",
        "zendesk_api_token",
        "jira_api_token",
        mode="before",
    )
    @classmethod
    def _blank_secret_is_unset(cls, value: Any) -> Any:
        """`SLACK_BOT_TOKEN=` in a .env means "not set", not "set to nothing" (which would turn a channel on)."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if value and not value.startswith(("sqlite", "postgresql", "postgres")):
            raise ValueError("use sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DB")
        return value

    @field_validator("api_keys", "admin_keys", "reviewer_keys")
    @classmethod
    def _long_keys(cls, keys: list[str]) -> list[str]:
        short = [k for k in keys if len(k) < MIN_KEY_LENGTH]
        if short:
            raise ValueError(
                f"{len(short)} key(s) shorter than {MIN_KEY_LENGTH} characters; use e.g. "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        return keys

    @field_validator("job_retry_backoff_seconds", mode="before")
    @classmethod
    def _seconds_list(cls, value: Any) -> Any:
        return [float(part) for part in _split_commas(value)] if isinstance(value, str) else value

    @field_validator("report_schedule", "gaps_schedule", "kb_sync_schedule", "backlog_schedule")
    @classmethod
    def _crontab(cls, value: str) -> str:
        try:
            CronTrigger.from_crontab(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a crontab ({exc}); e.g. '0 9 * * mon'") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name like Europe/Berlin") from None
        return value

    @property
    def resolved_database_url(self) -> str:
        """The async SQLAlchemy URL: DATABASE_URL, or SQLite under DATA_DIR."""
        url = self.database_url
        if not url:
            return f"sqlite+aiosqlite:///{(self.data_dir / 'supportbot.db').resolve()}"
        if url.startswith("postgres://"):
            url = "postgresql://" + url.removeprefix("postgres://")
        if url.startswith("postgresql://"):
            url = "postgresql+asyncpg://" + url.removeprefix("postgresql://")
        if url.startswith("sqlite:///"):
            url = "sqlite+aiosqlite:///" + url.removeprefix("sqlite:///")
        return url

    @property
    def slack_enabled(self) -> bool:
        return self.slack_bot_token is not None and (
            self.slack_app_token is not None or self.slack_signing_secret is not None
        )

    @property
    def email_enabled(self) -> bool:
        return bool(self.imap_host and self.smtp_host and self.support_address)


def load_settings(**overrides: Any) -> Settings:
    """Read settings, or raise `ConfigError` with one line per bad variable (values never echoed)."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]).upper() or "settings"
            problems.append(f"{name}: {error['msg']}")
        raise ConfigError("bad configuration: " + "; ".join(problems)) from None


def secret(value: SecretStr | None) -> str:
    """The plain value of an optional secret, or ''."""
    return value.get_secret_value() if value is not None else ""
