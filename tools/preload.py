"""A year of history written straight into each service's database, for the bench to measure the
hot path over it (``whistle bench --preload-year``) and for the plans of its queries to be read at
that size (docs/performance.md, "A year of history").

Not through the pipeline: a million orders through the services would take the bench's budget many
times over. Each table is filled by ``INSERT ... SELECT`` over ``generate_series`` in PostgreSQL, so
nothing travels but the statement and the jurisdiction's names. What is written is what the
pipeline would have left after a year with nothing pruned (the worst case, and what a database holds
when the pruning is first switched on):

- every order of the year, one every 365 days / N, over the jurisdiction's compounds and
  categories (a few of each far busier than the rest), a tenth of them grid reports, one in twenty a
  repeat merged into the order before it;
- almost all of them closed: dispatched a minute after the call, signed for within the hour,
  resolved two days later and closed by the resident's rating after three; those of the last three
  days signed for and still open, their resolve-by clocks running into the future (nothing fires
  during the bench);
- with what each service keeps of them: intake's orders, dispatch's orders, dispatches (one in ten
  with an assisting department) and history, escalation's clocks, notify's notifications and
  attempts (its contacts only where their retention has not passed), the api's read model, and
  every service's inbox of the event ids it took.

An order's attributes are a function of its number alone (``_ORDERS``), so that every database
tells of the same orders. The ids (``WO-H-Y…``, ``WO-G-Y…``) cannot meet the bench's own.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from shared.db import migrate
from shared.reference import Jurisdiction, load_jurisdiction
from shared.settings import Settings

SERVICES = ("intake", "dispatch", "escalation", "notify", "api")
CHUNK = 100_000  # orders a statement: each a transaction of its own, a few seconds long
OPEN_DAYS = 3  # the orders of the last days are still open (signed for, not resolved)

# One row per order number i (:lo to :hi), the same in every database. h1..h4 are four numbers in
# [0, 1) mixed from i (Knuth's multiplicative hash); powers of them skew the choice towards the
# first places and categories of the lists, as real calls crowd on a few.
_ORDERS = """
WITH o AS (
  SELECT i,
    CASE WHEN i % 10 = 0 THEN 'WO-G-Y' ELSE 'WO-H-Y' END || lpad(i::text, 8, '0') AS id,
    CASE WHEN i % 10 = 0 THEN 'grid' ELSE 'hotline' END AS source,
    $3::timestamptz + (i - 1) * $4::interval AS r,
    1 + floor(power(((i * 2654435761) % 4294967296)::float8 / 4294967296, 1.7::float8)
      * cardinality($5::text[]))::int AS c,
    1 + floor(power(((i * 40503 + 977) % 65536)::float8 / 65536, 2.2::float8)
      * cardinality($7::text[]))::int AS p,
    ((i * 69069 + 1) % 1000) AS u,
    i % 20 = 7 AS merged,
    i % 10 = 3 AS assisted
  FROM generate_series($1::bigint, $2::bigint) AS i
), v AS (
  SELECT o.*, r > $12::timestamptz - interval '%(open_days)s days' AS still_open,
    CASE WHEN u < 10 THEN 'emergency' WHEN u < 60 THEN 'urgent' ELSE 'normal' END AS urgency,
    k.category, k.category_name, k.lead, pl.street, pl.community, pl.grid, pl.compound,
    '1' || lpad(((i * 7919) %% 100000000)::text, 10, '0') AS phone
  FROM o
  -- joined rather than subscripted: a subscript of an array parameter reads the whole array
  JOIN unnest($5::text[], $6::text[], $11::text[]) WITH ORDINALITY AS k(category, category_name, lead, c)
    USING (c)
  JOIN unnest($7::text[], $8::text[], $9::text[], $10::text[])
    WITH ORDINALITY AS pl(street, community, grid, compound, p) USING (p)
)
""".replace("%(open_days)s", str(OPEN_DAYS)).replace("%%", "%")

# Event ids: uuid-shaped, from md5 of the event's kind and order, spread over the index as real ids.
EVENT = "md5('{kind}' || i)::uuid::text"
# An order's moments: dispatched, signed for, resolved, closed.
DISPATCHED, ACCEPTED, RESOLVED, CLOSED = (
    "r + interval '1 minute'",
    "r + interval '40 minutes'",
    "r + interval '2 days'",
    "r + interval '3 days'",
)


def _inbox(kinds: Sequence[tuple[str, str, str]], where: str = "NOT merged") -> str:
    """Inbox rows of the events (kind, topic, when) a service took for each order."""
    selects = " UNION ALL ".join(
        f"SELECT {EVENT.format(kind=kind)}, '{topic}', {at} FROM v WHERE {where}"
        + (" AND NOT still_open" if at in (RESOLVED, CLOSED) else "")
        for kind, topic, at in kinds
    )
    return f"INSERT INTO inbox (event_id, topic, received_at) {selects}"


LIFECYCLE = "workorders.events.v1"
# The notifications of an order (notify's rules): the resident told of the call, the signing and
# the resolution, with the follow-up call (回访); the department of its new work. Grid reports have
# no resident to tell.
NOTIFIED = """FROM v, LATERAL (VALUES
  ('resident', 'received', r), ('department', 'new_work', r + interval '1 minute'),
  ('resident', 'accepted', r + interval '40 minutes'), ('resident', 'resolved', r + interval '2 days'),
  ('resident', 'follow_up', r + interval '2 days')) AS t(audience, template, at)
