"""MIME parsing: raw RFC 5322 bytes -> `ParsedEmail`, tolerant of what real mail clients send.

The standard library's `email` with the modern policy does the structure and RFC 2047 headers. Around it:
charset fallbacks (missing, unknown or wrong charsets: declared Latin-1 that is really UTF-8 is read as UTF-8),
a raw-header fallback when a header is too malformed for the modern policy, HTML-only mail turned into text
with html2text (it keeps blockquotes as "> " lines, which the reply trimmer understands; inscriptis drops them),
attachments listed by name but never processed, and a cap on body size. A message that still cannot be read
raises `UnparseableEmail`, and the poller quarantines it.

Hostile input is bounded before the expensive steps (the poller runs this in a worker process with a timeout
on top): the header section, the number of MIME parts, the number of addresses read from To/Cc, the HTML fed
to html2text and the text fed to the trimmer. From and Reply-To are read as structured headers
(`email.headerregistry`): exactly one address, no line breaks in the display name, or the message is refused;
a Reply-To is kept only when it is aligned with From (same address or same organisational domain), so nobody
can make us mail a third party.
"""

from __future__ import annotations

import email
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from email import policy
from email.header import decode_header, make_header
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.utils import getaddresses

import html2text
from bs4 import BeautifulSoup, Tag

from channels.email.trimming import trim_reply

MAX_BODY_CHARS = 200_000
MAX_HEADER_BYTES = 64 * 1024  # the header section once address lists are cut to MAX_ADDRESSES
MAX_PARTS = 200  # MIME parts (boundary lines); the stdlib parser is slow on tens of thousands
MAX_BOUNDARIES = 20  # nested multiparts
MAX_ADDRESSES = 100  # To/Cc addresses read (the rest is ignored)
MAX_HTML_CHARS = 1_000_000  # HTML handed to html2text
MAX_IDS = 50  # Message-IDs read from References
MAX_ADDRESS_HEADER_CHARS = 2000  # a From/Reply-To longer than this is not one person's address
_ANGLE_ADDR = re.compile(r"<([^<>\s@\"]+@[^<>\s@\"]+)>")
_BOUNDARY = re.compile(rb'boundary\s*=\s*"?([^"\s;]{1,200})', re.IGNORECASE)
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
ADDRESS_LIST_HEADERS = frozenset({b"to", b"cc", b"bcc", b"resent-to", b"resent-cc", b"resent-bcc"})
_FIELD_START = re.compile(rb"\r?\n(?=[^ \t\r\n])")  # a line that does not continue the previous field
_LIST_SPECIAL = re.compile(rb'[",()\\]')  # a comma separates addresses unless a quoted string or comment hides it


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
    headers: Mapping[str, str] = field(default_factory=dict)  # a plain dict: the value crosses a process boundary

    @property
    def thread_ids(self) -> tuple[str, ...]:
        """Ids this message answers, nearest first (In-Reply-To, then References newest to oldest)."""
        ids = [self.in_reply_to] if self.in_reply_to else []
        ids += [r for r in reversed(self.references) if r not in ids]
        return tuple(ids)


def parse_email(raw: bytes) -> ParsedEmail:
    """Parse one message; raises `UnparseableEmail` when it has no headers, no single sender address, or is
    larger than the caps allow in its headers or MIME structure."""
    raw = cap_address_lists(raw)
    check_bounds(raw)
    try:
        msg = email.message_from_bytes(raw, policy=policy.default)
    except Exception as exc:  # the parser is lenient; this is truly broken input
        raise UnparseableEmail(f"parser failed: {type(exc).__name__}") from exc
    assert isinstance(msg, EmailMessage)
    if not msg.keys():
        raise UnparseableEmail("no headers")
    sender_name, sender = sender_of(msg)
    reply_to = _reply_to(msg, sender)
    body, html_only = _body(msg)
    ids = _msgids(header(msg, "message-id"))
    message_id, synthetic = (ids[0], False) if ids else (synthetic_message_id(raw), True)
    return ParsedEmail(
        message_id=message_id,
        synthetic_id=synthetic,
        sender=sender,
        sender_name=sender_name,
        reply_to=reply_to,
        to=_recipients(msg),
        subject=" ".join(header(msg, "subject").split())[:998],
        in_reply_to=next(iter(_msgids(header(msg, "in-reply-to"))), ""),
        references=tuple(_msgids(header(msg, "references"))[-MAX_IDS:]),
        body=body,
        visible=trim_reply(body),
        html_only=html_only,
        attachments=_attachments(msg),
        headers={name: header(msg, name)[:1000] for name in HYGIENE_HEADERS if name in msg},
    )


