"""Channels behind one interface. Adding a channel means one class here and one line in ``channels``.

Every request carries ``Idempotency-Key: <notification id>``, so a gateway that saw a request
before (a send whose success we never recorded) can drop the repeat: sent once, even across a crash.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import ssl
import time
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import orjson

from shared.logs import get_logger
from shared.pii import mask_phone
from shared.settings import Settings

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Message:
    notification_id: str
    work_order_id: str
    audience: str
    address: str  # a phone number for residents, a department code or supervisor level otherwise
    template: str
    body: str


class Channel(Protocol):
    name: str

    async def send(self, message: Message) -> None:
        """Deliver or raise; the caller records the attempt either way."""


class LogChannel:
    """For development: the message goes to the service log (with the phone masked)."""

    name = "log"

    async def send(self, message: Message) -> None:
        to = mask_phone(message.address) if message.audience == "resident" else message.address
        log.info(
            "notification",
            audience=message.audience,
            to=to,
            work_order_id=message.work_order_id,
            template=message.template,
            body=message.body,
        )


class Poster(Protocol):
    async def post(self, url: str, **kwargs: Any) -> httpx.Response: ...


class Clients:
    """HTTP clients for many sends at once. httpx's connection pool looks at each of its
    connections whenever a request starts or ends, so its cost per request grows with the
    connections in flight (1,000 requests 100 at a time: 11.5 s of CPU through one pool, 3.6
    through pools of 4; docs/performance.md): many small pools instead, each request to the least
    busy, sharing one TLS context (loading the CAs takes a while)."""

    PER_POOL = 8

    def __init__(self, connections: int, timeout: float) -> None:
        pools = max(1, math.ceil(connections / self.PER_POOL))
        limits = httpx.Limits(max_connections=self.PER_POOL, max_keepalive_connections=self.PER_POOL)
        context = ssl.create_default_context()
        self.pools = [httpx.AsyncClient(timeout=timeout, limits=limits, verify=context) for _ in range(pools)]
        self.busy = [0] * pools

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        i = min(range(len(self.pools)), key=self.busy.__getitem__)
        self.busy[i] += 1
        try:
            return await self.pools[i].post(url, **kwargs)
        finally:
            self.busy[i] -= 1

    async def aclose(self) -> None:
        for pool in self.pools:
            await pool.aclose()


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over ``<timestamp>.<body>``: the receiver recomputes it, and rejects old timestamps."""
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class WebhookChannel:
    """JSON to an HTTP endpoint, signed with a shared secret, with a timestamp against replays."""

    name = "webhook"

    def __init__(self, url: str, secret: bytes, client: Poster) -> None:
        self.url, self.secret, self.client = url, secret, client

    async def send(self, message: Message) -> None:
        body = orjson.dumps(
            {
                "notification_id": message.notification_id,
                "work_order_id": message.work_order_id,
                "audience": message.audience,
                "recipient": message.address,
                "template": message.template,
                "text": message.body,
            }
        )
        timestamp = str(int(time.time()))
        headers = {
            "content-type": "application/json",
            "x-whistle-timestamp": timestamp,
            "x-whistle-signature": signature(self.secret, timestamp, body),
            "idempotency-key": message.notification_id,
        }
        response = await self.client.post(self.url, content=body, headers=headers)
        response.raise_for_status()


class SmsChannel:
    """An SMS gateway over HTTP: the resident's number and the text."""

    name = "sms"

    def __init__(self, url: str, client: Poster) -> None:
        self.url, self.client = url, client

    async def send(self, message: Message) -> None:
        if not message.address:
            raise ValueError("no phone number to send to")
        body = {"to": message.address, "text": message.body, "reference": message.notification_id}
        response = await self.client.post(
            self.url, json=body, headers={"idempotency-key": message.notification_id}
        )
        response.raise_for_status()


def channels(settings: Settings, client: Poster) -> dict[str, Channel]:
    """Each channel name to what delivers it; an unconfigured channel falls back to the log."""
    fallback = LogChannel()
    webhook: Channel = fallback
    if settings.notify_webhook_url:
        secret = settings.notify_webhook_secret.get_secret_value().encode()
        webhook = WebhookChannel(settings.notify_webhook_url, secret, client)
    sms: Channel = SmsChannel(settings.notify_sms_url, client) if settings.notify_sms_url else fallback
    return {"log": fallback, "webhook": webhook, "sms": sms}


class NoChannel(RuntimeError):
    """Production without a real channel: notify would tell residents and departments nothing."""


DEVELOPMENT_SECRET = Settings.model_fields["notify_webhook_secret"].default.get_secret_value()


def production_problems(settings: Settings) -> list[str]:
    """What keeps notify from running in production: outside development, the log channel would
    swallow every message silently."""
    if settings.environment != "production":
        return []
    problems = []
    if not settings.notify_sms_url:
        problems.append("NOTIFY_SMS_URL is not set: residents' SMS would go to the log")
    if not settings.notify_webhook_url:
        problems.append("NOTIFY_WEBHOOK_URL is not set: departments and supervisors would not be told")
    elif settings.notify_webhook_secret.get_secret_value() == DEVELOPMENT_SECRET:
        problems.append("NOTIFY_WEBHOOK_SECRET is the development default: receivers could be forged")
    return problems
