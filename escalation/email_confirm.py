"""Confirming a ticket by email, safely.

The offer email's Message-ID is `<offer-{token}@{support domain}>` (`offer_message_id`). A reply confirms only
when (1) its In-Reply-To or References names that exact Message-ID, (2) it comes from the offer's requester,
and (3) its first line says yes. The token is 192 random bits, so it cannot be guessed, and the From check
means a forwarded offer cannot be confirmed by someone else.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from email.utils import parseaddr

from bot.offers import support_domain

YES = frozenset({"yes", "y", "yes please", "confirm", "confirmed", "ok", "okay", "yes confirm"})
_OFFER_ID = re.compile(r"<offer-([A-Za-z0-9_-]{16,128})@([^<>\s]+)>")


def offer_tokens(metadata: Mapping[str, str], support_address: str) -> list[str]:
    """Tokens of our offers that this message replies to (In-Reply-To first, then References, newest first)."""
    domain = support_domain(support_address)
    headers = [metadata.get("in_reply_to", ""), *reversed(metadata.get("references", "").split())]
    tokens: list[str] = []
    for header in headers:
        for match in _OFFER_ID.finditer(header):
            if match.group(2).casefold() == domain and match.group(1) not in tokens:
                tokens.append(match.group(1))
    return tokens


def says_yes(text: str) -> bool:
    """The first non-empty line is a plain yes ("Yes", "yes please!", "OK", "confirm")."""
    for line in text.splitlines():
        words = re.sub(r"[^\w\s]", " ", line).casefold().split()
        if words:
            return " ".join(words) in YES
    return False


def same_address(a: str, b: str) -> bool:
    """Two email addresses (with or without display names) are the same mailbox, ignoring case."""
    left, right = parseaddr(a)[1].strip().casefold(), parseaddr(b)[1].strip().casefold()
    return bool(left) and left == right
