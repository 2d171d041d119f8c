"""The Message-ID of an emailed ticket offer: ONE function, used by the email channel to write it and by escalation
to match a customer's "yes" against it (two copies once disagreed for `help@shop.example (Support)`).

`<offer-{token}@{domain}>`: the token is 192 random bits, the domain our support address's, lower-case and in
ASCII (IDNA), whatever form the address is written in: a display name, a quoted local part, a comment, plus
addressing or an internationalised domain.
"""

from __future__ import annotations

import hashlib
from email.utils import parseaddr


def support_domain(support_address: str) -> str:
    """ "Support <help@shop.example>", "help@shop.example (Support)", '"help desk"@Shop.Example',
    "help+bot@shop.example" and "hilfe@bücher.example" give "shop.example" ... "xn--bcher-kva.example"."""
    domain = parseaddr(support_address)[1].rpartition("@")[2].strip().rstrip(".").casefold()
    if not domain:
        return "localhost"
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return "localhost"


def offer_message_id(token: str, support_address: str) -> str:
    """The Message-ID of the email that offers ticket `token`."""
    return f"<offer-{token}@{support_domain(support_address)}>"


def offer_reference(token: str) -> str:
    """The short reference a customer and an agent can quote for an offer ("T-3FA9C2D1"): derived from the token
    by a hash, so showing it reveals nothing that would let anyone confirm the offer."""
    return "T-" + hashlib.sha256(token.encode()).hexdigest()[:8].upper()
