"""The public HTTP listener, guarded against slow and piled-up connections (slowloris).

aiohttp keeps a connection that never finishes its request head open until its keep-alive timer (an hour by
default) and offers no cap on concurrent connections; 1,000 header-stalled sockets held +251 MB. So the listener
wraps aiohttp's protocol factory (`AppRunner.server`) in `GuardedProtocol`, a plain `asyncio.Protocol` that
forwards every event to aiohttp's own `RequestHandler` and adds three things:

- a cap: a connection beyond `max_connections` is answered `503` and closed at once, before aiohttp sees it
  (existing connections carry on);
- a head deadline: the first request's head (up to the blank line) must arrive within `header_timeout` seconds
  of connecting, however slowly it trickles, or the connection is closed. Later requests on a kept-alive
  connection are bounded by aiohttp's keep-alive timer (`KEEPALIVE_SECONDS`), which closes a connection still
  waiting for a complete head when it fires;
- laziness: aiohttp's handler (parser, task, buffers) is built only when the first byte arrives, so a socket
  that only connects costs a few hundred bytes.

A slow *body* is bounded by `body_deadline` (a middleware): the body must be complete within `body_timeout`
seconds of its head, or the connection is closed. Only public asyncio and aiohttp API is used.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from bot import metrics

log = structlog.get_logger(__name__)

KEEPALIVE_SECONDS = 75.0  # idle time between requests; above common load balancers' 60 s idle timeout
_HEAD_END = b"\r\n\r\n"
_REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 20\r\n"
    b"Retry-After: 1\r\nConnection: close\r\n\r\ntoo many connections"
)


@dataclass(frozen=True, slots=True)
class ListenerLimits:
    """`max_connections` open at once; seconds for a request head and for a request body to arrive."""

    max_connections: int
    header_timeout: float
    body_timeout: float


class ConnectionGuard:
    """The open connections of one listener, counted against its cap."""

    def __init__(self, limits: ListenerLimits) -> None:
        self.limits = limits
        self.open: set[GuardedProtocol] = set()

    def close_all(self) -> None:
        """Close connections aiohttp never saw (no byte yet); aiohttp shuts down the ones it handles."""
        for protocol in list(self.open):
            protocol.close_if_idle()


class GuardedProtocol(asyncio.Protocol):
    """One connection: counts against the cap, enforces the head deadline, forwards to aiohttp's handler."""

    def __init__(self, factory: Callable[[], asyncio.Protocol], guard: ConnectionGuard) -> None:
        self._factory = factory
        self._guard = guard
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tail = b""  # the last bytes seen, so a head end split across two reads is still found
        self._counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        guard = self._guard
        if len(guard.open) >= guard.limits.max_connections:
            metrics.HTTP_DROPPED.labels("over_cap").inc()
            transport.write(_REFUSAL)
            transport.close()
            return
        guard.open.add(self)
        self._counted = True
        metrics.HTTP_OPEN.set(len(guard.open))
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(guard.limits.header_timeout, self._head_too_slow)

    def _head_too_slow(self) -> None:
        self._timer = None
        metrics.HTTP_DROPPED.labels("header_timeout").inc()
        if self._transport is not None:
            self._transport.abort()  # nothing to flush to a client that never finished asking

    def close_if_idle(self) -> None:
        if self._inner is None and self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        if not self._counted:  # refused: already closing
            return
        if self._timer is not None:
            window = self._tail + data
            if _HEAD_END in window:
                self._timer.cancel()
                self._timer = None
            else:
                self._tail = window[-(len(_HEAD_END) - 1) :]
        inner = self._inner
        if inner is None:
            assert self._transport is not None
            inner = self._inner = self._factory()
            inner.connection_made(self._transport)
        inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._counted:
            self._counted = False
            self._guard.open.discard(self)
            metrics.HTTP_OPEN.set(len(self._guard.open))
        if self._inner is not None:
            self._inner.connection_lost(exc)
        self._transport = None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()


class GuardedSite(web.BaseSite):
    """A TCP site like `web.TCPSite` whose connections go through `GuardedProtocol`."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, guard: ConnectionGuard) -> None:
        super().__init__(runner)
        self._host = host
        self._port = port
        self.guard = guard

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        factory = self._runner.server
        assert factory is not None, "runner.setup() first"
        guard = self.guard
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: GuardedProtocol(factory, guard), self._host, self._port, reuse_address=True
        )

    async def stop(self) -> None:
        await super().stop()
        self.guard.close_all()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def body_deadline(timeout: float) -> Middleware:
    """Middleware: a request whose body is not complete `timeout` seconds after its head has its connection
    closed (a slowloris body would otherwise hold a handler, its buffers and a connection slot forever). The
    handler may still be running then; reading the rest of the body fails, and nothing is answered."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        content = request.content
        if content.is_eof():
            return await handler(request)
        transport = request.transport
        fired = False

        def too_slow() -> None:
            nonlocal fired
            if not content.is_eof() and transport is not None:
                fired = True
                metrics.HTTP_DROPPED.labels("body_timeout").inc()
                log.info("http.body_too_slow", path=request.path, timeout=timeout)
                transport.abort()

        timer = asyncio.get_running_loop().call_later(timeout, too_slow)
        try:
            return await handler(request)
        except ConnectionError:
            if fired:  # our own close: nothing to answer, and no traceback for it
                return web.Response(status=408)
            raise
        finally:
            timer.cancel()

    return middleware
