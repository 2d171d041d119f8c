"""Email confirmation: only a yes, replying to the offer's Message-ID, from the offer's requester, opens a ticket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.build import build_email, build_service
from app.wiring import Wiring
from bot.errors import InvalidTransition
from bot.messages import Action, ActionKind, Channel, Outcome, Reply
from bot.offers import offer_message_id, offer_reference
from bot.store.db import Database
from bot.store.tables import TicketRow
from bot.strings import for_customers
from channels.email import EmailChannel
from channels.email.render import reply_message_id
from escalation.actions import new_token
from escalation.email_confirm import offer_tokens, same_address, says_yes
from escalation.intent import EmbeddingIntentClassifier
from tests.conftest import ManualClock
from tests.doubles import ScriptedKnowledge
from tests.email.conftest import SUPPORT as SUPPORT_EMAIL
from tests.email.conftest import SmtpServer, customer_email, email_settings
from tests.email.dovecot import DovecotServer
from tests.escalation.conftest import ServiceFactory, email_msg, slack_msg

SUPPORT = "Support <help@shop.example>"


async def tickets(db: Database) -> int:
    async with db.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(TicketRow))).scalar_one())


def reply(token: str, *, headers: str = "both") -> dict[str, str]:
    """Threading headers of a reply to the offer carrying `token`."""
    offer = offer_message_id(token, SUPPORT)
    metadata = {}
    if headers in ("both", "in_reply_to"):
        metadata["in_reply_to"] = offer
    if headers in ("both", "references"):
        metadata["references"] = f"<root-1@customer.example> {offer}"
    return metadata


async def test_a_yes_reply_to_the_offer_opens_the_ticket_once(db: Database, make_service: ServiceFactory) -> None:
    service = make_service()
    offer = await service.propose_ticket(email_msg(), "abstained")
    msg = email_msg(2, text="Yes please!\n\nOn Mon, Support wrote:\n> reply yes", metadata=reply(offer.token))
    ref = await service.confirm_by_reply(msg)
    assert ref is not None and ref.reference == "#1"
    again = await service.confirm_by_reply(msg)  # a replayed email finds the existing ticket
    assert again == ref
    assert await tickets(db) == 1


@pytest.mark.parametrize("headers", ["in_reply_to", "references"])
async def test_either_threading_header_counts(db: Database, make_service: ServiceFactory, headers: str) -> None:
    service = make_service()
    offer = await service.propose_ticket(email_msg(), "abstained")
    msg = email_msg(
        2, sender='"Ann Smith" <ANN@Customer.Example>', text="OK", metadata=reply(offer.token, headers=headers)
    )
    assert await service.confirm_by_reply(msg) is not None


async def test_spoofed_confirmations_create_nothing(db: Database, make_service: ServiceFactory) -> None:
    service = make_service()
    offer = await service.propose_ticket(email_msg(), "abstained")
    spoofs = [
        # right headers, wrong sender (a forwarded offer, or a forged From)
        email_msg(2, sender="mallory@evil.example", text="yes", metadata=reply(offer.token)),
        # right sender and subject, no reply headers
        email_msg(3, text="yes", metadata={}),
        # right sender, a guessed token
        email_msg(4, text="yes", metadata=reply(new_token())),
        # right sender, our token but a Message-ID on another domain
        email_msg(5, text="yes", metadata={"in_reply_to": f"<offer-{offer.token}@evil.example>"}),
        # right sender, replies to the offer but does not say yes
        email_msg(6, text="No, I just have another question about refunds", metadata=reply(offer.token)),
        # right sender and headers, but the "yes" is not the first line
        email_msg(7, text="Thanks for nothing.\nyes", metadata=reply(offer.token)),
    ]
    for msg in spoofs:
        assert await service.confirm_by_reply(msg) is None
    assert await tickets(db) == 0
    assert (await service.preview(offer.token)).state == "pending"


async def test_a_slack_offer_cannot_be_confirmed_by_email(db: Database, make_service: ServiceFactory) -> None:
    service = make_service()
    offer = await service.propose_ticket(slack_msg(sender="ann@customer.example"), "abstained")
    assert await service.confirm_by_reply(email_msg(2, text="yes", metadata=reply(offer.token))) is None
    assert await tickets(db) == 0


async def test_an_expired_offer_says_ask_again(clock: ManualClock, db: Database, make_service: ServiceFactory) -> None:
    service = make_service()
    offer = await service.propose_ticket(email_msg(), "abstained")
    clock.advance(3600)
    with pytest.raises(InvalidTransition) as raised:
        await service.confirm_by_reply(email_msg(2, text="yes", metadata=reply(offer.token)))
    assert raised.value.message == for_customers.EXPIRED
    assert await tickets(db) == 0


def test_yes_words() -> None:
    for text in ["yes", "Yes!", "YES PLEASE", "yes, please.", "y", "OK", "Confirm", "\n\n  ok \nmore"]:
        assert says_yes(text), text
    for text in ["", "no", "yes but first tell me", "not yet", "okay-ish maybe", "yesterday"]:
        assert not says_yes(text), text


def test_offer_tokens_and_addresses() -> None:
    token = new_token()
    other = new_token()
    meta = {
        "in_reply_to": offer_message_id(token, SUPPORT),
        "references": f"<a@b> {offer_message_id(other, 'help@SHOP.example')} <offer-x@shop.example>",
    }
    assert offer_tokens(meta, SUPPORT) == [token, other]
    assert offer_tokens({"in_reply_to": "<offer-abc@shop.example>"}, SUPPORT) == []  # too short to be ours
    assert same_address("Ann <ann@x.example>", "ANN@X.EXAMPLE")
    assert not same_address("", "")
    assert not same_address("ann@x.example", "ann@y.example")


@pytest.mark.parametrize(
    ("support_address", "domain"),
    [
        ("Support <help@shop.example>", "shop.example"),
        ("help@shop.example (Support)", "shop.example"),
        ('"help desk"@Shop.Example', "shop.example"),
        ("help+bot@shop.example", "shop.example"),
        ("Hilfe <hilfe@bücher.example>", "xn--bcher-kva.example"),
    ],
)
def test_one_offer_id_is_written_and_matched_for_every_form_of_the_support_address(
    support_address: str, domain: str
) -> None:
    """The email channel writes the offer's Message-ID and escalation matches the customer's reply with the same
    function, whatever form SUPPORT_ADDRESS takes (display name, comment, quoted local part, plus, IDN)."""
    token = "t" * 32
    written = reply_message_id(
        Reply(
            Channel.EMAIL,
            "c",
            "m",
            "text",
            Outcome.ANSWERED,
            "k",
            actions=(Action(ActionKind.OFFER_TICKET, "x", token),),
        ),
        support_address,
    )
    assert written == f"<offer-{token}@{domain}>"
    assert offer_tokens({"in_reply_to": written, "references": ""}, support_address) == [token]


# --- end to end: a real Dovecot, a real SMTP server, the service from the composition root -----------------------


@pytest.fixture
async def mail_service(
    dovecot: DovecotServer, smtp: SmtpServer, tmp_path: Path, intent_classifier: EmbeddingIntentClassifier
) -> AsyncIterator[Wiring]:
    """Email on, escalation on, no agents' channel: only a ticket can follow a request for a person."""
    knowledge = ScriptedKnowledge({"refund": ("Refunds go back to the card you paid with within 5 days [1].", 0.9)})
    built = await build_service(
        email_settings(dovecot, smtp.port, tmp_path), knowledge=knowledge, intent=intent_classifier
    )
    try:
        yield built
    finally:
        await built.pipeline.drain()
        await built.dispatcher.stop()
        await built.db.dispose()


