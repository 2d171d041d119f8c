"""The mailbox poller: new UIDs -> parse -> classify -> the inquiry pipeline, exactly once.

Order per message, so that a crash anywhere never loses or doubles an answer: record in the inbound ledger
(keys: mailbox+UIDVALIDITY+UID and Message-ID) and schedule the answer (`pipeline.accept`), THEN mark the
message \\Seen or move it, THEN advance the stored position. After a crash the messages past the position are
fetched again and dropped by their keys. A UIDVALIDITY change restarts at UID 0 and every message is matched
by Message-ID instead: nothing is answered twice, nothing skipped. A message that cannot be read goes to the
quarantine folder and the poller carries on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import structlog

from bot import metrics
from bot.messages import Channel, InboundMessage, frozen_map
from bot.services import Services
from channels.email.classify import Verdict, classify
from channels.email.mailbox import AsyncMailbox, Fetched
from channels.email.parsing import ParsedEmail, UnparseableEmail, parse_email
from channels.email.state import MailboxPositions, Position, SenderCounts, ThreadIndex, msgid_key, sender_key

log = structlog.get_logger(__name__)

BATCH = 50
LOOP_WINDOW = timedelta(minutes=10)
THROTTLE_WINDOW = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class HandleResult:
    uid: int
    quarantine: bool = False
    accepted: bool = False


class MailboxPoller:
    """Reads one folder; `poll_once()` runs under a lease so only one replica reads a mailbox at a time."""

    def __init__(self, services: Services, mailbox: AsyncMailbox, *, holder: str, lease_seconds: float) -> None:
        s = services.settings
        self._services = services
        self._mailbox = mailbox
        self._holder = holder
        self._lease_seconds = lease_seconds
        self.name = f"{s.imap_user}/{s.imap_folder}"
        self.lease_name = f"email-poll:{self.name}"
        self._positions = MailboxPositions(services.db, services.clock)
        self._threads = ThreadIndex(services.db)
        self._counts = SenderCounts(services.db)
        self._own = {a.lower() for a in [s.support_address, s.imap_user, *s.email_bot_addresses] if "@" in a}

    async def poll_once(self) -> int:
        """Read what is new; returns how many messages were accepted for answering (0 without the lease)."""
        leases, settings = self._services.leases, self._services.settings
        if not await leases.acquire(self.lease_name, self._holder, self._lease_seconds):
            return 0
        uidvalidity = await self._mailbox.call(self._mailbox.connection.select, settings.imap_folder)
        position = await self._positions.get(self.name)
        last_uid = 0
        if position is not None and position.uidvalidity == uidvalidity:
            last_uid = position.last_uid
        elif position is not None:
            log.warning("email.uidvalidity_changed", mailbox=self.name, old=position.uidvalidity, new=uidvalidity)
        uids = await self._mailbox.call(self._mailbox.connection.uids_after, last_uid)
        accepted = 0
        for start in range(0, len(uids), BATCH):
            if start and not await leases.acquire(self.lease_name, self._holder, self._lease_seconds):
                break  # another replica took over; it carries on from the stored position
            batch = uids[start : start + BATCH]
            fetched = await self._mailbox.call(self._mailbox.connection.fetch, batch, settings.email_max_bytes)
            results = [await self._handle(item, uidvalidity) for item in fetched]
            await self._settle(results)
            await self._positions.set(self.name, Position(uidvalidity, batch[-1]))
            accepted += sum(r.accepted for r in results)
        metrics.MAILBOX_LAG.set(0)
        return accepted

    async def _settle(self, results: list[HandleResult]) -> None:
        settings, conn = self._services.settings, self._mailbox.connection
        quarantined = [r.uid for r in results if r.quarantine]
        done = [r.uid for r in results if not r.quarantine]
        if quarantined:
            await self._mailbox.call(conn.move, quarantined, settings.imap_quarantine_folder)
        if settings.imap_done_action == "move":
            await self._mailbox.call(conn.move, done, settings.imap_done_folder)
        else:
            await self._mailbox.call(conn.mark_seen, done)

    async def _handle(self, item: Fetched, uidvalidity: int) -> HandleResult:
        uid_key = f"email:uid:{self.name}:{uidvalidity}:{item.uid}"
        if await self._services.ledger.seen(uid_key):
            return HandleResult(item.uid)
        if item.raw is None:
            return await self._quarantine(item.uid, f"larger than {self._services.settings.email_max_bytes} bytes")
        try:
            mail = parse_email(item.raw)
        except UnparseableEmail as exc:
            return await self._quarantine(item.uid, str(exc))
        except Exception as exc:  # a parser bug must not block the mailbox either
            log.exception("email.parse_crashed", uid=item.uid, mailbox=self.name)
            return await self._quarantine(item.uid, f"parser error: {type(exc).__name__}")
        if await self._services.ledger.seen(msgid_key(mail.message_id)):
            log.info("email.already_seen", message_id=mail.message_id, uid=item.uid)  # resync after UIDVALIDITY
            return HandleResult(item.uid)
        msg = await self._inbound(mail)
        keys = [uid_key, msgid_key(mail.message_id)]
        verdict = classify(mail, self._own).verdict
        if verdict is not Verdict.ANSWER:
            await self._ignore(msg, keys, verdict.value, "")
            return HandleResult(item.uid)
        hold = await self._hold_back(mail)
        if hold is not None:
            await self._ignore(msg, [*keys, sender_key(mail.sender, "t", mail.message_id)], hold, "")
            return HandleResult(item.uid)
        accepted = await self._services.pipeline.accept(msg, [*keys, sender_key(mail.sender, "a", mail.message_id)])
        return HandleResult(item.uid, accepted=accepted)

    async def _hold_back(self, mail: ParsedEmail) -> str | None:
        """'loop' when a sender floods us (alert), 'throttled' past the hourly reply limit, else None."""
        now = self._services.clock.now()
        limit = self._services.settings.email_replies_per_sender_per_hour
        recent = await self._counts.since(mail.sender, now - LOOP_WINDOW)
        if recent >= 2 * limit:
            metrics.EMAIL_LOOPS.inc()
            log.warning("email.loop_breaker", sender_domain=mail.sender.split("@")[-1], recent=recent)
            return "loop"
        if await self._counts.since(mail.sender, now - THROTTLE_WINDOW, "a") >= limit:
            return "throttled"
        return None

    async def _ignore(self, msg: InboundMessage, keys: list[str], kind: str, detail: str) -> None:
        if await self._services.pipeline.record_only(msg, keys, kind):
            await self._services.events.record(
                Channel.EMAIL, kind, sender=msg.sender, message_id=msg.message_id, detail=detail or msg.subject
            )
            metrics.EMAIL_IGNORED.labels(kind).inc()
            log.info("email.ignored", kind=kind, message_id=msg.message_id)

    async def _quarantine(self, uid: int, reason: str) -> HandleResult:
        metrics.EMAIL_QUARANTINED.inc()
        log.warning("email.quarantined", uid=uid, mailbox=self.name, reason=reason)
        await self._services.events.record(
            Channel.EMAIL, "quarantined", message_id=f"uid:{uid}", detail=f"{self.name}: {reason}"
        )
        return HandleResult(uid, quarantine=True)

    async def _inbound(self, mail: ParsedEmail) -> InboundMessage:
        root = await self._threads.root_for(mail.thread_ids)
        return InboundMessage(
            channel=Channel.EMAIL,
            conversation_key=root or mail.message_id,
            message_id=mail.message_id,
            sender=mail.sender,
            text=mail.visible,
            received_at=self._services.clock.now(),
            subject=mail.subject,
            metadata=frozen_map(
                {
                    "message_id_header": mail.message_id,
                    "in_reply_to": mail.in_reply_to,
                    "references": " ".join(mail.references),
                    "reply_to": mail.reply_to,
                    "attachments": ", ".join(mail.attachments),
                    "sender_name": mail.sender_name,
                }
            ),
        )
