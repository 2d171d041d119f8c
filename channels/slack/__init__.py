"""The Slack channel (slack-bolt, Socket Mode or HTTP events). The composition root builds a `SlackConfig` and calls
`build_slack_channel()` with the core's narrow ports."""

from channels.slack.channel import SlackChannel, build_slack_channel
from channels.slack.config import SlackConfig
from channels.slack.sender import SlackSender

__all__ = ["SlackChannel", "SlackConfig", "SlackSender", "build_slack_channel"]
