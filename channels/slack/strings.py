"""Every sentence the Slack channel itself shows people (what the core says lives in bot/strings.py)."""

SOURCES = "Sources"
LOW_CONFIDENCE = ":warning: I'm not fully sure this answers your question. Please check the sources."
TRUNCATED = "_(answer shortened to fit in Slack)_"
