"""A fake Slack: the Web API methods supportbot uses, and a Socket Mode websocket, on an ephemeral port.

It speaks the wire protocol (form, query or JSON arguments; `{"ok": ...}` answers; HTTP 429 with Retry-After;
Socket Mode hello / envelopes / acks), records every call so tests assert exactly what was sent, and can be told
to fail: `fail(500, count=3)`, `fail(429, seconds=1, retry_after=1)`, or an `ok: false` error for one method.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    status: int
    at: float


@dataclass
class Failure:
    status: int
    remaining: int | None  # calls left to fail; None: until `until`
    until: float | None
    retry_after: int
    methods: frozenset[str] | None


@dataclass
class Posted:
    """A message in a channel: one the bot posted (chat.postMessage), or one a test seeded as a person's."""

    channel: str
    ts: str
    text: str
    thread_ts: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] | None = None
    user: str = ""
    bot_id: str = ""

    def wire(self, *, with_metadata: bool) -> dict[str, Any]:
        """The message object as conversations.history / .replies return it."""
        out: dict[str, Any] = {"type": "message", "user": self.user, "text": self.text, "ts": self.ts}
        if self.bot_id:
            out["bot_id"] = self.bot_id
        if self.blocks:
            out["blocks"] = self.blocks
        if self.thread_ts:
            out["thread_ts"] = self.thread_ts
        if with_metadata and self.metadata is not None:
            out["metadata"] = self.metadata
        return out


def _flag(value: Any) -> bool:
    """A boolean argument as the Web API reads it: true/1 (slack_sdk sends "1"/"0" in query strings)."""
    return str(value).strip().lower() in ("1", "true")


def _cursor(ts: str) -> str:
    return base64.b64encode(f"next_ts:{ts}".encode()).decode()


