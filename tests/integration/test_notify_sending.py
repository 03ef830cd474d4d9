"""Notify's sender against the real PostgreSQL, with channels of the test's own: a send holds no
transaction, connection or row lock, the claim (a lease) keeps other rounds off the rows being
sent, and the outcomes are recorded afterwards; a round that dies between the two sends again
once its lease has passed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from services.notify import store
from services.notify.channels import Channel, Message
from services.notify.sender import Sender
from shared.db import create_engine
from shared.settings import Settings
from tests.integration.databases import fresh_database
from tests.integration.flows import PHONE, eventually

pytestmark = pytest.mark.integration
PREFIX = "whistle_test_sending"
SETTINGS = Settings(
    database_prefix=PREFIX,
    notify_breaker_failures=2,
    notify_breaker_cooldown_seconds=60,
    notify_rate_per_second=100,
    notify_max_attempts=8,
    notify_backoff_seconds=30,
    notify_backoff_cap_seconds=60,
)
_IDLE_IN_TRANSACTION = text(
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
    "AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'"
)
_LOCK = text("SELECT id FROM notifications WHERE id = :id FOR UPDATE NOWAIT")


class Watching:
    """A channel that, while it sends, looks from another connection at what the round holds.
    Channels send at once: one look at a time, or one would see the other's transaction."""

    looking = asyncio.Lock()

    def __init__(self, name: str, sending: AsyncEngine, observer: AsyncEngine, fails: bool = False) -> None:
        self.name, self.observer, self.fails = name, observer, fails
        assert isinstance(sending.pool, QueuePool)
        self.pool = sending.pool  # the sender's
        self.sent: list[Message] = []
        self.seen: list[dict[str, Any]] = []

    async def send(self, message: Message) -> None:
        self.sent.append(message)
        async with self.looking, self.observer.connect() as conn:  # rolled back on leaving
            try:
                await conn.execute(_LOCK, {"id": message.notification_id})
                locked = False
            except Exception:  # LockNotAvailable: the round still holds its claim's transaction
                locked = True
                await conn.rollback()
            now = datetime.now(UTC)
            taken = await store.claim_pending(conn, now, now, now + timedelta(minutes=5))
            self.seen.append(
                {
                    "checked_out": self.pool.checkedout(),
                    "idle_in_transaction": (await conn.execute(_IDLE_IN_TRANSACTION)).scalar_one(),
                    "locked": locked,
                    "taken_by_another_round": [n.id for n in taken],
                }
            )
        if self.fails:
            raise RuntimeError("gateway down")


@pytest.fixture
async def engines() -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    async with fresh_database(PREFIX, "notify") as engine:
        observer = create_engine(SETTINGS.database_url_for("notify"))
        yield engine, observer
        await observer.dispose()


def notification(id: str, audience: str, recipient: str, channel: str) -> dict[str, Any]:
    return {
        "id": id,
        "work_order_id": "WO-H-1",
        "audience": audience,
        "recipient": recipient,
        "channel": channel,
        "template": "received",
        "body": "【12345】您反映的问题已受理",
        "status": "pending",
        "attempts": 0,
        "event_time": datetime.now(UTC),
        "hold_until": None,
    }


async def planned(engine: AsyncEngine, *rows: dict[str, Any]) -> None:
    """The notifications, due, in this order (claims go oldest first)."""
    async with engine.begin() as conn:
        await store.save_contacts(conn, {("WO-H-1", "WO-H-1"): ("孙大爷", PHONE)})
        await store.add(conn, list(rows))
        for i, row in enumerate(rows):
            created = datetime.now(UTC) - timedelta(minutes=len(rows) - i)
            await conn.execute(
                text("UPDATE notifications SET created_at = :t, retry_at = :t WHERE id = :id"),
                {"t": created, "id": row["id"]},
            )


async def rows(engine: AsyncEngine, sql: str) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(text(sql))).all())


