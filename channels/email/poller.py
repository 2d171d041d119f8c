"""The mailbox poller: new UIDs -> parse (in a worker process) -> classify -> intake, exactly once.

Order per message, so that a crash anywhere never loses or doubles an answer: record in the inbound ledger
(keys: mailbox+UIDVALIDITY+UID and Message-ID) and schedule the answer (`intake.accept`), THEN mark the
message \\Seen or move it, THEN advance the stored position. After a crash the messages past the position are
fetched again and dropped by their keys. A UIDVALIDITY change restarts at UID 0 and every message is matched
by Message-ID instead: nothing is answered twice, nothing skipped.

Parsing is the one expensive step on untrusted input, so it never runs on the event loop: a worker process
parses under a hard timeout, and before each parse a marker is stored (`positions.begin_parse`). A message
whose parse times out, crashes the worker, or was interrupted `MAX_PARSE_ATTEMPTS` times (the process died
while parsing it) goes to the quarantine folder, and the poller carries on; it is never fed to the parser
again at start-up. Fetches are capped in bytes as well as in messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from bot import metrics
from bot.messages import Channel, InboundMessage, frozen_map
from bot.ports import (
    ChannelEvents,
    Clock,
    Intake,
    Leases,
    MailboxPosition,
    MailboxPositions,
    SenderPolicy,
    ThreadIndex,
)
from channels.email.classify import Verdict, classify
from channels.email.config import EmailConfig
from channels.email.mailbox import AsyncMailbox
from channels.email.parsing import ParsedEmail, UnparseableEmail, parse_email
from channels.email.worker import ProcessWorker, WorkerCrashed, WorkerTimeout

log = structlog.get_logger(__name__)

BATCH = 50
MAX_PARSE_ATTEMPTS = 2  # a second try covers an unrelated crash mid-parse; a third never happens
ANSWERED = "answered"


@dataclass(frozen=True, slots=True)
class HandleResult:
    uid: int
    quarantine: bool = False
    accepted: bool = False


@dataclass(frozen=True, slots=True)
class PollerPorts:
    """What the poller talks to: the core's narrow ports."""

    intake: Intake
    leases: Leases
    positions: MailboxPositions
    threads: ThreadIndex
    events: ChannelEvents
    sender_policy: SenderPolicy
    clock: Clock


