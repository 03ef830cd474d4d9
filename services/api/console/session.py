"""The console's sessions: an API key, presented once at sign-in, exchanged for a signed cookie
(HMAC-SHA256 with the console's secret; HttpOnly, SameSite=Strict, expiring). The cookie holds the
key's name and role, when it expires, a CSRF token, and a fingerprint of the key's hash (an HMAC of
it, never the key nor its hash), so that a session ends when its key is rotated or revoked.

Cross-site requests: SameSite=Strict keeps the cookie off any request another site starts, and
every form also carries the session's CSRF token (checked in constant time); a POST whose Origin
is another site's is refused before either. No I/O."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

import orjson

COOKIE = "whistle_console"


@dataclass(frozen=True, slots=True)
class Session:
    name: str  # the key's
    role: str
    expires: int  # epoch seconds
    csrf: str
    fingerprint: str

    @property
    def department(self) -> str | None:
        return self.role.removeprefix("department:") if self.role.startswith("department:") else None


class Sessions:
    """Issues and reads session cookies signed with ``secret``; ``lifetime`` in seconds."""

    def __init__(self, secret: bytes, lifetime: int) -> None:
        self.secret, self.lifetime = secret, lifetime

    def fingerprint(self, key_hash: bytes) -> str:
        return hmac.new(self.secret, b"key:" + key_hash, hashlib.sha256).hexdigest()[:32]

    def issue(self, name: str, role: str, key_hash: bytes, now: float) -> tuple[str, Session]:
        session = Session(
            name, role, int(now) + self.lifetime, secrets.token_urlsafe(24), self.fingerprint(key_hash)
        )
        payload = {"n": name, "r": role, "e": session.expires, "c": session.csrf, "f": session.fingerprint}
        body = _b64(orjson.dumps(payload))
        return f"{body}.{self._sign(body)}", session

    def read(self, cookie: str | None, now: float) -> Session | None:
        """The session a cookie holds, if this console signed it and it has not expired."""
        if not cookie or cookie.count(".") != 1:
            return None
        body, signature = cookie.split(".")
        if not hmac.compare_digest(signature, self._sign(body)):
            return None
        try:
            payload: Any = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            session = Session(payload["n"], payload["r"], int(payload["e"]), payload["c"], payload["f"])
        except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
            return None
        return session if session.expires > now else None

    def still_valid(self, session: Session, current: tuple[bytes, str] | None) -> bool:
        """``current``: the hash and role of the key of the session's name now, if there is one."""
        if current is None:
            return False
        key_hash, role = current
        return role == session.role and hmac.compare_digest(self.fingerprint(key_hash), session.fingerprint)

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self.secret, body.encode(), hashlib.sha256).digest())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def csrf_ok(session: Session, presented: object) -> bool:
    return isinstance(presented, str) and hmac.compare_digest(presented.encode(), session.csrf.encode())


def same_origin(origin: str | None, scheme: str, host: str | None) -> bool:
    """A POST's Origin, when the browser sends one, must be the console's own ("null" is not)."""
    return origin is None or (host is not None and origin == f"{scheme}://{host}")
