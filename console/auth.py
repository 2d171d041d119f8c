"""Who may use the console, and how a browser proves it.

A person logs in with a key (`ADMIN_KEYS`: admins; `REVIEWER_KEYS`: reviewers). The session is a cookie signed
with itsdangerous (HMAC, time-stamped, expires after `session_hours`), `HttpOnly`, `SameSite=Strict`, and `Secure`
unless the request comes over loopback. The signing secret is derived from every key, so all replicas agree and
rotating a key logs everyone out. Each session carries a random CSRF token that every POST must echo.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from itsdangerous import BadSignature, URLSafeTimedSerializer

from bot.store.audit import key_id

ADMIN, REVIEWER = "admin", "reviewer"
COOKIE = "sb_console"
MAX_NAME_CHARS = 64


@dataclass(frozen=True, slots=True)
class Operator:
    """A logged-in person: the role, the key's id (a hash prefix, safe to log) and the name they typed."""

    role: str
    key_id: str
    name: str = ""

    @property
    def actor(self) -> str:
        """How the audit log names them."""
        who = f"{self.role}:{self.key_id}"
        return f"{self.name} ({who})" if self.name else who

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN


class KeyRing:
    """The console's keys. `match` compares against every key in constant time; an admin key wins."""

    def __init__(self, admin_keys: Sequence[str], reviewer_keys: Sequence[str]) -> None:
        self._keys = [(k.encode(), ADMIN) for k in admin_keys if k] + [
            (k.encode(), REVIEWER) for k in reviewer_keys if k
        ]

    def match(self, presented: str) -> tuple[str, str] | None:
        """(role, key id) for a valid key, else None."""
        candidate = presented.strip().encode()
        found: tuple[str, str] | None = None
        for key, role in self._keys:
            if hmac.compare_digest(candidate, key) and (found is None or role == ADMIN):
                found = (role, key_id(key.decode()))
        return found

    def secret(self) -> bytes:
        material = b"\0".join(sorted(k for k, _ in self._keys))
        return hashlib.sha256(b"supportbot-console-session\0" + material).digest()


@dataclass(frozen=True, slots=True)
class Session:
    """What the cookie holds: a CSRF token always, an operator once logged in."""

    csrf: str
    operator: Operator | None = None


def on_loopback(request: web.Request) -> bool:
    try:
        return ipaddress.ip_address(request.remote or "").is_loopback
    except ValueError:
        return False


class Sessions:
    """Reads and writes the signed session cookie."""

    def __init__(self, secret: bytes, max_age_seconds: int) -> None:
        self._signer = URLSafeTimedSerializer(secret, salt="supportbot-console")
        self._max_age = max_age_seconds

    def load(self, request: web.Request) -> Session | None:
        raw = request.cookies.get(COOKIE)
        if not raw:
            return None
        try:
            data: Any = self._signer.loads(raw, max_age=self._max_age)
        except BadSignature:  # also SignatureExpired
            return None
        if not isinstance(data, dict) or not isinstance(data.get("c"), str):
            return None
        operator = None
        if isinstance(data.get("r"), str) and data["r"] in (ADMIN, REVIEWER):
            operator = Operator(data["r"], str(data.get("k", "")), str(data.get("n", ""))[:MAX_NAME_CHARS])
        return Session(data["c"], operator)

    def fresh(self, operator: Operator | None = None) -> Session:
        return Session(secrets.token_urlsafe(24), operator)

    def store(self, response: web.StreamResponse, request: web.Request, session: Session) -> None:
        data: dict[str, str] = {"c": session.csrf}
        if session.operator is not None:
            data |= {"r": session.operator.role, "k": session.operator.key_id, "n": session.operator.name}
        response.set_cookie(
            COOKIE,
            self._signer.dumps(data),
            max_age=self._max_age,
            path="/console",
            httponly=True,
            samesite="Strict",
            secure=not on_loopback(request),
        )

    def clear(self, response: web.StreamResponse) -> None:
        response.del_cookie(COOKIE, path="/console")


def csrf_ok(session: Session, presented: object) -> bool:
    return bool(session.csrf) and isinstance(presented, str) and hmac.compare_digest(presented, session.csrf)


CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
