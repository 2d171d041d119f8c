"""The Slack channel (slack-bolt, Socket Mode or HTTP events). The composition root builds a `SlackConfig` and calls
`SlackChannel(config, intake=..., senders=..., threads=..., clock=...)` with the core's narrow ports."""

from channels.slack.channel import SlackChannel
from channels.slack.config import SlackConfig
from channels.slack.sender import SlackSender

__all__ = ["SlackChannel", "SlackConfig", "SlackSender"]
