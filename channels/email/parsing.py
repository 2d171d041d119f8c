"""MIME parsing: raw RFC 5322 bytes -> `ParsedEmail`, tolerant of what real mail clients send.

The standard library's `email` with the modern policy does the structure and RFC 2047 headers. Around it:
charset fallbacks (missing, unknown or wrong charsets: declared Latin-1 that is really UTF-8 is read as UTF-8),
a raw-header fallback when a header is too malformed for the modern policy, HTML-only mail turned into text
with html2text (it keeps blockquotes as "> " lines, which the reply trimmer understands; inscriptis drops them),
attachments listed by name but never processed, and a cap on body size. A message that still cannot be read
raises `UnparseableEmail`, and the poller quarantines it.
"""

from __future__ import annotations

import email
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.utils import getaddresses, parseaddr

import html2text

from bot.messages import frozen_map
from channels.email.trimming import trim_reply

MAX_BODY_CHARS = 200_000
# Headers the classifier reads (lower-case); kept decoded on the parsed value.
HYGIENE_HEADERS = (
    "auto-submitted",
    "x-autoreply",
    "x-autorespond",
    "x-auto-response-suppress",
    "precedence",
    "list-id",
    "list-unsubscribe",
    "list-post",
    "return-path",
    "x-failed-recipients",
    "content-type",
)
_MSGID = re.compile(r"<[^<>\s]+>")


class UnparseableEmail(Exception):
    """The bytes are not a usable email (no headers, no sender); the poller quarantines it."""


@dataclass(frozen=True, slots=True)
class ParsedEmail:
    """What the email channel needs from one message; ids are canonical `<local@domain>` strings."""

    message_id: str
    synthetic_id: bool  # the message had no usable Message-ID; this one is derived from its bytes
    sender: str  # lower-case addr-spec of From
    sender_name: str
    reply_to: str
    to: tuple[str, ...]
    subject: str
    in_reply_to: str
    references: tuple[str, ...]
    body: str  # the whole plain-text body
    visible: str  # the body without quoted replies and signature
    html_only: bool
    attachments: tuple[str, ...]
    headers: Mapping[str, str] = field(default_factory=frozen_map)

    @property
    def thread_ids(self) -> tuple[str, ...]:
        """Ids this message answers, nearest first (In-Reply-To, then References newest to oldest)."""
        ids = [self.in_reply_to] if self.in_reply_to else []
        ids += [r for r in reversed(self.references) if r not in ids]
        return tuple(ids)


def parse_email(raw: bytes) -> ParsedEmail:
    """Parse one message; raises `UnparseableEmail` when it has no headers or no sender address."""
    try:
        msg = email.message_from_bytes(raw, policy=policy.default)
    except Exception as exc:  # the parser is lenient; this is truly broken input
        raise UnparseableEmail(f"parser failed: {type(exc).__name__}") from exc
    assert isinstance(msg, EmailMessage)
    if not msg.keys():
        raise UnparseableEmail("no headers")
    sender_name, sender = parseaddr(header(msg, "from"))
    sender = sender.strip().lower()
    if "@" not in sender:
        raise UnparseableEmail("no sender address")
    body, html_only = _body(msg)
    ids = _msgids(header(msg, "message-id"))
    message_id, synthetic = (ids[0], False) if ids else (synthetic_message_id(raw), True)
    return ParsedEmail(
        message_id=message_id,
        synthetic_id=synthetic,
        sender=sender,
        sender_name=sender_name,
        reply_to=parseaddr(header(msg, "reply-to"))[1].strip().lower(),
        to=tuple(addr.lower() for _, addr in getaddresses([header(msg, "to"), header(msg, "cc")]) if addr),
        subject=" ".join(header(msg, "subject").split()),
        in_reply_to=next(iter(_msgids(header(msg, "in-reply-to"))), ""),
        references=tuple(_msgids(header(msg, "references"))),
        body=body,
        visible=trim_reply(body),
        html_only=html_only,
        attachments=_attachments(msg),
        headers=frozen_map({name: header(msg, name) for name in HYGIENE_HEADERS if name in msg}),
    )


def synthetic_message_id(raw: bytes) -> str:
    """A stable id for a message without one: derived from its bytes, so it survives a UIDVALIDITY change."""
    return f"<sha256-{hashlib.sha256(raw).hexdigest()[:40]}@synthetic.invalid>"


def header(msg: Message, name: str) -> str:
    """A header as text; if the modern policy cannot parse it, the raw value decoded leniently (RFC 2047)."""
    if name not in msg:
        return ""
    try:
        return str(msg[name] or "")
    except Exception:
        raw = next((str(v) for k, v in msg.raw_items() if k.lower() == name), "")
        try:
            return str(make_header(decode_header(raw)))
        except Exception:
            return raw


def _msgids(value: str) -> list[str]:
    found = _MSGID.findall(value)
    if not found and value.strip() and " " not in value.strip():
        found = [f"<{value.strip().strip('<>')}>"]  # a bare id without brackets
    return found


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Bytes to text: the declared charset when it is right, UTF-8 when it fits, else Windows-1252/Latin-1."""
    declared = (charset or "").strip().strip('"').lower()
    candidates: list[str] = []
    if declared in ("", "us-ascii", "ascii", "iso-8859-1", "latin-1", "latin1", "windows-1252", "cp1252"):
        candidates = ["utf-8"]  # mislabelled UTF-8 is far more common than Latin-1 that happens to be valid UTF-8
    candidates += [declared] if declared else []
    candidates += ["utf-8", "cp1252"]
    for name in candidates:
        try:
            return data.decode(name)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("latin-1")


def _part_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return decode_bytes(payload, part.get_content_charset())
    raw = part.get_payload()
    return raw if isinstance(raw, str) else ""


def html_to_text(html: str) -> str:
    """Readable text from an HTML body: no images, no emphasis marks, links kept, no hard wrapping."""
    converter = html2text.HTML2Text()
    converter.body_width = 0
    converter.ignore_images = True
    converter.ignore_emphasis = True
    converter.ignore_tables = True
    converter.ignore_mailto_links = True
    return str(converter.handle(html)).strip()


def _body(msg: EmailMessage) -> tuple[str, bool]:
    plain = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    text = _part_text(plain).strip() if plain is not None else ""
    html_only = False
    if not text and html is not None:
        text, html_only = html_to_text(_part_text(html)), True
    if not text and not msg.is_multipart() and msg.get_content_maintype() == "text":
        text = _part_text(msg).strip()
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text[:MAX_BODY_CHARS], html_only


def _attachments(msg: EmailMessage) -> tuple[str, ...]:
    names: list[str] = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        filename = part.get_filename()
        if filename or part.get_content_disposition() == "attachment":
            names.append(" ".join(str(filename or "unnamed").split()))
    return tuple(names)
