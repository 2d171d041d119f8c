"""The confirm-before-act flow: who may decide, what each state means to a person, and finishing the work.

`ConfirmFlow.confirm()` is safe to call any number of times from any replica: the first caller moves the action
pending -> confirmed and runs its executor; the others wait for it and return the same result; a caller that
arrives after a crash takes the lapsed lease over and finishes the job (executors are idempotent on the token).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

import structlog

from bot import metrics
from bot.errors import InvalidTransition, NotAllowed, UserFacingError
from bot.ports import Clock
from bot.strings import for_customers
from escalation.actions import (
    CANCELLED,
    CONFIRMED,
    DONE,
    EXPIRED,
    PENDING,
    ActionExecutor,
    ActionStore,
    PendingAction,
)

log = structlog.get_logger(__name__)


class ConfirmFlow:
    """Drives pending actions through their states; one executor per action kind (a registry)."""

    def __init__(
        self,
        store: ActionStore,
        clock: Clock,
        executors: Mapping[str, ActionExecutor],
        *,
        wait_seconds: float = 20.0,
        poll_seconds: float = 0.05,
    ) -> None:
        self._store = store
        self._clock = clock
        self._executors = dict(executors)
        self._wait_seconds = wait_seconds
        self._poll_seconds = poll_seconds

    async def load(self, token: str) -> PendingAction:
        action = await self._store.get(token) if token else None
        if action is None:
            raise InvalidTransition(for_customers.UNKNOWN_ACTION)
        return action

    async def confirm(self, token: str, actor: str) -> PendingAction:
        """Confirm and finish the action; returns it in state `done` (for every caller, first or repeated)."""
        action = await self.load(token)
        if not action.may_decide(actor):
            log.warning("action.confirm_refused", token_prefix=token[:6], kind=action.kind)
            raise NotAllowed(for_customers.NOT_YOURS)
        executor = self._executor(action)
        if action.state == PENDING and await self._store.confirm(token, actor, executor.on_confirmed):
            log.info("action.confirmed", token_prefix=token[:6], kind=action.kind)
            return await self._run(token, executor)
        deadline = time.monotonic() + self._wait_seconds
        while True:
            action = await self.load(token)
            if action.state == DONE:
                return action
            if action.state == PENDING:  # we lost no race: it is past its expiry
                await self._store.expire(token)
                raise InvalidTransition(for_customers.EXPIRED)
            if action.state in (EXPIRED, CANCELLED):
                raise InvalidTransition(for_customers.EXPIRED if action.state == EXPIRED else for_customers.CANCELLED)
            if action.state == CONFIRMED and await self._store.take_over(token):
                log.info("action.taken_over", token_prefix=token[:6], kind=action.kind)
                return await self._run(token, executor)
            if time.monotonic() > deadline:
                raise UserFacingError(for_customers.IN_PROGRESS)
            await asyncio.sleep(self._poll_seconds)

    async def cancel(self, token: str, actor: str) -> PendingAction:
        """pending -> cancelled. Cancelling twice (or after expiry) is a no-op; after confirmation it is refused."""
        action = await self.load(token)
        if not action.may_decide(actor):
            raise NotAllowed(for_customers.NOT_YOURS)
        if action.state == PENDING and await self._store.cancel(token, actor):
            log.info("action.cancelled", token_prefix=token[:6], kind=action.kind)
            return await self.load(token)
        action = await self.load(token)
        if action.state in (CONFIRMED, DONE):
            result = self._executor(action).describe(action.result) if action.state == DONE else "in progress"
            raise InvalidTransition(for_customers.ALREADY_DONE.format(result=result))
        return action

    async def recover(self) -> int:
        """Finish confirmed actions whose worker stopped (a crash, a failed backend); returns how many finished."""
        finished = 0
        for token in await self._store.stalled():
            action = await self._store.get(token)
            if action is None or not await self._store.take_over(token):
                continue
            try:
                await self._run(token, self._executor(action))
                finished += 1
            except UserFacingError:
                continue  # logged in _run; the next sweep tries again
        return finished

    def _executor(self, action: PendingAction) -> ActionExecutor:
        executor = self._executors.get(action.kind)
        if executor is None:
            raise InvalidTransition(for_customers.UNKNOWN_ACTION)
        return executor

    async def _run(self, token: str, executor: ActionExecutor) -> PendingAction:
        action = await self.load(token)
        try:
            result = await executor.execute(action)
        except Exception:
            metrics.ERRORS.labels("escalation").inc()
            log.exception("action.execute_failed", token_prefix=token[:6], kind=action.kind)
            await self._store.release(token)
            raise UserFacingError(for_customers.ACTION_FAILED) from None
        if not await self._store.finish(token, result, executor.on_done):
            log.info("action.finished_elsewhere", token_prefix=token[:6], kind=action.kind)
        return await self.load(token)
