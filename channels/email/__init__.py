"""The email channel: an IMAP poller (imapclient, IDLE or polling), MIME parsing, reply trimming, loop and
auto-reply hygiene, and an SMTP sender (aiosmtplib). Adapters only translate: email -> InboundMessage through
the inquiry pipeline, Reply -> email through the outbox."""

from channels.email.channel import EmailChannel
from channels.email.classify import Classification, Verdict, classify
from channels.email.config import EmailConfig
from channels.email.parsing import ParsedEmail, UnparseableEmail, parse_email
from channels.email.poller import PollerPorts
from channels.email.render import build_reply, reply_message_id
from channels.email.sender import EmailSender
from channels.email.trimming import trim_reply

__all__ = [
    "Classification",
    "EmailChannel",
    "EmailConfig",
    "EmailSender",
    "ParsedEmail",
    "PollerPorts",
    "UnparseableEmail",
    "Verdict",
    "build_reply",
    "classify",
    "parse_email",
    "reply_message_id",
    "trim_reply",
]