def _head_end(raw: bytes) -> int:
    return min((i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0), default=len(raw))


def cap_address_lists(raw: bytes) -> bytes:
    """`raw` with each To/Cc/Bcc (and Resent-) list cut after its first `MAX_ADDRESSES` addresses, when the header
    section is over `MAX_HEADER_BYTES`: a legitimate sender's mail to 10,000 people is still answered (we reply
    to From alone), and the parser never sees the long lists. Linear: one split of the header section, and each
    list read only up to its MAX_ADDRESSES-th separating comma."""
    end = _head_end(raw)
    if end <= MAX_HEADER_BYTES:
        return raw
    fields = _FIELD_START.split(raw[:end])
    for n, value in enumerate(fields):
        name, colon, _rest = value.partition(b":")
        if colon and name.strip().lower() in ADDRESS_LIST_HEADERS:
            fields[n] = first_addresses(value, MAX_ADDRESSES)
    return b"\r\n".join(fields) + raw[end:]


def first_addresses(field: bytes, count: int) -> bytes:
    """The header field up to (not including) its `count`-th top-level comma: the first `count` addresses. One
    pass over the special characters only (quotes, parentheses, backslashes, commas), stopping at the cut."""
    field = field[: count * MAX_ADDRESS_HEADER_CHARS]  # however the list is written, this much is enough
    commas = depth = 0
    quoted = False
    escaped_at = -1  # a backslash escapes the character after it
    for special in _LIST_SPECIAL.finditer(field):
        char, at = special.group(), special.start()
        if at == escaped_at:
            continue
        if char == b"\\":
            escaped_at = at + 1
        elif char == b'"' and not depth:
            quoted = not quoted
        elif quoted:
            continue
        elif char == b"(":
            depth += 1
        elif char == b")":
            depth = max(depth - 1, 0)
        elif not depth:
            commas += 1
            if commas == count:
                return field[:at]
    return field


def check_bounds(raw: bytes) -> None:
    """Refuse input the parser would spend seconds on: an oversized header section, too many MIME parts."""
    if _head_end(raw) > MAX_HEADER_BYTES:
        raise UnparseableEmail(f"header section larger than {MAX_HEADER_BYTES} bytes")
    boundaries = set(_BOUNDARY.findall(raw))
    if len(boundaries) > MAX_BOUNDARIES:
        raise UnparseableEmail(f"more than {MAX_BOUNDARIES} nested multiparts")
    parts = sum(raw.count(b"\n--" + b) for b in boundaries)
    if parts > MAX_PARTS:
        raise UnparseableEmail(f"more than {MAX_PARTS} MIME parts")


def raw_header(msg: Message, name: str) -> list[str]:
    """Every raw value of header `name`, unparsed (the modern policy parses on access)."""
    return [str(v) for k, v in msg.raw_items() if k.lower() == name]


def single_address(msg: Message, name: str) -> Address:
    """The one mailbox in header `name` (From, Reply-To), read structurally; raises `UnparseableEmail` when the
    header is missing, repeated, holds more or less than one address, or hides a line break in its display name
    (an encoded `=?utf-8?q?x=0D=0ABcc:...?=` must not smuggle a second recipient)."""
    values = raw_header(msg, name)
    if len(values) != 1:
        raise UnparseableEmail(f"{len(values)} {name} headers")
    value = values[0]
    if len(value) > MAX_ADDRESS_HEADER_CHARS:
        raise UnparseableEmail(f"{name} header too long")
    try:
        parsed = policy.default.header_factory(name, value)
        addresses: tuple[Address, ...] = tuple(getattr(parsed, "addresses", ()))
    except Exception as exc:  # headerregistry refuses CR/LF in address parts with ValueError
        raise UnparseableEmail(f"unreadable {name}: {type(exc).__name__}") from exc
    if len(addresses) != 1:
        raise UnparseableEmail(f"{name} holds {len(addresses)} addresses")
    address = addresses[0]
    if not address.domain:  # a broken quote swallowed the address: take the one <addr> if there is exactly one
        angle = _ANGLE_ADDR.findall(value)
        if len(angle) != 1:
            raise UnparseableEmail(f"no usable {name} address")
        address = Address(addr_spec=angle[0])
    spec = address.addr_spec
    if any(c in address.display_name for c in "\r\n") or any(c in spec for c in "\r\n\t <>,;"):
        raise UnparseableEmail(f"{name} has a line break or separator in it")
    if not address.username or not address.domain or "." not in address.domain:
        raise UnparseableEmail(f"no usable {name} address")
    return address