WHERE NOT merged AND (audience = 'department' OR source = 'hotline')
  AND (NOT still_open OR template IN ('received', 'new_work', 'accepted'))"""
# table -> statement, per service; $1..$12 as _ORDERS reads them.
STATEMENTS: dict[str, dict[str, str]] = {
    "intake": {
        "work_orders": """
INSERT INTO work_orders (id, source, source_id, event_id, received_at, category, confidence, street,
  community, grid, compound, urgency, summary, address, location, caller_name, caller_phone,
  closed_on_site, status, merged_into, created_at)
SELECT id, source, substr(id, 6), md5('call' || i)::uuid::text, r, category, 0.9, street, community,
  grid, CASE WHEN source = 'grid' THEN NULL ELSE compound END, urgency,
  category_name || '：' || coalesce(compound, community, '') || '，请尽快处理',
  compound || (1 + i % 30) || '号楼',
  NULL, CASE WHEN source = 'grid' THEN NULL ELSE '居民' END,
  CASE WHEN source = 'grid' THEN NULL ELSE phone END, false,
  CASE WHEN merged THEN 'merged' WHEN still_open THEN 'open' ELSE 'done' END,
  CASE WHEN merged THEN 'WO-H-Y' || lpad((i - 1)::text, 8, '0') END, r
FROM v""",
        "inbox": _inbox(
            [
                ("call", "hotline.calls.v1", "r"),
                ("resolved", LIFECYCLE, RESOLVED),
                ("closed", LIFECYCLE, CLOSED),
            ],
            where="true",
        ),
    },
    "dispatch": {
        "orders": """
INSERT INTO orders (id, status, level, source, category, category_name, urgency, street, community,
  grid, property_company, summary, address, location, contact, reopen_count, satisfaction,
  feedback_by, request_type, closure, opened_at, updated_at)
SELECT id, CASE WHEN still_open THEN 'accepted' ELSE 'closed' END, 'community', source, category,
  category_name, urgency, street, community, grid, NULL,
  category_name || '：' || coalesce(compound, community, '') || '，请尽快处理', NULL, NULL,
  '{"phone": "1**********"}'::jsonb, 0,
  CASE WHEN still_open THEN NULL WHEN u % 10 = 0 THEN 'dissatisfied' ELSE 'satisfied' END,
  CASE WHEN still_open THEN NULL ELSE r + interval '5 days' END, 'help',
  CASE WHEN still_open THEN NULL ELSE 'rated' END, r,
  CASE WHEN still_open THEN r + interval '40 minutes' ELSE r + interval '3 days' END
