"""Personal data in free text: card numbers, email addresses and phone numbers, found and masked.

`mask_pii` is for logs (nothing a person wrote reaches a log line with their address, phone or card in it).
`remove_card_numbers` is for what we store: a card number is never needed to answer a question, so it is
replaced before a message is recorded, and never lands in the database, the outbox, a trace or a prompt.
"""

from __future__ import annotations

import re

_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@([\w-]{1,63}(?:\.[\w-]{1,63})+)", re.UNICODE)
# A phone number: "+" and digits; digit groups joined by at least two spaces or dashes; or a national number
# starting with 0 (so a bare id like 1700000000.123 or an ISO date is not one).
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d[\d ()./-]{6,20}\d|\(?\d{2,5}\)?(?:[ -]\(?\d{2,5}\)?){2,4}|\(?0\d{2,5}\)?[ /-]?\d{5,9})(?![\w-])"
)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

CARD_REMOVED = "[card number removed]"


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2 == 1:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _is_card(candidate: str) -> bool:
    digits = re.sub(r"\D", "", candidate)
    return 13 <= len(digits) <= 19 and _luhn(digits)


def remove_card_numbers(text: str) -> str:
    """`text` with every Luhn-valid 13–19 digit number (spaces or dashes allowed) replaced by a marker."""
    if not any(ch.isdigit() for ch in text):
        return text
    return _CARD.sub(lambda m: CARD_REMOVED if _is_card(m.group()) else m.group(), text)


def mask_pii(text: str) -> str:
    """`text` fit for a log line: card numbers removed, emails as `***@domain`, phone numbers as `[phone]`."""
    text = remove_card_numbers(text)
    if "@" in text:
        text = _EMAIL.sub(lambda m: f"***@{m.group(1)}", text)
    if sum(ch.isdigit() for ch in text) >= 7:
        text = _PHONE.sub(_phone, text)
    return text


def _phone(match: re.Match[str]) -> str:
    found = match.group()
    digits = sum(c.isdigit() for c in found)
    return "[phone]" if 7 <= digits <= 15 and not _DATE.fullmatch(found) else found