def _cursor_ts(cursor: str) -> str | None:
    try:
        decoded = base64.b64decode(cursor, validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    prefix, _, ts = decoded.partition(":")
    return ts if prefix == "next_ts" and ts else None


class FakeSlack:
    def __init__(
        self, *, bot_user_id: str = "UBOT", bot_id: str = "BBOT", team_id: str = "T0001", app_id: str = "A0001"
    ) -> None:
        self.bot_user_id, self.bot_id, self.team_id, self.app_id = bot_user_id, bot_id, team_id, app_id
        self.calls: list[Call] = []
        self.messages: list[Posted] = []
        self.ephemerals: list[dict[str, Any]] = []
        self.updates: list[dict[str, Any]] = []
        self.reactions: set[tuple[str, str, str]] = set()
        self.uploads: dict[str, bytes] = {}
        self.acks: dict[str, dict[str, Any]] = {}
        self._ack_events: dict[str, asyncio.Event] = {}
        self._failures: list[Failure] = []
        self._errors: dict[str, list[str]] = {}
        self._last_ts = 0.0
        self._sockets: list[web.WebSocketResponse] = []
        self.connected = asyncio.Event()
        self.first_post_at: dict[tuple[str, str], float] = {}  # (channel, thread_ts) -> monotonic time
        self._post_events: dict[tuple[str, str], asyncio.Event] = {}
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- lifecycle ---

    async def start(self) -> FakeSlack:
        app = web.Application(client_max_size=20 * 1024 * 1024)
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_get("/link/", self._socket)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        for ws in self._sockets:
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    # --- steering ---

    def fail(
        self,
        status: int,
        *,
        count: int | None = None,
        seconds: float | None = None,
        retry_after: int = 1,
        methods: set[str] | None = None,
    ) -> None:
        """Answer `status` for the next `count` calls, or for `seconds`, (to `methods` only, if given)."""
        until = time.monotonic() + seconds if seconds is not None else None
        self._failures.append(
            Failure(status, count, until, retry_after, frozenset(methods) if methods is not None else None)
        )

    def recover(self) -> None:
        self._failures.clear()

    def error(self, method: str, code: str, times: int = 1) -> None:
        """Answer `{"ok": false, "error": code}` (HTTP 200) to the next `times` calls of `method`."""
        self._errors.setdefault(method, []).extend([code] * times)

    def calls_to(self, method: str, *, ok_only: bool = False) -> list[Call]:
        return [c for c in self.calls if c.method == method and (not ok_only or c.status == 200)]

    def in_thread(self, channel: str, thread_ts: str) -> list[Posted]:
        return [m for m in self.messages if m.channel == channel and m.thread_ts == thread_ts]

    async def wait_post(self, channel: str, thread_ts: str, timeout: float = 60.0) -> float:
        """Wait for the first post in a thread; returns when it arrived (time.monotonic())."""
        event = self._post_events.setdefault((channel, thread_ts), asyncio.Event())
        await asyncio.wait_for(event.wait(), timeout=timeout)
        return self.first_post_at[(channel, thread_ts)]

    # --- Web API ---

    def _failure_for(self, method: str) -> Failure | None:
        now = time.monotonic()
        for failure in list(self._failures):
            if failure.methods is not None and method not in failure.methods:
                continue
            if failure.until is not None and now >= failure.until:
                self._failures.remove(failure)
                continue
            if failure.remaining is not None:
                if failure.remaining <= 0:
                    self._failures.remove(failure)
                    continue
                failure.remaining -= 1
            return failure
        return None

    async def _args(self, request: web.Request) -> dict[str, Any]:
        args: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                args.update(await request.json())
            else:
                form = await request.post()
                args.update({k: v for k, v in form.items() if isinstance(v, str)})
        for key in ("blocks", "files"):
            if isinstance(args.get(key), str):
                args[key] = json.loads(args[key])
        return args

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await self._args(request)
        failure = self._failure_for(method)
        if failure is not None:
            self.calls.append(Call(method, args, failure.status, time.monotonic()))
            headers = {"Retry-After": str(failure.retry_after)} if failure.status == 429 else {}
            error = "ratelimited" if failure.status == 429 else "internal_error"
            return web.json_response({"ok": False, "error": error}, status=failure.status, headers=headers)
        self.calls.append(Call(method, args, 200, time.monotonic()))
        if self._errors.get(method):
            return web.json_response({"ok": False, "error": self._errors[method].pop(0)})
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return web.json_response({"ok": False, "error": "not_authed"})
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        result: dict[str, Any] = handler(args)
        return web.json_response(result)

    def _new_ts(self) -> str:
        """Like Slack's: the post time in seconds with six decimals, unique and increasing within a workspace."""
        self._last_ts = max(round(time.time(), 6), round(self._last_ts + 0.000001, 6))
        return f"{self._last_ts:.6f}"

    def seed(
        self,
        channel: str,
        ts: str,
        *,
        user: str = "U0CUSTOMER",
        text: str = "",
        thread_ts: str = "",
        metadata: dict[str, Any] | None = None,
        bot_id: str = "",
    ) -> None:
        """A message a person (or, with `bot_id`, another app) wrote, e.g. the parent of a thread the bot answers
        in, so reads find it."""
        self.messages.append(Posted(channel, ts, text, thread_ts, metadata=metadata, user=user, bot_id=bot_id))

    def _m_auth_test(self, _args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://example.slack.com/",
            "team": "Example",
            "user": "supportbot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "is_enterprise_install": False,
        }

    def _m_chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel", ""))
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not args.get("text") and not args.get("blocks"):
            return {"ok": False, "error": "no_text"}
        metadata = args.get("metadata")
        if isinstance(metadata, str):
            try:
                metadata = json.loads(metadata)
            except ValueError:
                return {"ok": False, "error": "invalid_metadata_format"}
        if metadata is not None and not (
            isinstance(metadata, dict)
            and isinstance(metadata.get("event_type"), str)
            and isinstance(metadata.get("event_payload"), dict)
        ):
            return {"ok": False, "error": "invalid_metadata_schema"}
        ts = self._new_ts()
        posted = Posted(
            channel,
            ts,
            str(args.get("text", "")),
            str(args.get("thread_ts") or ""),
            args.get("blocks") or [],
            metadata=metadata,
            user=self.bot_user_id,
            bot_id=self.bot_id,
        )
        self.messages.append(posted)
        key = (channel, posted.thread_ts)
        self.first_post_at.setdefault(key, time.monotonic())
        self._post_events.setdefault(key, asyncio.Event()).set()
        return {"ok": True, "channel": channel, "ts": ts, "message": posted.wire(with_metadata=True)}

    def _m_conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        """A thread, parent first then replies oldest first, `limit` per page (cursor: base64 "next_ts:<ts>");
        metadata only with include_all_metadata. An unknown ts is thread_not_found, as on Slack."""
        channel, ts = str(args.get("channel") or ""), str(args.get("ts") or "")
        if not channel or not ts:
            return {"ok": False, "error": "invalid_arguments"}
        in_channel = [m for m in self.messages if m.channel == channel]
        target = next((m for m in in_channel if m.ts == ts), None)
        if target is None:
            return {"ok": False, "error": "thread_not_found"}
        root = target.thread_ts or target.ts
        parent = next((m for m in in_channel if m.ts == root), None)
        replies = sorted((m for m in in_channel if m.thread_ts == root and m.ts != root), key=lambda m: float(m.ts))
        thread = ([parent] if parent is not None else []) + replies
        page = self._page(thread, args, newest_first=False)
        if "error" in page:
            return page
        messages = page.pop("messages")
        wired = [m.wire(with_metadata=_flag(args.get("include_all_metadata"))) for m in messages]
        for m, out in zip(messages, wired, strict=True):
            if m is parent and replies:
                out.update(
                    thread_ts=root,
                    reply_count=len(replies),
                    reply_users=sorted({r.user for r in replies}),
                    latest_reply=replies[-1].ts,
                )
            elif m is not parent and parent is not None:
                out["parent_user_id"] = parent.user
        return {"ok": True, "messages": wired, **page}

    def _m_conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        """A channel's top-level messages, newest first, `limit` per page; metadata only with include_all_metadata."""
        channel = str(args.get("channel") or "")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        top = [m for m in self.messages if m.channel == channel and m.thread_ts in ("", m.ts)]
        page = self._page(sorted(top, key=lambda m: float(m.ts), reverse=True), args, newest_first=True)
        if "error" in page:
            return page
        wired = [m.wire(with_metadata=_flag(args.get("include_all_metadata"))) for m in page.pop("messages")]
        return {"ok": True, "messages": wired, **page}

    def _page(self, ordered: list[Posted], args: dict[str, Any], *, newest_first: bool) -> dict[str, Any]:
        """`ordered` cut to oldest/latest (exclusive unless inclusive) and to one page of `limit` from `cursor`."""
        inclusive = _flag(args.get("inclusive"))
        oldest, latest = float(args.get("oldest") or 0), float(args.get("latest") or "inf")
        ordered = [
            m for m in ordered if (oldest <= float(m.ts) <= latest if inclusive else oldest < float(m.ts) < latest)
        ]
        if args.get("cursor"):
            start = _cursor_ts(str(args["cursor"]))
            if start is None:
                return {"ok": False, "error": "invalid_cursor"}
            ordered = [
                m for m in ordered if (float(m.ts) <= float(start) if newest_first else float(m.ts) >= float(start))
            ]
        limit = max(1, min(int(args.get("limit") or 100), 1000))
        messages, rest = ordered[:limit], ordered[limit:]
        return {
            "messages": messages,
            "has_more": bool(rest),
            "response_metadata": {"next_cursor": _cursor(rest[0].ts) if rest else ""},
        }

    def _m_chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        self.updates.append(args)
        return {"ok": True, "channel": args.get("channel"), "ts": args.get("ts"), "text": args.get("text", "")}

    def _m_chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        self.ephemerals.append(args)
        return {"ok": True, "message_ts": self._new_ts()}

    def _m_reactions_add(self, args: dict[str, Any]) -> dict[str, Any]:
        key = (str(args.get("channel")), str(args.get("timestamp")), str(args.get("name")))
        if key in self.reactions:
            return {"ok": False, "error": "already_reacted"}
        self.reactions.add(key)
        return {"ok": True}

    def _m_reactions_remove(self, args: dict[str, Any]) -> dict[str, Any]:
        key = (str(args.get("channel")), str(args.get("timestamp")), str(args.get("name")))
        if key not in self.reactions:
            return {"ok": False, "error": "no_reaction"}
        self.reactions.discard(key)
        return {"ok": True}

    def _m_apps_connections_open(self, _args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/link/?ticket={uuid.uuid4().hex}"}

    def _m_files_getUploadURLExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("filename") or not args.get("length"):
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F{uuid.uuid4().hex[:10].upper()}"
        return {"ok": True, "upload_url": f"http://127.0.0.1:{self.port}/upload/{file_id}", "file_id": file_id}

    def _m_files_completeUploadExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        files = args.get("files") or []
        missing = [f["id"] for f in files if f.get("id") not in self.uploads]
        if missing:
            return {"ok": False, "error": "file_not_found"}
        return {"ok": True, "files": [{"id": f["id"], "title": f.get("title", "")} for f in files]}

    async def _upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        self.uploads[file_id] = await request.read()
        self.calls.append(
            Call("upload", {"file_id": file_id, "bytes": len(self.uploads[file_id])}, 200, time.monotonic())
        )
        return web.Response(text=f"OK - {len(self.uploads[file_id])}")

    # --- Socket Mode ---

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        hello = {"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0001"}}
        await ws.send_json(hello)
        self.connected.set()
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            envelope_id = str(data.get("envelope_id", ""))
            self.acks[envelope_id] = data
            self._ack_events.setdefault(envelope_id, asyncio.Event()).set()
        self._sockets.remove(ws)
        return ws

    async def push(self, payload: dict[str, Any], *, kind: str = "events_api", retry_attempt: int = 0) -> str:
        """Send one envelope to the connected client; returns its envelope id."""
        await asyncio.wait_for(self.connected.wait(), timeout=10)
        envelope_id = uuid.uuid4().hex
        self._ack_events[envelope_id] = asyncio.Event()
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind != "events_api",
            "retry_attempt": retry_attempt,
            "retry_reason": "timeout" if retry_attempt else "",
        }
        await self._sockets[-1].send_json(envelope)
        return envelope_id

    async def wait_ack(self, envelope_id: str, timeout: float = 10.0) -> dict[str, Any]:
        await asyncio.wait_for(self._ack_events[envelope_id].wait(), timeout=timeout)
        return self.acks[envelope_id]