FROM v WHERE NOT merged""",
        "dispatches": """
INSERT INTO dispatches (id, work_order_id, department, role, level, attempt, status, accept_by,
  resolve_by, created_at, accepted_at, resolved_at, extended)
SELECT id || '-D' || n, id, CASE WHEN n = 1 THEN lead ELSE 'water' END,
  CASE WHEN n = 1 THEN 'lead' ELSE 'assist' END, 'community', 1,
  CASE WHEN still_open THEN 'accepted' ELSE 'resolved' END,
  r + interval '2 hours', r + interval '10 days', r + interval '1 minute', r + interval '40 minutes',
  CASE WHEN still_open THEN NULL ELSE r + interval '2 days' END, false
FROM v, generate_series(1, 2) AS n WHERE NOT merged AND (n = 1 OR assisted)""",
        "history": """
INSERT INTO history (work_order_id, at, event, status, level, caused_by, detail, recorded_at)
SELECT id, at, event, status, 'community', md5(cause || i)::uuid::text, NULL, at
FROM v, LATERAL (VALUES
  ('order', 'workorder.dispatched', 'dispatched', r + interval '1 minute'),
  ('accepted', 'workorder.accepted', 'accepted', r + interval '40 minutes'),
  ('resolved', 'workorder.resolved', 'resolved', r + interval '2 days'),
  ('feedback', 'workorder.closed', 'closed', r + interval '3 days')) AS h(cause, event, status, at)
WHERE NOT merged AND (NOT still_open OR cause IN ('order', 'accepted'))""",
        "inbox": _inbox(
            [
                ("order", "internal.intake.orders.v1", "r"),
                ("accepted", "dispatch.responses.v1", ACCEPTED),
                ("resolved", "dispatch.responses.v1", RESOLVED),
                ("feedback", "feedback.v1", CLOSED),
            ]
        ),
    },
    "escalation": {
        "clocks": """
INSERT INTO clocks (id, work_order_id, dispatch_id, department, level, area, urgency, kind,
  started_at, due_at, remind_at, reminded, state, updated_at)
SELECT id || '-D1:' || kind, id, id || '-D1', lead, 'community', coalesce(community, street), urgency,
  kind, r + interval '1 minute', due, remind, remind <= $12::timestamptz,
  CASE WHEN still_open AND kind = 'resolve' THEN 'open' WHEN u % 50 = 0 THEN 'fired' ELSE 'stopped' END,
  CASE WHEN still_open AND kind = 'resolve' THEN r + interval '40 minutes' ELSE stop END
FROM v, LATERAL (VALUES
  ('accept', r + interval '2 hours', r + interval '91 minutes', r + interval '40 minutes'),
  ('resolve', r + interval '10 days', r + interval '7.5 days', r + interval '2 days'),
  ('feedback', r + interval '5 days', r + interval '5 days', r + interval '3 days'))
  AS k(kind, due, remind, stop)
WHERE NOT merged AND (kind <> 'feedback' OR NOT still_open)""",
        "inbox": _inbox(
            [
                ("dispatched", LIFECYCLE, DISPATCHED),
                ("accepted-e", LIFECYCLE, ACCEPTED),
                ("resolved-e", LIFECYCLE, RESOLVED),
                ("closed-e", LIFECYCLE, CLOSED),
            ]
        ),
    },
    "notify": {
        # Contacts are forgotten NOTIFY_CONTACT_RETENTION_DAYS after the order closed: only those
        # of the last month (and the open orders) are left.
        "contacts": """
