"""Pruning: rows the hot path never reads again leave by a policy, a few thousand at a time.

What may go (``Prunable``): every service's inbox ids, and what a service lists beside them
(escalation's ended clocks, notify's finished notifications and their attempts), once older than the
redelivery horizon (``PRUNE_AFTER_DAYS``, 30 days by default). One horizon for all of them, as each
also stands between a redelivered event and its effect: the inbox refuses an event seen before, and
a clock or a notification made again from an event is dropped by its id (``ON CONFLICT DO
NOTHING``). Past the horizon an event comes back only from a deliberate replay of an old log,
never from Kafka's redelivery (its retention is 7 days by default, and a consumer's offsets are
committed within seconds). The record (orders, dispatches, history, the api's read model) is kept.

A round deletes at most ``PRUNE_BATCH_ROWS`` rows a table, each table in a transaction of its own,
found by an index on its time; while a round finds full batches the next follows at once (a
backlog, as when pruning is first switched on over a year), else after ``PRUNE_INTERVAL_SECONDS``
(0: never). See docs/operations.md ("Pruning") and docs/configuration.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property

from sqlalchemy import Table, TextClause, text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import retry
from shared.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class Prunable:
    """Rows of ``table`` that may go once ``column`` (a wall-clock time) is past the horizon and
    ``ended`` (SQL) holds: the rows the hot path will never read again."""

    table: str
    column: str
    ended: str = "true"

    @cached_property
    def statement(self) -> TextClause:
        """One batch: found in the index on ``column``, deleted by their physical address, the
        conditions checked again on each row (a row changed meanwhile is a new version, judged
        afresh, and one reopened stays). Rows another transaction holds are left for the next
        batch: pruning never waits, so never takes part in a deadlock."""
        old = f"{self.ended} AND {self.column} < :before"
        return text(
            f"DELETE FROM {self.table} WHERE {old} AND ctid = ANY(ARRAY("
            f"SELECT ctid FROM {self.table} WHERE {old} ORDER BY {self.column} LIMIT :n "
            "FOR UPDATE SKIP LOCKED))"
        )


def inbox(table: Table) -> Prunable:
    """A service's inbox: an event id may go once past the horizon."""
    return Prunable(table.name, "received_at")


def horizon(now: datetime, after_days: float) -> datetime:
    """The moment before which rows may go."""
    return now - timedelta(days=after_days)


def more_waiting(pruned: Mapping[str, int], batch: int) -> bool:
    """A table whose batch was full may hold more: the next round follows at once."""
    return any(n >= batch for n in pruned.values())


async def prune_once(
    engine: AsyncEngine, prunables: Iterable[Prunable], before: datetime, batch: int
) -> dict[str, int]:
    """One batch of each table, each in a short transaction of its own; rows deleted, by table."""
    pruned: dict[str, int] = {}
    for p in prunables:
        async with engine.begin() as conn:
            result = await conn.execute(p.statement, {"before": before, "n": batch})
        pruned[p.table] = pruned.get(p.table, 0) + int(result.rowcount)
    return pruned


async def prune_forever(
    service: str,
    engine: AsyncEngine,
    prunables: Sequence[Prunable],
    *,
    after_days: float,
    interval: float,
    batch: int,
) -> None:
    """The housekeeping task: rounds of ``prune_once`` by the policy above, failures retried with
    backoff (``retry.forever``). An interval of 0 turns it off."""
    if interval <= 0 or not prunables:
        return

    async def step() -> bool:
        pruned = await prune_once(engine, prunables, horizon(datetime.now(UTC), after_days), batch)
        if any(pruned.values()):
            log.info("pruned", service=service, **pruned)
        return more_waiting(pruned, batch)

    await retry.forever("prune", step, idle=retry.sleeper(interval), cap=interval)
