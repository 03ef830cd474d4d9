"""API keys: who may call what. The service knows keys only by their SHA-256, read from
``API_KEYS_FILE`` (a JSON list of ``{"name", "role", "sha256", "channel"?}``) and read again when
the file changes, so that keys are rotated without a restart. Roles: ``channel`` (a channel that
takes residents' requests: the web site, an app), ``centre`` (the hotline centre's desk) and
``department:<code>``; what each may do is ``domain.MAY``. Each key has its own rate limit."""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from aiolimiter import AsyncLimiter
from pydantic import BaseModel, ConfigDict, StringConstraints, TypeAdapter, ValidationError

from shared.logs import get_logger

log = get_logger(__name__)

ROLE_PATTERN = r"^(channel|centre|department:[a-z0-9_]+)$"
Channel = Literal["web", "app"]


@dataclass(frozen=True, slots=True)
class ApiKey:
    name: str
    role: str
    channel: Channel = "web"  # what a channel key's requests arrive as


class KeyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    role: Annotated[str, StringConstraints(pattern=ROLE_PATTERN)]
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    channel: Channel = "web"


_ENTRIES = TypeAdapter(list[KeyEntry])


class KeyFileError(ValueError):
    """The keys file cannot be used; the message names the entry and field, never a hash."""


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_entry(name: str, role: str, key: str, channel: Channel | None = None) -> dict[str, str]:
    """A line of the keys file for ``key`` (what a tool writes; the key itself is not in it)."""
    entry = {"name": name, "role": role, "sha256": digest(key)}
    return entry | {"channel": channel} if channel else entry


def parse_keys(raw: bytes, where: str) -> tuple[tuple[bytes, ApiKey], ...]:
    """The keys of a file's text, each with its hash; KeyFileError if any entry is wrong."""
    try:
        entries = _ENTRIES.validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False)
        )
        raise KeyFileError(f"{where}: {problems}") from None
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise KeyFileError(f"{where}: a name is used twice")
    if len({e.sha256 for e in entries}) != len(entries):
        raise KeyFileError(f"{where}: a key is listed twice")
    return tuple((bytes.fromhex(e.sha256), ApiKey(e.name, e.role, e.channel)) for e in entries)


class KeyRing:
    """The keys of ``API_KEYS_FILE``. Read at start (a file that cannot be used stops the service),
    then again whenever the file's modification time, size or inode changes. A file that breaks
    later (missing, or invalid) leaves no key valid until it is fixed: a revoked key must not live
    on because its replacement file was bad."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._keys: tuple[tuple[bytes, ApiKey], ...] = ()
        if path is not None:
            self._stamp, self._keys = self._read(path)

    def find(self, presented: str | None) -> ApiKey | None:
        """The key presented, if it is known. Every entry is compared in constant time, so that how
        long it takes tells nothing of which entry (if any) was close."""
        if not presented or self.path is None:
            return None
        self._refresh(self.path)
        wanted = hashlib.sha256(presented.encode()).digest()
        found = None
        for known, key in self._keys:
            if hmac.compare_digest(known, wanted) and found is None:
                found = key
        return found

    def named(self, name: str) -> tuple[bytes, ApiKey] | None:
        """The key of that name now, with its hash: a console session lives only as long as the key
        it was opened with (``console.session``), so a rotated or revoked key ends it."""
        if self.path is None:
            return None
        self._refresh(self.path)
        return next(((known, key) for known, key in self._keys if key.name == name), None)

    def _refresh(self, path: Path) -> None:
        try:
            stamp = _stamp(path)
        except OSError:
            stamp = None
        if stamp == self._stamp:  # unchanged (or still missing: said once)
            return
        try:
            self._stamp, self._keys = self._read(path)
            log.info("api keys loaded", keys=len(self._keys))
        except (OSError, KeyFileError) as exc:
            self._stamp, self._keys = stamp, ()
            log.error("api keys unusable: no key is valid until the file is fixed", error=str(exc))

    @staticmethod
    def _read(path: Path) -> tuple[tuple[int, int, int], tuple[tuple[bytes, ApiKey], ...]]:
        try:
            stamp = _stamp(path)
            return stamp, parse_keys(path.read_bytes(), str(path))
        except FileNotFoundError:
            raise KeyFileError(f"API_KEYS_FILE: no such file {path}") from None


def _stamp(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_mtime_ns, st.st_size, st.st_ino


class RateLimits:
    """``rate`` requests per second per key (aiolimiter's leaky bucket). A request over it is
    refused (429), not queued: a client that sends too fast is told so at once."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._limits: dict[str, AsyncLimiter] = {}

    async def take(self, key: ApiKey) -> bool:
        limit = self._limits.get(key.name)
        if limit is None:
            limit = self._limits[key.name] = AsyncLimiter(self.rate, 1.0)
        if not limit.has_capacity():
            return False
        await limit.acquire()  # at once: there is capacity
        return True
