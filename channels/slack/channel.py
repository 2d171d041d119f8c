"""The Slack channel: events in (HTTP or Socket Mode), replies out through the outbox and `SlackSender`.

An Events API callback takes a short path (`endpoint.py` for HTTP, `TimedSocketModeHandler` for Socket Mode):
signature and timestamp checked, the body parsed and routed (`events.py`), an answerable message recorded in the
inbound ledger under its event id and channel+ts (so the `app_mention` + `message` pair of one mention, Slack's
retries and other replicas all collapse to one inquiry; records are group-committed), and only then acked. So an
acked event is never lost, a failed write gets Slack's retry, and no bolt dispatch runs before the ack. The
working reaction and the answer run afterwards in background tasks. slack-bolt's `AsyncApp` still handles clicks
and the Socket Mode connection: a click is translated (`interactions.py`), recorded in the inbound ledger like an
event, then acked; the core handles it and its replies come through the outbox. Events and clicks from another
workspace or app than the bot's own (auth.test) are ignored.

The channel receives narrow ports only: `Intake` (record and answer), `SenderRegistry` (where its sender goes),
`Threads` (a thread's state, and a person's message in it), a `Clock`, and its frozen `SlackConfig`.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot import metrics
from bot.errors import NotReadyError
from bot.messages import Channel
from bot.ports import Clock, Intake, SenderRegistry, Threads
from channels.slack.client import TRANSPORT_ERRORS, RetryPolicy, build_web_client, error_code
from channels.slack.config import SlackConfig
from channels.slack.endpoint import EventsEndpoint, EventSink
from channels.slack.events import Ignored, SlackPolicy, Verdict, decide, parse
from channels.slack.interactions import clicks
from channels.slack.report import SlackReportPublisher
from channels.slack.sender import SlackSender, WorkingSignal

log = structlog.get_logger(__name__)


class TimedSocketModeHandler(AsyncSocketModeHandler):
    """Bolt's Socket Mode handler with the events' short path: an `events_api` envelope is recorded by
    `on_event` and acked over the websocket right after the ledger write (no ack on failure: Slack redelivers);
    other envelopes (clicks) go through bolt. Observes the ack latency like the HTTP endpoint does."""

    def __init__(self, app: AsyncApp, app_token: str, web_client: AsyncWebClient, on_event: EventSink) -> None:
        super().__init__(app, app_token, web_client=web_client)
        self._on_event = on_event

    async def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        started = time.perf_counter()
        payload = req.payload
        if req.type == "events_api" and isinstance(payload, dict) and payload.get("type") == "event_callback":
            if await self._on_event(payload) == 200:
                await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
        else:
            await super().handle(client, req)
        metrics.SLACK_ACK_LATENCY.observe(time.perf_counter() - started)


class SlackChannel:
    """Slack events in, replies out. `http_handler` is the aiohttp handler for POST /slack/events (None in
    Socket Mode); `start()` registers `sender` with the outbox dispatcher and, in Socket Mode, connects."""

    name = "slack"

    def __init__(
        self,
        config: SlackConfig,
        *,
        intake: Intake,
        senders: SenderRegistry,
        threads: Threads,
        clock: Clock,
        client: AsyncWebClient | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.config = config
        self._intake = intake
        self._senders = senders
        self._threads = threads
        self._clock = clock
        self.client = client or build_web_client(config, retry or RetryPolicy())
        self.reports = SlackReportPublisher(self.client)
        self.signal = WorkingSignal(self.client)
        self.sender = SlackSender(self.client, self.signal, self._own_bot_id, config.link_domains)
        self.policy = SlackPolicy.from_config(config)
        self._app_token = config.app_token
        self.socket_mode = config.socket_mode
        self._identity: AuthorizeResult | None = None
        self._app_id = ""  # our app's id, when auth.test tells it

        async def authorize() -> AuthorizeResult:  # a plain function: bolt injects arguments by parameter name
            return await self._authorize()

        bolt_logger = logging.getLogger("slack_bolt")
        level = bolt_logger.level
        bolt_logger.setLevel(logging.ERROR)  # bolt warns that the static token is unused with `authorize`: intended
        try:
            self.app = AsyncApp(
                client=self.client,
                signing_secret=config.signing_secret or None,
                request_verification_enabled=not self.socket_mode,
                process_before_response=True,
                authorize=authorize,
                logger=bolt_logger,
            )
        finally:
            bolt_logger.setLevel(level)
        self.app.event(re.compile(".*"))(self._on_event)
        self.app.action(re.compile(".*"))(self._on_action)
        self.endpoint: EventsEndpoint | None = None
        if not self.socket_mode:
            self.endpoint = EventsEndpoint(config.signing_secret, self.receive, self._bolt_http)
        self.http_handler = self.endpoint
        self._socket: TimedSocketModeHandler | None = None
        self._session: aiohttp.ClientSession | None = None

    # --- lifecycle ---

    async def start(self) -> None:
        if self._session is None and self.client.session is None:
            self._session = aiohttp.ClientSession()
            self.client.session = self._session
        self._senders.register(Channel.SLACK, self.sender)
        try:
            await self._authorize()
        except NotReadyError as exc:  # Slack is down: events get HTTP 500 (Slack retries them) until it is back
            log.warning("slack.auth_test_failed", error=str(exc))
        if self.socket_mode:
            self._socket = TimedSocketModeHandler(self.app, self._app_token, self.client, self.receive)
            await self._socket.connect_async()  # type: ignore[no-untyped-call]
        log.info("slack.started", mode="socket" if self.socket_mode else "http")

    async def stop(self) -> None:
        if self._socket is not None:
            with contextlib.suppress(Exception):
                await self._socket.close_async()  # type: ignore[no-untyped-call]
            self._socket = None
        await self.drain()
        if self._session is not None:
            await self._session.close()
            self.client.session = None
            self._session = None

    async def drain(self) -> None:
        """Wait for reactions in flight."""
        await self.signal.drain()

    # --- inbound ---

    async def _authorize(self) -> AuthorizeResult:
        """Who the bot is (auth.test, once). Raising here makes bolt answer 500, so Slack redelivers the event
        later; bolt's own single-team authorization would answer 200 and the event would be lost."""
        if self._identity is None:
            try:
                response = await self.client.auth_test()
            except (SlackApiError, *TRANSPORT_ERRORS) as exc:
                raise NotReadyError(f"slack auth.test failed: {error_code(exc)}") from exc
            self._identity = AuthorizeResult.from_auth_test_response(
                auth_test_response=response, bot_token=self.client.token
            )
            self._app_id = str(response.get("app_id") or "")
        return self._identity

    async def _own_bot_id(self) -> str:
        """Our bot's id (auth.test), for the sender's resend check: only messages our bot wrote count as ours."""
        return (await self._authorize()).bot_id or ""

    def _foreign(self, team: str, app: str) -> bool:
        """True for a payload from another workspace or another app than ours (as auth.test named them)."""
        own_team = (self._identity.team_id if self._identity is not None else None) or ""
        return bool((team and own_team and team != own_team) or (app and self._app_id and app != self._app_id))

    async def _bolt_http(self, request: web.Request) -> web.StreamResponse:
        """Requests other than event callbacks (clicks): bolt checks the signature again and dispatches."""
        return await to_aiohttp_response(await self.app.async_dispatch(await to_bolt_request(request)))

    async def receive(self, body: Mapping[str, Any]) -> int:
        """An event callback (HTTP or Socket Mode) in, the status to ack with out: 200 once it is recorded (or
        ignored); 500 when it could not be (Slack down for auth.test, database error), so Slack redelivers."""
        try:
            identity = await self._authorize()
        except NotReadyError:
            return 500
        try:
            await self._route(body, identity.bot_user_id or "", identity.bot_id or "")
        except Exception:
            log.exception("slack.event_failed", event_id=body.get("event_id"))
            return 500
        return 200

    async def _on_event(self, body: dict[str, Any], context: AsyncBoltContext) -> None:
        """Bolt's listener, for events that reach bolt anyway (none do over HTTP or Socket Mode today)."""
        await self._route(body, context.bot_user_id or "", context.bot_id or "")

    async def _route(self, body: Mapping[str, Any], bot_user_id: str, bot_id: str) -> None:
        if self._foreign(str(body.get("team_id") or ""), str(body.get("api_app_id") or "")):
            log.warning("slack.foreign_event", event_id=body.get("event_id"), team=body.get("team_id"))
            return
        parsed = parse(body, bot_user_id, bot_id)
        if isinstance(parsed, Ignored):
            log.debug("slack.ignored", reason=parsed.reason, event_id=body.get("event_id"))
            return
        thread = None
        if parsed.is_thread_reply:
            thread = await self._threads.get(Channel.SLACK, parsed.conversation_key)
        verdict, reason = decide(parsed, self.policy, thread)
        log_ = log.bind(message_id=parsed.message_id, event_id=parsed.event_id, reason=reason)
        if verdict is Verdict.IGNORE:
            log_.debug("slack.ignored")
            return
        msg = parsed.inbound(self._clock.now())
        if verdict is Verdict.HUMAN:
            if await self._intake.record_only(msg, parsed.keys(), "person on the case"):
                await self._threads.record_human_message(
                    Channel.SLACK, msg.conversation_key, msg.sender, msg.text, msg.message_id
                )
                log_.info("slack.human_message")
            return
        if await self._intake.accept(msg, parsed.keys()):
            log_.info("slack.accepted")
            if thread is None or not thread.human_on_case:
                self.signal.start(parsed.channel, parsed.ts)

    async def _on_action(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        """A click: recorded in the inbound ledger (the core answers it), then acked. A failed write raises, so
        bolt answers an error instead of acking a click nobody will handle."""
        await self._authorize()
        team = str((body.get("team") or {}).get("id") or (body.get("user") or {}).get("team_id") or "")
        if self._foreign(team, str(body.get("api_app_id") or "")):
            log.warning("slack.foreign_click", team=team)
            await ack()
            return
        now = self._clock.now()
        for click in clicks(body):
            msg = click.inbound(now, agents_channel=self.config.escalation_channel)
            accepted = await self._intake.accept(msg, click.keys())
            log.info("slack.click", action=click.kind.value, message_id=msg.message_id, duplicate=not accepted)
        await ack()

    # --- reports ---

    async def post_report(
        self, channel: str, text: str, blocks: list[dict[str, Any]], png: bytes | None, filename: str
    ) -> None:
        """A report post (the knowledge-gap backlog), through `SlackReportPublisher` on this channel's client."""
        await self.reports.post_report(channel, text, blocks, png, filename)