class MailboxPoller:
    """Reads one folder; `poll_once()` runs under a lease so only one replica reads a mailbox at a time."""

    def __init__(
        self, config: EmailConfig, ports: PollerPorts, mailbox: AsyncMailbox, parser: ProcessWorker, *, holder: str
    ) -> None:
        self._config = config
        self._ports = ports
        self._mailbox = mailbox
        self._parser = parser
        self._holder = holder
        self.name = config.mailbox
        self.lease_name = f"email-poll:{self.name}"
        self._own = config.own_addresses

    async def poll_once(self) -> int:
        """Read what is new; returns how many messages were accepted for answering (0 without the lease)."""
        config, leases, conn = self._config, self._ports.leases, self._mailbox.connection
        if not await leases.acquire(self.lease_name, self._holder, config.lease_seconds):
            return 0
        uidvalidity = await self._mailbox.call(conn.select, config.imap_folder)
        position = await self._ports.positions.get(self.name)
        last_uid = 0
        if position is None:
            last_uid = await self._mailbox.call(conn.start_after)
            log.info("email.first_poll", mailbox=self.name, start_after_uid=last_uid)
        elif position.uidvalidity == uidvalidity:
            last_uid = position.last_uid
        else:  # a new UIDVALIDITY: read from the start; every message is matched by its Message-ID
            log.warning("email.uidvalidity_changed", mailbox=self.name, old=position.uidvalidity, new=uidvalidity)
        uids = await self._mailbox.call(conn.uids_after, last_uid)
        accepted = 0
        done = 0
        while done < len(uids):
            if done and not await leases.acquire(self.lease_name, self._holder, config.lease_seconds):
                break  # another replica took over; it carries on from the stored position
            sizes = await self._mailbox.call(conn.sizes, uids[done : done + BATCH])
            batch = self._within_bytes(uids[done : done + BATCH], sizes)
            small = [uid for uid in batch if sizes.get(uid, 0) <= config.max_bytes and uid in sizes]
            bodies = await self._mailbox.call(conn.bodies, small)
            results = []
            for uid in batch:
                if uid in sizes:  # else expunged meanwhile: nothing to read or settle
                    results.append(await self._handle(uid, bodies.get(uid), sizes[uid], uidvalidity))
            await self._settle(results)
            await self._ports.positions.set(self.name, MailboxPosition(uidvalidity, batch[-1]))
            accepted += sum(r.accepted for r in results)
            done += len(batch)
        metrics.MAILBOX_LAG.set(0)
        return accepted

    def _within_bytes(self, uids: Sequence[int], sizes: dict[int, int]) -> list[int]:
        """The first UIDs whose readable bytes fit `fetch_batch_bytes` (always at least one UID)."""
        taken: list[int] = []
        total = 0
        for uid in uids:
            size = sizes.get(uid, 0)
            size = size if size <= self._config.max_bytes else 0  # oversized ones are not fetched
            if taken and total + size > self._config.fetch_batch_bytes:
                break
            taken.append(uid)
            total += size
        return taken

    async def _settle(self, results: list[HandleResult]) -> None:
        config, conn = self._config, self._mailbox.connection
        quarantined = [r.uid for r in results if r.quarantine]
        done = [r.uid for r in results if not r.quarantine]
        if quarantined:
            await self._mailbox.call(conn.move, quarantined, config.imap_quarantine_folder)
        if config.imap_done_action == "move":
            await self._mailbox.call(conn.move, done, config.imap_done_folder)
        else:
            await self._mailbox.call(conn.mark_seen, done)

    async def _handle(self, uid: int, raw: bytes | None, size: int, uidvalidity: int) -> HandleResult:
        intake = self._ports.intake
        uid_key = f"email:uid:{self.name}:{uidvalidity}:{uid}"
        if await intake.seen(uid_key):
            return HandleResult(uid)
        if raw is None:  # too large to fetch, or the server sent no body: an operator looks at it
            return await self._quarantine(uid, f"no body read ({size} bytes; the limit is {self._config.max_bytes})")
        mail = await self._parse(uid, raw, uidvalidity)
        if isinstance(mail, str):
            return await self._quarantine(uid, mail)
        msgid_key = self._ports.threads.message_key(mail.message_id)
        if await intake.seen(msgid_key):
            log.info("email.already_seen", message_id=mail.message_id, uid=uid)  # resync after UIDVALIDITY
            return HandleResult(uid)
        msg = await self._inbound(mail)
        keys = [uid_key, msgid_key]
        verdict = classify(mail, self._own).verdict
        if verdict is not Verdict.ANSWER:
            await self._ignore(msg, keys, verdict.value)
            return HandleResult(uid)
        recipient = mail.reply_to or mail.sender
        now = self._ports.clock.now()
        hold = await self._ports.sender_policy.check(Channel.EMAIL, mail.sender, now, recipient=recipient)
        if hold is not None:
            if hold == "loop":
                metrics.EMAIL_LOOPS.inc()
                log.warning("email.loop_breaker", sender_domain=mail.sender.rpartition("@")[2])
            if await self._ignore(msg, keys, hold):
                await self._ports.sender_policy.count(Channel.EMAIL, mail.sender, hold, now, recipient=recipient)
            return HandleResult(uid)
        accepted = await intake.accept(msg, keys)
        if accepted:
            await self._ports.sender_policy.count(Channel.EMAIL, mail.sender, ANSWERED, now, recipient=recipient)
        return HandleResult(uid, accepted=accepted)

    async def _parse(self, uid: int, raw: bytes, uidvalidity: int) -> ParsedEmail | str:
        """The parsed message, or why it must be quarantined."""
        attempts = await self._ports.positions.begin_parse(self.name, uidvalidity, uid)
        if attempts > MAX_PARSE_ATTEMPTS:
            return f"its parse was interrupted {attempts - 1} times"
        try:
            return await self._parser.call(parse_email, raw, self._config.parse_timeout_seconds)
        except UnparseableEmail as exc:
            return str(exc)
        except WorkerTimeout:
            return f"parsing took longer than {self._config.parse_timeout_seconds:g}s"
        except WorkerCrashed as exc:
            return f"the parser died: {exc}"
        except Exception as exc:  # a parser bug must not block the mailbox either
            log.exception("email.parse_crashed", uid=uid, mailbox=self.name)
            return f"parser error: {type(exc).__name__}"

    async def _ignore(self, msg: InboundMessage, keys: list[str], kind: str) -> bool:
        """Record a message we do not answer; True when it was new."""
        if not await self._ports.intake.record_only(msg, keys, kind):
            return False
        await self._ports.events.record(
            Channel.EMAIL, kind, sender=msg.sender, message_id=msg.message_id, detail=msg.subject
        )
        metrics.EMAIL_IGNORED.labels(kind).inc()
        log.info("email.ignored", kind=kind, message_id=msg.message_id)
        return True

    async def _quarantine(self, uid: int, reason: str) -> HandleResult:
        metrics.EMAIL_QUARANTINED.inc()
        log.warning("email.quarantined", uid=uid, mailbox=self.name, reason=reason)
        await self._ports.events.record(
            Channel.EMAIL, "quarantined", message_id=f"uid:{uid}", detail=f"{self.name}: {reason}"
        )
        return HandleResult(uid, quarantine=True)

    async def _inbound(self, mail: ParsedEmail) -> InboundMessage:
        root = await self._ports.threads.conversation_for(Channel.EMAIL, mail.thread_ids, mail.sender)
        return InboundMessage(
            channel=Channel.EMAIL,
            conversation_key=root or mail.message_id,
            message_id=mail.message_id,
            sender=mail.sender,
            text=mail.visible,
            received_at=self._ports.clock.now(),
            subject=mail.subject,
            metadata=frozen_map(
                {
                    "message_id_header": mail.message_id,
                    "in_reply_to": mail.in_reply_to,
                    "references": " ".join(mail.references),
                    "reply_to": mail.reply_to,
                    "attachments": ", ".join(mail.attachments)[:2000],
                    "sender_name": mail.sender_name,
                }
            ),
        )
