"""`POST /api/admin/ingest` and `POST /api/admin/sync`: change the knowledge base of the running service.

The embedded vector store belongs to the serving process, so `supportbot ingest` next to a running service sends
the work here (with the per-run local key), and automation uses an admin key (`ADMIN_KEYS`). A path sent with an
admin key must lie under one of the configured `KNOWLEDGE_PATHS` folders: an API key must never be able to make the
bot quote an arbitrary server file to customers. The local key (readable only by the service's own user) may name
any path, as the CLI could read it anyway.

Every authenticated call is written to the audit log (the console's): who (`admin:<key hash prefix>`, or `local`
for the CLI's per-run key), what (ingest, sync, or a refused path), and the counts; never the request's body.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog
from aiohttp import web

from bot.ports import AuditTrail, KnowledgeIndex
from bot.store.audit import key_id
from channels.api.handler import error, refused

log = structlog.get_logger(__name__)

MAX_PATHS = 1000


@dataclass(frozen=True, slots=True)
class AdminConfig:
    admin_keys: tuple[str, ...] = ()
    local_key: str = ""
    knowledge_paths: tuple[str, ...] = ()  # the folders admin keys may name (and what /sync ingests)


def _resolve(raw: Sequence[str]) -> list[Path]:
    return [Path(p).expanduser().resolve() for p in raw]


class AdminEndpoints:
    """The two admin routes over the `KnowledgeIndex` port."""

    def __init__(self, config: AdminConfig, index: KnowledgeIndex | None, audit: AuditTrail | None = None) -> None:
        self._config = config
        self._index = index
        self._audit = audit
        self._roots = [Path(p).expanduser().resolve() for p in config.knowledge_paths]

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/api/admin/ingest", self.ingest), web.post("/api/admin/sync", self.sync)]

    def _who(self, request: web.Request) -> str | None:
        """ "local", "admin:<key id>", or None for anyone else (compared in constant time against every key)."""
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented:
            return None
        candidate = presented.strip().encode()
        found = None
        for key in self._config.admin_keys:
            if key and hmac.compare_digest(candidate, key.encode()):
                found = f"admin:{key_id(key)}"
        if self._config.local_key and hmac.compare_digest(candidate, self._config.local_key.encode()):
            found = "local"
        return found

    async def _record(self, who: str, action: str, target: str, detail: dict[str, object]) -> None:
        if self._audit is not None:
            await self._audit.record(who, action, target, detail)

    async def ingest(self, request: web.Request) -> web.Response:
        who = self._who(request)
        if who is None:
            return refused(request, 401, "unauthorized", "an admin key is needed", {"WWW-Authenticate": "Bearer"})
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            body = None
        raw = body.get("paths") if isinstance(body, dict) else None
        if not isinstance(raw, list) or not raw or len(raw) > MAX_PATHS or not all(isinstance(p, str) for p in raw):
            return refused(request, 400, "bad_request", 'body must be JSON: {"paths": ["/abs/path", ...]}')
        paths = await asyncio.to_thread(_resolve, raw)  # symlinks resolved before the KNOWLEDGE_PATHS check
        if who != "local":
            outside = [str(p) for p in paths if not any(p == r or r in p.parents for r in self._roots)]
            if outside:
                detail: dict[str, object] = {"paths": len(paths), "outside": len(outside)}
                await self._record(who, "api_ingest_refused", outside[0], detail)
                return refused(request, 403, "forbidden", f"not under KNOWLEDGE_PATHS: {', '.join(outside[:3])}")
        return await self._run(paths, who, "api_ingest")

    async def sync(self, request: web.Request) -> web.Response:
        who = self._who(request)
        if who is None:
            return refused(request, 401, "unauthorized", "an admin key is needed", {"WWW-Authenticate": "Bearer"})
        if not self._roots:
            return error(409, "KNOWLEDGE_PATHS is not set: nothing to sync")
        return await self._run(self._roots, who, "api_sync")

    async def _run(self, paths: Sequence[Path], who: str, action: str) -> web.Response:
        target = str(paths[0]) if len(paths) == 1 else f"{len(paths)} paths"
        if self._index is None:
            await self._record(who, action, target, {"paths": len(paths), "result": "no index"})
            return error(503, "this service has no writable knowledge index")
        report = await self._index.ingest(list(paths))
        log.info("admin.ingested", by=who, paths=len(paths))
        await self._record(who, action, target, {"paths": len(paths), "summary": report.summary().splitlines()[0]})
        return web.json_response({"summary": report.summary(), "docs_deleted": report.docs_deleted})
