"""What the Slack channel needs to know, as one frozen value the composition root builds from its settings.

The channel reads nothing else (no settings object, no environment), so it is built the same way in production,
in tests and in the bench. Secrets are plain strings here and never shown by `repr()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_API_URL = "https://slack.com/api/"


@dataclass(frozen=True, slots=True)
class SlackConfig:
    """The Slack channel's configuration (env var in brackets; the root maps them)."""

    bot_token: str = field(default="", repr=False)  # SLACK_BOT_TOKEN
    app_token: str = field(default="", repr=False)  # SLACK_APP_TOKEN: set = Socket Mode, else HTTP events
    signing_secret: str = field(default="", repr=False)  # SLACK_SIGNING_SECRET (HTTP events)
    api_url: str = DEFAULT_API_URL  # SLACK_API_URL
    escalation_channel: str = ""  # SLACK_ESCALATION_CHANNEL: the agents' channel (Claim / Resolve live there)
    report_channel: str = ""  # SLACK_REPORT_CHANNEL
    allowed_channels: frozenset[str] = frozenset()  # SLACK_ALLOWED_CHANNELS; empty: every channel the bot is in
    top_level_channels: frozenset[str] = frozenset()  # SLACK_TOP_LEVEL_CHANNELS: every top-level message answered
    no_followup_channels: frozenset[str] = frozenset()  # SLACK_NO_FOLLOWUP_CHANNELS: follow-ups need a mention
    allowed_bots: frozenset[str] = frozenset()  # SLACK_ALLOWED_BOTS: bot ids whose messages are answered
    agent_users: frozenset[str] = frozenset()  # SLACK_AGENT_USERS: claim, resolve, take a thread; empty: nobody
    link_domains: frozenset[str] = frozenset()  # SLACK_LINK_DOMAINS: help-centre hosts answers may link to

    @property
    def socket_mode(self) -> bool:
        return bool(self.app_token)
