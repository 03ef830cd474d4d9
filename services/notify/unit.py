"""Notify's batch unit: what a consumed batch loads (the residents of its orders) and writes
(contacts, notifications, who was told what), and how an event becomes planned notifications."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from shared.clock import BusinessClock
from shared.contract import ContactRecorded
from shared.events import derived_id
from shared.messaging import Decoded, OutboxMessage, Tx

from . import store
from .domain import (
    CHANNEL_FOR,
    RESIDENT_STATE,
    catch_up,
    hold_until,
    kept_for_residents_to_come,
    plan,
    residents_to_tell,
)
from .templates import render


@dataclass(frozen=True)
class Manners:
    """Quiet hours for residents, in the jurisdiction's local time."""

    quiet_hours: str
    timezone: str

    def hold(self, audience: str, urgency: str, at: datetime) -> datetime | None:
        return hold_until(audience, urgency, at, self.quiet_hours, self.timezone)


@dataclass
class NotifyBatch:
    """What a consumed batch knows of the orders it is about, and what it will write."""

    latest: datetime | None  # for the business clock
    residents: dict[str, dict[str, str | None]]  # order -> reporter -> state last told of
    contacts: dict[store.Pair, tuple[str | None, str | None]] = field(default_factory=dict)
    told: dict[store.Pair, str] = field(default_factory=dict)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    # States of orders whose resident's contact is not known yet (the contact race): those of the
    # batch's contacts' orders as loaded, and those seen in this batch; what to keep, what was told.
    unheard: dict[str, list[store.Unheard]] = field(default_factory=dict)
    keep_unheard: list[dict[str, Any]] = field(default_factory=list)
    told_unheard: set[str] = field(default_factory=set)


class NotifyUnit:
    """Loads the residents of a batch's orders in one query; writes contacts, notifications and
    who was told what in a few statements; advances the business clock."""

    def __init__(self) -> None:
        self.clock = BusinessClock()

    async def open(self, conn: AsyncConnection, messages: list[Decoded]) -> NotifyBatch:
        orders = sorted({o for m in messages if (o := getattr(m.data, "work_order_id", None))})
        contacted = sorted({m.data.work_order_id for m in messages if isinstance(m.data, ContactRecorded)})
        return NotifyBatch(
            await self.clock.open(conn, messages),
            await store.residents(conn, orders),
            unheard=await store.unheard(conn, contacted),
        )

    async def close(self, conn: AsyncConnection, batch: NotifyBatch) -> list[OutboxMessage]:
        await store.save_contacts(conn, batch.contacts)
        await store.mark_told(conn, batch.told)
        await store.add(conn, batch.notifications)
        keep = [row for row in batch.keep_unheard if row["work_order_id"] not in batch.told_unheard]
        await store.keep_unheard(conn, keep)
        await store.told_unheard(conn, batch.told_unheard)
        return await self.clock.close(conn, batch.latest)


def plan_notifications(
    tx: Tx[NotifyBatch],
    manners: Manners,
    work_order_id: str,
    data: dict[str, Any],
    kind: str | None = None,
    reporter: str | None = None,
) -> None:
    """Record the notifications an event calls for (to all the order's residents, or to one). A state
    no resident is known to hear of yet is kept for the resident to come; a newcomer whose contact
    is the order's first hears of the states kept for them, once each."""
    batch = tx.batch
    kind = kind or tx.event.type
    residents = batch.residents.setdefault(work_order_id, {})
    if reporter is None and kept_for_residents_to_come(kind, data, residents):
        batch.unheard.setdefault(work_order_id, []).append((kind, data, tx.event.id))
        batch.keep_unheard.append(
            {"work_order_id": work_order_id, "event_id": tx.event.id, "event_type": kind, "data": data}
        )
    candidates = {reporter: residents.get(reporter)} if reporter else residents
    _record(tx, manners, work_order_id, kind, data, residents_to_tell(kind, data, candidates), tx.event.id)
    if reporter is not None and (kept := batch.unheard.pop(work_order_id, None)):
        batch.told_unheard.add(work_order_id)
        for state, state_data, cause in catch_up(kept):
            _record(tx, manners, work_order_id, state, state_data, [reporter], cause)


def _record(
    tx: Tx[NotifyBatch],
    manners: Manners,
    work_order_id: str,
    kind: str,
    data: dict[str, Any],
    to_tell: list[str],
    cause: str,
) -> None:
    """The notifications ``kind`` calls for, the residents among them to ``to_tell``; their ids
    derive from the event that caused them (``cause``), so that a redelivery plans none twice."""
    batch = tx.batch
    residents = batch.residents.setdefault(work_order_id, {})
    for resident in to_tell:
        residents[resident] = batch.told[(work_order_id, resident)] = RESIDENT_STATE[kind]
    urgency = str(data.get("urgency") or "normal")
    batch.notifications += [
        {
            "id": derived_id(cause, p.audience, p.recipient, p.template),
            "work_order_id": work_order_id,
            "audience": p.audience,
            "recipient": p.recipient,
            "channel": CHANNEL_FOR[p.audience],
            "template": p.template,
            "body": render(p.template, p.data),
            "status": "pending",
            "attempts": 0,
            "event_time": tx.time,
            "hold_until": manners.hold(p.audience, urgency, tx.time),
        }
        for p in plan(kind, data, to_tell)
    ]