def sender_of(msg: Message) -> tuple[str, str]:
    """(display name, lower-case address) of From."""
    address = single_address(msg, "from")
    return " ".join(address.display_name.split())[:200], address.addr_spec.lower()


def _reply_to(msg: Message, sender: str) -> str:
    """Reply-To when it is one clean address aligned with From, else "" (we answer From)."""
    if not raw_header(msg, "reply-to"):
        return ""
    try:
        candidate = single_address(msg, "reply-to").addr_spec.lower()
    except UnparseableEmail:
        return ""
    return candidate if aligned(candidate, sender) else ""


_SECOND_LEVEL = frozenset({"co", "com", "net", "org", "gov", "ac", "edu", "ne", "or", "go", "gv", "mil", "nom"})


def organisational_domain(address: str) -> str:
    """The registrable part of an address's domain: the last two labels, or three under a country's second
    level (`mail.shop.co.uk` -> `shop.co.uk`). A short rule instead of the Public Suffix List: it only has to
    keep strangers apart, and it errs on the side of "not aligned" for exotic suffixes."""
    labels = address.rpartition("@")[2].strip().strip(".").casefold().split(".")
    take = 3 if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVEL else 2
    return ".".join(labels[-take:])


def aligned(reply_to: str, sender: str) -> bool:
    """True when `reply_to` is `sender` or shares its organisational domain (a colleague, a helpdesk alias)."""
    a, b = reply_to.strip().casefold(), sender.strip().casefold()
    if not a or not b:
        return False
    return a == b or organisational_domain(a) == organisational_domain(b)


def _recipients(msg: Message) -> tuple[str, ...]:
    """The first `MAX_ADDRESSES` addresses of To and Cc (each raw value cut to that many before parsing)."""
    found: list[str] = []
    for value in [*raw_header(msg, "to"), *raw_header(msg, "cc")]:
        cut = first_addresses(value.encode("utf-8", "surrogateescape"), MAX_ADDRESSES)
        found += _addr_specs(cut.decode("utf-8", "surrogateescape"))
    return tuple(found[:MAX_ADDRESSES])


def _addr_specs(value: str) -> list[str]:
    try:
        return [addr.lower() for _, addr in getaddresses([value]) if addr]
    except Exception:  # a list too broken to read names nobody we would write to
        return []


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


_HIDING_STYLE = re.compile(
    r"(?:^|;)(?:display:none|visibility:hidden|(?:font-size|opacity):0(?:\.0*)?(?:px|pt|em|rem|%)?)(?:!important)?(?:;|$)"
)


def visible_html(html: str) -> str:
    """`html` without the elements a reader never sees (`hidden`, `display:none`, `visibility:hidden`, zero font
    size or opacity): text hidden from the customer's own view must not count as their words (a planted
    instruction, a disguised link)."""
    soup = BeautifulSoup(html, "html.parser")
    for element in soup.find_all(True):
        if not isinstance(element, Tag) or element.decomposed:
            continue
        style = "".join(str(element.get("style") or "").split()).casefold()
        if element.has_attr("hidden") or _HIDING_STYLE.search(style):
            element.decompose()
    return str(soup)


def html_to_text(html: str) -> str:
    """Readable text from the visible part of an HTML body: no images, no emphasis marks, links kept, no hard
    wrapping."""
    html = visible_html(html)
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
        text, html_only = html_to_text(_part_text(html)[:MAX_HTML_CHARS]), True
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
