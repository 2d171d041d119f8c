"""What escalation needs from the configuration (built from `Settings` by the composition root)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Backend = Literal["internal", "webhook", "zendesk", "jira"]


@dataclass(frozen=True, slots=True)
class TicketBackendConfig:
    """`TICKET_BACKEND` and the settings of each backend (secrets as plain strings, "" when unset)."""

    kind: Backend = "internal"
    webhook_url: str = ""
    webhook_secret: str = ""
    zendesk_url: str = ""
    zendesk_email: str = ""
    zendesk_api_token: str = ""
    jira_url: str = ""
    jira_email: str = ""
    jira_api_token: str = ""
    jira_project: str = ""
    jira_issue_type: str = "Task"


@dataclass(frozen=True, slots=True)
class EscalationConfig:
    """Who may act for others (agents), where hand-offs are posted, the support address offers come from, and
    how long a proposed ticket waits for its confirmation."""

    agent_users: tuple[str, ...] = ()
    escalation_channel: str = ""  # the agents' Slack channel; "" = none configured
    support_address: str = ""
    confirmation_ttl_minutes: int = 60 * 24
    backend: TicketBackendConfig = TicketBackendConfig()