async def test_a_round_sends_with_no_transaction_held_and_records_afterwards(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    engine, observer = engines
    sms = Watching("sms", engine, observer)
    webhook = Watching("webhook", engine, observer, fails=True)
    staged: list[bool] = []
    channels: dict[str, Channel] = {"sms": sms, "webhook": webhook, "log": Watching("log", engine, observer)}
    sender = Sender(SETTINGS, channels, engine, store.Outbox.__table__, lambda: staged.append(True))  # type: ignore[arg-type]
    await planned(
        engine,
        notification("N-sent", "resident", "WO-H-1", "sms"),
        notification("N-dept", "department", "heat", "webhook"),
        notification("N-sup", "supervisor", "supervisor:street", "webhook"),
        notification("N-left", "department", "heat", "webhook"),  # the breaker opened before it
    )

    before = datetime.now(UTC)
    assert await sender.send_pending_once() == 3
    after = datetime.now(UTC)

    # While each was sent: no connection checked out, none idle in a transaction, the row not
    # locked, and the lease kept another round off every row of this one.
    expected = {"checked_out": 0, "idle_in_transaction": 0, "locked": False, "taken_by_another_round": []}
    assert sms.seen + webhook.seen == [expected] * 3
    assert [m.notification_id for m in sms.sent + webhook.sent] == ["N-sent", "N-dept", "N-sup"]
    assert sms.sent[0].address == PHONE  # the one place the number goes: the gateway

    found = {
        r.id: r
        for r in await rows(engine, "SELECT id, status, attempts, last_error, retry_at FROM notifications")
    }
    assert (found["N-sent"].status, found["N-sent"].attempts) == ("sent", 1)
    for failed in ("N-dept", "N-sup"):
        n = found[failed]
        assert (n.status, n.attempts, n.last_error) == ("pending", 1, "RuntimeError: gateway down")
        assert before + timedelta(seconds=30) <= n.retry_at <= after + timedelta(seconds=60)
    left = found["N-left"]
    assert (left.status, left.attempts, left.last_error) == ("pending", 0, None)
    assert left.retry_at <= after  # released: due again at the next round

    attempts = await rows(
        engine, "SELECT notification_id, attempt, channel, error FROM notification_attempts"
    )
    assert sorted(attempts) == [
        ("N-dept", 1, "webhook", "RuntimeError: gateway down"),
        ("N-sent", 1, "sms", None),
        ("N-sup", 1, "webhook", "RuntimeError: gateway down"),
    ]
    [event] = await rows(engine, "SELECT topic, key, payload FROM outbox")
    assert event.key == "WO-H-1" and b'"notification.sent"' in bytes(event.payload)
    assert PHONE.encode() not in bytes(event.payload)
    assert staged == [True]


async def test_a_round_that_died_after_its_claim_is_sent_again_once_the_lease_has_passed(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    engine, observer = engines
    webhook = Watching("webhook", engine, observer)
    channels: dict[str, Channel] = {"webhook": webhook}
    sender = Sender(SETTINGS, channels, engine, store.Outbox.__table__, lambda: None)  # type: ignore[arg-type]
    await planned(engine, notification("N-1", "department", "heat", "webhook"))

    now = datetime.now(UTC)
    lease = now + timedelta(seconds=1)
    async with engine.begin() as conn:  # a round claims, then dies before it records anything
        assert [n.id for n in await store.claim_pending(conn, now, now, lease)] == ["N-1"]

    assert await sender.send_pending_once() == 0  # held by the lease
    assert await eventually(sender.send_pending_once, within=5) == 1  # once it has passed
    assert datetime.now(UTC) >= lease
    assert [m.notification_id for m in webhook.sent] == ["N-1"]  # the gateway's idempotency key

    async with engine.begin() as conn:  # the dead round's record, were it to come, is ignored
        outcome = {"id": "N-1", "status": "failed", "attempts": 1, "last_error": "late"}
        assert await store.finish(conn, [outcome], lease) == set()
    [(status, attempts)] = await rows(engine, "SELECT status, attempts FROM notifications")
    assert (status, attempts) == ("sent", 1)
