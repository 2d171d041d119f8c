"""What the email channel says around the core's text (the core's own sentences are in bot/strings.py)."""

DEFAULT_SUBJECT = "Re: your message to support"
SOURCES = "Sources:"
LOW_CONFIDENCE = "I'm not fully sure this answers your question. If it doesn't, reply and tell me more."
CONFIRM_TICKET = 'Reply "yes" to this email to open a ticket.'
TALK_TO_PERSON = 'Reply "talk to a person" to this email to reach our support team.'
FOOTER = "This answer was written automatically by our support assistant."