async def _settle(services: Wiring, channel: EmailChannel) -> None:
    await channel.poll_once()
    await services.pipeline.drain()
    await services.dispatcher.flush_once()


@pytest.mark.slow  # real Dovecot and SMTP servers, the embedding model
async def test_by_email_a_request_for_a_person_in_own_words_ends_in_one_ticket(
    mail_service: Wiring, dovecot: DovecotServer, smtp: SmtpServer
) -> None:
    channel = build_email(mail_service)
    mail_service.dispatcher.register(Channel.EMAIL, channel.sender)
    ann = "ann@example.org"
    dovecot.append(
        customer_email(
            1,
            sender=ann,
            subject="Invoice 4412",
            body="Hello,\n\nI was charged twice for invoice 4412, and I want a refund.\nPlease get me a person to "
            "sort this out.\n\nAnn",
        )
    )
    await _settle(mail_service, channel)
    (first,) = smtp.handler.messages
    body = first.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    token = str(first["Message-ID"]).removeprefix("<offer-").partition("@")[0]
    assert str(first["Message-ID"]) == offer_message_id(token, SUPPORT_EMAIL)  # the first reply IS the offer
    assert "Refunds go back to the card you paid with" in text  # the answer, in the same reply
    assert f"Reply YES to this email to open a ticket (reference {offer_reference(token)})." in text
    assert for_customers.HANDOFF not in text and for_customers.NO_AGENT_OFFER_TICKET in text  # nobody promised
    offer_id = str(first["Message-ID"])

    dovecot.append(customer_email(2, sender="mallory@evil.example", in_reply_to=offer_id, body="yes"))  # spoofed
    dovecot.append(customer_email(3, sender=ann, subject="Re: Invoice 4412", body="yes"))  # no reply headers
    await _settle(mail_service, channel)
    assert await tickets(mail_service.db) == 0

    dovecot.append(customer_email(4, sender=ann, subject="Re: Invoice 4412", in_reply_to=offer_id, body="Yes"))
    dovecot.append(customer_email(5, sender=ann, subject="Re: Invoice 4412", in_reply_to=offer_id, body="yes!"))
    await _settle(mail_service, channel)
    assert await tickets(mail_service.db) == 1
    confirmations = [m for m in smtp.handler.messages if m["In-Reply-To"] in ("<q4@example.org>", "<q5@example.org>")]
    assert len(confirmations) == 2
    for reply_mail in confirmations:
        assert offer_id in str(reply_mail["References"])  # in the customer's thread
        part = reply_mail.get_body(("plain",))
        assert part is not None and for_customers.TICKET_CONFIRMED.format(reference="#1") in part.get_content()
