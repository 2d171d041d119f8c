"""Which emails must not be answered: bounces, auto-replies, mailing lists, no-reply senders, our own mail.

Answering any of these starts mail loops or spams lists, so the rules follow RFC 3834 (`Auto-Submitted`), the
de-facto vendor headers (`X-Autoreply`, `X-Autorespond`, `X-Auto-Response-Suppress`, `Precedence`), RFC 2369/2919
list headers and RFC 3464 delivery reports, plus the sender address and, for autoresponders that set no header
at all, a short list of out-of-office subject prefixes.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Collection
from dataclasses import dataclass

from channels.email.parsing import ParsedEmail


class Verdict(enum.StrEnum):
    """What to do with an inbound email; every value but ANSWER is also the channel-event kind."""

    ANSWER = "answer"
    AUTO_REPLY = "auto_reply"
    LIST = "list"
    BOUNCE = "bounce"
    NO_REPLY = "no_reply"
    OWN_ADDRESS = "own_address"


@dataclass(frozen=True, slots=True)
class Classification:
    verdict: Verdict
    reason: str  # which rule decided, for the event log


_BOUNCE_SENDERS = re.compile(r"^(mailer-daemon|postmaster|mail-daemon|mailerdaemon)@", re.IGNORECASE)
_NO_REPLY = re.compile(r"^(no[-_.]?reply|do[-_.]?not[-_.]?reply|donotreply|noreply[-+.\w]*)@", re.IGNORECASE)
_AUTO_SUBJECT = re.compile(
    r"^\s*(automatic reply|auto(matische)?[- ]?(reply|antwort|response)|autoreply|out of (the )?office|"
    r"abwesenheitsnotiz|réponse automatique|respuesta automática|auto:|ooo\b)",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT = re.compile(
    r"^\s*(undeliverable:|delivery status notification|mail delivery failed|returned mail:|"
    r"undelivered mail returned to sender|failure notice)",
    re.IGNORECASE,
)


def classify(mail: ParsedEmail, own_addresses: Collection[str]) -> Classification:
    """Decide whether `mail` gets an answer; the first matching rule wins, own mail first."""
    h = {k: v.strip().lower() for k, v in mail.headers.items()}
    own = {a.strip().lower() for a in own_addresses if a.strip()}
    if mail.sender in own:
        return Classification(Verdict.OWN_ADDRESS, "from one of our addresses")
    content_type = h.get("content-type", "")
    if content_type.startswith("multipart/report") or "delivery-status" in content_type:
        return Classification(Verdict.BOUNCE, "multipart/report")
    if _BOUNCE_SENDERS.match(mail.sender):
        return Classification(Verdict.BOUNCE, "mailer-daemon sender")
    if h.get("return-path") in ("<>", ""):
        return Classification(Verdict.BOUNCE, "empty Return-Path")
    if "x-failed-recipients" in h or _BOUNCE_SUBJECT.match(mail.subject):
        return Classification(Verdict.BOUNCE, "bounce subject or X-Failed-Recipients")
    auto = h.get("auto-submitted", "")
    if auto and auto != "no":
        return Classification(Verdict.AUTO_REPLY, f"Auto-Submitted: {auto[:40]}")
    for name in ("x-autoreply", "x-autorespond", "x-auto-response-suppress"):
        if name in h:
            return Classification(Verdict.AUTO_REPLY, name)
    precedence = h.get("precedence", "")
    if precedence == "list":
        return Classification(Verdict.LIST, "Precedence: list")
    if precedence in ("bulk", "junk", "auto_reply"):
        return Classification(Verdict.AUTO_REPLY, f"Precedence: {precedence}")
    if "list-id" in h or "list-unsubscribe" in h or "list-post" in h:
        return Classification(Verdict.LIST, "list headers")
    if _NO_REPLY.match(mail.sender):
        return Classification(Verdict.NO_REPLY, "no-reply sender")
    if _AUTO_SUBJECT.match(mail.subject):
        return Classification(Verdict.AUTO_REPLY, "auto-reply subject")
    return Classification(Verdict.ANSWER, "")