INSERT INTO contacts (work_order_id, reporter_id, name, phone, recorded_at, delete_after, last_told)
SELECT id, id, '居民', phone, r,
  CASE WHEN still_open THEN NULL ELSE r + interval '3 days' + $13::interval END,
  CASE WHEN still_open THEN 'accepted' ELSE 'resolved' END
FROM v WHERE source = 'hotline' AND NOT merged
  AND (still_open OR r + interval '3 days' + $13::interval > $12::timestamptz)""",
        "notifications": f"""
INSERT INTO notifications (id, work_order_id, audience, recipient, channel, template, body, status,
  attempts, event_time, created_at, sent_at, retry_at)
SELECT md5(template || i)::uuid::text, id, audience,
  CASE WHEN audience = 'resident' THEN id ELSE lead END,
  CASE WHEN audience = 'resident' THEN 'sms' ELSE 'webhook' END, template,
  '您反映的' || category_name || '问题：' || template, 'sent', 1, at, at, at, at
{NOTIFIED}""",
        "notification_attempts": f"""
INSERT INTO notification_attempts (notification_id, attempt, channel, at, error)
SELECT md5(template || i)::uuid::text, 1, CASE WHEN audience = 'resident' THEN 'sms' ELSE 'webhook' END,
  at, NULL
{NOTIFIED}""",
        "inbox": _inbox(
            [
                ("contact", "internal.intake.contacts.v1", "r"),
                ("assigned", "dispatch.heat.v1", DISPATCHED),
                ("dispatched-n", LIFECYCLE, DISPATCHED),
                ("accepted-n", LIFECYCLE, ACCEPTED),
                ("resolved-n", LIFECYCLE, RESOLVED),
                ("closed-n", LIFECYCLE, CLOSED),
            ]
        ),
    },
    "api": {
        "orders": """
INSERT INTO orders (id, status, level, category, category_name, street, community, grid, source,
  urgency, merged_into, summary, address, lat, lon, requested_at, updated_at, lead_dispatch_id,
  lead_department, resolve_by, status_notes, overdue, rated_by, rated_at)
SELECT id, CASE WHEN merged THEN 'merged' WHEN still_open THEN 'accepted' ELSE 'closed' END,
  'community', category, category_name, street, community, grid, source, urgency,
  CASE WHEN merged THEN 'WO-H-Y' || lpad((i - 1)::text, 8, '0') END,
  category_name || '：' || coalesce(compound, community, '') || '，请尽快处理', NULL, NULL, NULL, r,
  CASE WHEN still_open OR merged THEN r + interval '40 minutes' ELSE r + interval '3 days' END,
  CASE WHEN NOT merged THEN id || '-D1' END, CASE WHEN NOT merged THEN lead END,
  CASE WHEN NOT merged THEN r + interval '10 days' END, NULL, false,
  CASE WHEN NOT (still_open OR merged) THEN md5('feedback' || i)::uuid::text END,
  CASE WHEN NOT (still_open OR merged) THEN r + interval '3 days' END
FROM v""",
        "dispatches": """
INSERT INTO dispatches (id, work_order_id, department, role, level, accept_by, resolve_by, status,
  overdue, assigned_at, accepted_at, resolved_at)
SELECT id || '-D' || n, id, CASE WHEN n = 1 THEN lead ELSE 'water' END,
  CASE WHEN n = 1 THEN 'lead' ELSE 'assist' END, 'community', r + interval '2 hours',
  r + interval '10 days', CASE WHEN still_open THEN 'accepted' ELSE 'resolved' END, false,
  r + interval '1 minute', r + interval '40 minutes',
  CASE WHEN still_open THEN NULL ELSE r + interval '2 days' END
FROM v, generate_series(1, 2) AS n WHERE NOT merged AND (n = 1 OR assisted)""",
        "timeline": """
INSERT INTO timeline (event_id, work_order_id, type, status, level, at, caused_by, detail)
SELECT md5(kind || i)::uuid::text, id, 'workorder.' || kind, status, 'community', at,
  md5(cause || i)::uuid::text, NULL
