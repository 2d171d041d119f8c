"""The Slack channel (slack-bolt, Socket Mode or HTTP events); `app/build.py` calls `build_slack_channel()`."""

from channels.slack.channel import SlackChannel, build_slack_channel
from channels.slack.sender import SlackSender

__all__ = ["SlackChannel", "SlackSender", "build_slack_channel"]