FROM v, LATERAL (VALUES
  ('created', 'new', r, 'call'), ('dispatched', 'dispatched', r + interval '1 minute', 'order'),
  ('accepted', 'accepted', r + interval '40 minutes', 'accepted'),
  ('resolved', 'resolved', r + interval '2 days', 'resolved'),
  ('closed', 'closed', r + interval '3 days', 'feedback')) AS t(kind, status, at, cause)
WHERE NOT merged AND (NOT still_open OR kind IN ('created', 'dispatched', 'accepted'))
ORDER BY i, at""",
        "notifications": f"""
INSERT INTO notifications (notification_id, work_order_id, type, audience, channel, template,
  attempts, error, at)
SELECT md5(template || i)::uuid::text, id, 'sent', audience,
  CASE WHEN audience = 'resident' THEN 'sms' ELSE 'webhook' END, template || '@1', 1, NULL, at
{NOTIFIED}""",
        "feedback": """
INSERT INTO feedback (event_id, work_order_id, satisfaction, at)
SELECT md5('feedback' || i)::uuid::text, id,
  CASE WHEN u % 10 = 0 THEN 'dissatisfied' ELSE 'satisfied' END, r + interval '3 days'
FROM v WHERE NOT merged AND NOT still_open""",
        "inbox": _inbox(
            [
                ("created", LIFECYCLE, "r"),
                ("dispatched", LIFECYCLE, DISPATCHED),
                ("assigned", "dispatch.heat.v1", DISPATCHED),
                ("accepted", LIFECYCLE, ACCEPTED),
                ("resolved", LIFECYCLE, RESOLVED),
                ("closed", LIFECYCLE, CLOSED),
                ("feedback", "feedback.v1", CLOSED),
                ("sent-received", "notifications.v1", "r"),
                ("sent-accepted", "notifications.v1", ACCEPTED),
                ("sent-resolved", "notifications.v1", RESOLVED),
            ]
        ),
    },
}


@dataclass(frozen=True)
class Year:
    """What to write: ``orders`` numbered orders over the ``days`` before ``now``."""

    orders: int
    now: datetime
    days: int = 365
    contact_retention: timedelta = timedelta(days=30)

    @property
    def start(self) -> datetime:
        return self.now - timedelta(days=self.days)

    @property
    def step(self) -> timedelta:
        return timedelta(days=self.days) / self.orders


def jurisdiction_lists(ref: Jurisdiction) -> tuple[list[str], ...]:
    """The categories (code, name, lead department at the community) and the places (street,
    community, grid, compound) orders are spread over, as parallel lists."""
    categories = [c for c in ref.categories if c.code != "other"]
    triage = ref.triage.get("community") or ref.departments[0].code
    leads = []
    for c in categories:
        duty = ref.duty_by_key.get((c.code, "community")) or ref.duty_by_key.get((c.code, c.tier))
        leads.append(duty.lead if duty else triage)
    places = [(s, k, c) for s, k, c in ref.compounds]
    return (
        [c.code for c in categories],
        [c.name for c in categories],
        [s.name for s, _, _ in places],
        [k.name for _, k, _ in places],
        [c.grid for _, _, c in places],
        [c.name for _, _, c in places],
        leads,
    )


def _params(year: Year, lo: int, hi: int, lists: tuple[list[str], ...]) -> list[Any]:
    codes, names, streets, communities, grids, compounds, leads = lists
    return [
        lo,
        hi,
        year.start,
        year.step,
        codes,
        names,
        streets,
        communities,
        grids,
        compounds,
        leads,
        year.now,
        year.contact_retention,
    ]


def server_url(settings: Settings, service: str) -> str:
    """asyncpg's URL of the service's database."""
    url = make_url(settings.database_url_for(service)).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


Progress = Callable[[str, int], None]


async def load(
    settings: Settings,
    ref: Jurisdiction,
    year: Year,
    *,
    parallel: int = 2,
    progress: Progress = lambda table, orders: None,
) -> dict[str, Any]:
    """Migrate each service's database and write the year into it; returns rows per table and the
    seconds it took. ``parallel`` statements at a time (the machine's cores, shared with the
    server). The tables are vacuumed, frozen and analysed at the end, and the server checkpoints:
    a database a year old has been, and autovacuum's first pass over millions of new rows, or the
    checkpoint writing them out, would otherwise run during the measurement."""
    started = time.perf_counter()
    for service in SERVICES:
        await migrate(service, settings.database_url_for(service))
    lists = jurisdiction_lists(ref)
    gate = asyncio.Semaphore(parallel)

    async def fill(service: str) -> dict[str, int]:
        rows: dict[str, int] = {}
        conn = await asyncpg.connect(server_url(settings, service))
        try:
            # A loader's commits need not wait for the disk: a crash means loading again.
            await conn.execute("SET synchronous_commit = off")
            await conn.execute("SET maintenance_work_mem = '256MB'")
            tables = list(STATEMENTS[service])
            rebuild = [await _drop_indexes(conn, t) for t in tables if await _empty(conn, t)]
            for lo in range(1, year.orders + 1, CHUNK):
                hi = min(lo + CHUNK - 1, year.orders)
                for table, body in STATEMENTS[service].items():
                    sql = _ORDERS + body
                    async with gate:
                        status = await conn.execute(sql, *_params(year, lo, hi, lists)[: _arity(sql)])
                    rows[table] = rows.get(table, 0) + int(status.rsplit(" ", 1)[1])
                    progress(f"{service}.{table}", hi)
            for statements in rebuild:
                for statement in statements:
                    async with gate:
                        await conn.execute(statement)
            for table in tables:
                async with gate:
                    await conn.execute(f"VACUUM (FREEZE, ANALYZE) {table}")
        finally:
            await conn.close()
        return rows

    filled = await asyncio.gather(*(fill(s) for s in SERVICES))
    conn = await asyncpg.connect(server_url(settings, SERVICES[0]))
    try:
        await conn.execute("CHECKPOINT")
    except asyncpg.InsufficientPrivilegeError:
        pass  # a role that may not checkpoint: the server's own will come, during the measurement
    finally:
        await conn.close()
    return {
        "orders": year.orders,
        "days": year.days,
        "seconds": round(time.perf_counter() - started, 1),
        "rows": {s: r for s, r in zip(SERVICES, filled, strict=True)},
    }


async def _empty(conn: asyncpg.Connection, table: str) -> bool:
    return not await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {table})")


async def _drop_indexes(conn: asyncpg.Connection, table: str) -> list[str]:
    """Drop an empty table's indexes (its primary key and unique constraints among them); returns
    the statements that make them again. Built once over the loaded rows, by sorting, an index
    costs a fraction of what a row at a time into it does (ids spread over the whole index)."""
    constraints = await conn.fetch(
        "SELECT conname, pg_get_constraintdef(oid) AS def, conindid FROM pg_constraint "
        "WHERE conrelid = $1::regclass AND contype IN ('p', 'u')",
        table,
    )
    indexes = await conn.fetch(
        "SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS def "
        "FROM pg_index i WHERE i.indrelid = $1::regclass AND i.indexrelid <> ALL($2::oid[])",
        table,
        [c["conindid"] for c in constraints],
    )
    for c in constraints:
        await conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{c["conname"]}"')
    for i in indexes:
        await conn.execute(f"DROP INDEX {i['name']}")
    return [f'ALTER TABLE {table} ADD CONSTRAINT "{c["conname"]}" {c["def"]}' for c in constraints] + [
        i["def"] for i in indexes
    ]


def _arity(sql: str) -> int:
    """How many parameters a statement reads ($1 to $n): asyncpg refuses more."""
    return max(int(n) for n in re.findall(r"\$(\d+)", sql))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="whistle preload", description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=1_000_000, help="orders in the year (1,000,000)")
    parser.add_argument("--days", type=int, default=365, help="over how many days before now (365)")
    parser.add_argument("--parallel", type=int, default=2, help="statements at a time (2)")
    args = parser.parse_args(argv)
    settings = Settings()
    ref = load_jurisdiction(settings.jurisdiction_file)
    year = Year(
        args.orders, datetime.now(UTC), args.days, timedelta(days=settings.notify_contact_retention_days)
    )
    shown: dict[str, int] = {}

    def progress(table: str, orders: int) -> None:
        shown[table] = orders
        print(f"\r{table}: {orders:,} orders", end="", flush=True)

    result = asyncio.run(load(settings, ref, year, parallel=args.parallel, progress=progress))
    print()
    for service, tables in result["rows"].items():
        print(service, ", ".join(f"{t} {n:,}" for t, n in tables.items()))
    print(f"{result['orders']:,} orders in {result['seconds']} s")


if __name__ == "__main__":
    main()


def over_a_year(
    stack: Any,
    orders: int,
    measure: Callable[[], dict[str, Any]],
    empty: dict[str, Any],
    step: Callable[[str, int | None], Callable[[int], None]],
) -> dict[str, Any]:
    """``whistle bench --preload-year``: the bench's stack started again on fresh databases holding
    a year of history (``load``), and the burst and the steady rate measured over it (``measure``,
    the bench's own); returns their figures with their ratios to the empty databases' (``empty``,
    the same run's). Pruning is off meanwhile: the year is measured as loaded, unpruned, the
    worst case (docs/performance.md, "A year of history")."""
    stack.down()
    stack.reset_databases()
    loading = step(f"a year of history: {orders:,} orders", orders)
    settings = stack.settings
    ref = load_jurisdiction(settings.jurisdiction_file)
    retention = timedelta(days=settings.notify_contact_retention_days)
    year = Year(orders, datetime.now(UTC), 365, retention)
    loaded = asyncio.run(load(settings, ref, year, progress=lambda table, done: loading(done)))
    stack.env["PRUNE_INTERVAL_SECONDS"] = "0"
    started = step("the bench's stack starting over the year", None)
    stack.up()
    started(1)
    figures = measure()
    return {
        "loaded": loaded,
        "raw_produce_msgs_per_s": figures.get("raw_produce_msgs_per_s"),
        "burst": figures["burst"],
        "steady": figures["steady"],
        "ratio_to_empty": ratios(empty, figures),
        # The same over each phase's raw broker rate: on a shared machine whose load changes
        # between the phases, the ratio of what the machine gave each.
        "ratio_to_empty_per_raw": ratios(empty, figures, per_raw=True),
    }


def ratios(empty: dict[str, Any], year: dict[str, Any], per_raw: bool = False) -> dict[str, float | None]:
    """The year's figures over the empty databases': throughput (1 and above is as fast or faster)
    and latency (1 and below); ``per_raw``: each phase's throughput over its raw broker rate, and
    its latency times it."""
    scale = 1.0
    if per_raw:
        raw_empty, raw_year = empty.get("raw_produce_msgs_per_s"), year.get("raw_produce_msgs_per_s")
        if not (raw_empty and raw_year):
            return {}
        scale = raw_empty / raw_year
    pairs = {
        "burst_calls_per_s": ("burst", "calls_per_s"),
        "steady_latency_ms_p50": ("steady", "latency_ms_p50"),
        "steady_latency_ms_p99": ("steady", "latency_ms_p99"),
    }
    out: dict[str, float | None] = {}
    for name, (part, key) in pairs.items():
        a, b = empty.get(part, {}).get(key), year.get(part, {}).get(key)
        factor = scale if part == "burst" else 1 / scale
        out[name] = round(b / a * factor, 3) if a and b else None
    return out
