"""The outbox relay: publishes what handlers staged, after their transaction, and deletes it only
once Kafka has acknowledged it."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections import Counter

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.schema import Table

from shared import metrics, retry
from shared.logs import get_logger
from shared.settings import Settings

from .kafka import make_producer
from .outbox import staged_channel
from .publishing import send_round

log = get_logger(__name__)
PENDING_EVERY = 15.0  # seconds between two counts of the outbox: a count(*) costs a large backlog a scan


class PartlySent(Exception):
    """A round whose acknowledged rows were let go and the rest kept for the next round."""


class OutboxRelay:
    """Publishes outbox rows: claims a batch by deleting it, sends the rows, awaits every ack
    (acks=all), and only then commits. Rows the broker did not acknowledge are put back (with
    their ids, so their place in line) in the same transaction, and only they are tried again:
    each partition gets one record batch a round (``send_round``), so what is kept is a tail of
    each partition's share and no key's later event overtakes an earlier one. A round that sent
    nothing rolls back whole. Consumers dedupe the rare repeat (an ack lost) by event id. Deleting
    costs the database a fraction of marking rows sent (an update rewrites each row, payload
    included), and Kafka holds what was sent.

    The broker's topics are asked for every round, while the rows are claimed: a broker that
    restarted empty acknowledges records to topics it no longer has, and then loses them. Rows
    for a topic it does not list are held (``held``, reported by /readyz) until it lists it again.

    One replica relays a service's outbox at a time (a transaction-scoped advisory lock): two
    claiming side by side would each take some of one order's events, and the faster send would
    put its later events ahead of the earlier ones. Another replica takes over at its next round
    once the one relaying is gone. Every replica wakes on the NOTIFY each staging transaction
    sends at its commit (``listen``), whichever replica committed; polling every
    ``relay_idle_seconds`` is the fallback."""

    def __init__(self, *, service: str, engine: AsyncEngine, outbox: Table, settings: Settings) -> None:
        self.service = service
        self.engine = engine
        self.outbox = outbox
        self.settings = settings
        self._producer: AIOKafkaProducer | None = None
        self.batch_size = settings.relay_batch_size
        self.idle = settings.relay_idle_seconds
        self.wake = asyncio.Event()
        # The claimed rows are deleted by their physical address (ctid, a TID scan), which the
        # planner takes whatever it believes of the table. "id IN (...)" let it choose, from
        # statistics taken while the queue was nearly empty, a nested loop that compared every row
        # with every claimed id: seconds per round once a backlog had built up.
        name = outbox.name
        returning = "RETURNING id, topic, key, payload, created_at"
        self._claim = text(
            f"DELETE FROM {name} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {name} "
            f"ORDER BY id LIMIT :n FOR UPDATE SKIP LOCKED)) {returning}"
        )
        # While topics are held, the rest of the outbox goes on.
        self._claim_but_held = text(
            f"DELETE FROM {name} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {name} "
            "WHERE topic <> ALL(CAST(:held AS text[])) "
            f"ORDER BY id LIMIT :n FOR UPDATE SKIP LOCKED)) {returning}"
        )
        self._keep = text(
            f"INSERT INTO {name} (id, topic, key, payload, created_at) SELECT * FROM unnest("
            "CAST(:id AS bigint[]), CAST(:topic AS text[]), CAST(:key AS text[]), "
            "CAST(:payload AS bytea[]), CAST(:created_at AS timestamptz[]))"
        )
        self._pending = text(f"SELECT count(*) FROM {name}")
        self._turn = text("SELECT pg_try_advisory_xact_lock(:lock)")
        self._lock = relay_lock(service, name)
        self.channel = staged_channel(outbox)
        self.healthy = True
        self.held: frozenset[str] = frozenset()  # topics the broker did not list at the last round
        self.more = False  # the last round left rows that can go at once
        self._asked: set[str] = set()  # topics the producer's metadata refreshes ask about
        self.listening = False

    def notify(self) -> None:
        self.wake.set()

    async def start(self) -> None:
        self._producer = make_producer(self.settings, f"whistle-{self.service}-relay")
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    @property
    def producer(self) -> AIOKafkaProducer:
        assert self._producer is not None, "start() the relay first"
        return self._producer

    async def broker_topics(self) -> set[str]:
        """Every topic the broker lists now, asked over the relay's connection (the watchdog's look)."""
        cluster = await self.producer.client.fetch_all_metadata()
        return set(cluster.topics())

    async def publish_once(self) -> int:
        """One round; returns how many rows the broker acknowledged. Raises ``PartlySent``, after
        committing, when some sends failed (the round counts as failed: backoff, /readyz)."""
        self.more = False
        async with self.engine.begin() as conn:
            if not (await conn.execute(self._turn, {"lock": self._lock})).scalar_one():
                # Another replica is relaying: it sends what this one staged, in order, and it
                # reports what it holds; this one's last word on the broker would go stale.
                self.held = frozenset()
                return 0
            client = self.producer.client
            listed = client.force_metadata_update()  # asked while the rows are claimed
            if self.held:
                claimed = await conn.execute(
                    self._claim_but_held, {"n": self.batch_size, "held": list(self.held)}
                )
            else:
                claimed = await conn.execute(self._claim, {"n": self.batch_size})
            # In id order (RETURNING has none): one key's events reach its partition in order.
            rows = sorted(claimed.all(), key=lambda r: r[0])
            topics = {r[1] for r in rows} | self.held
            new = topics - self._asked
            for t in new:
                client.add_topic(t)  # from now on in every refresh of the producer's metadata
            # A refresh under way may have been asked without the new topics: once more with them.
            if not await listed or (new and not await client.force_metadata_update()):
                raise KafkaConnectionError("the broker did not say which topics it has")
            self._asked |= new
            partitions = {t: sorted(p) for t in topics if (p := client.cluster.partitions_for_topic(t))}
            self._hold(topics - partitions.keys())
            if not rows:
                return 0
            sent = await send_round(self.producer, [(t, k, p) for _, t, k, p, _ in rows], partitions)
            acked, keep, failure = await sent.outcome()
            if failure is not None and not acked:
                raise failure  # rolled back whole: every row stays
            if keep:
                kept = [rows[n] for n in keep]
                await conn.execute(self._keep, {c: [r[i] for r in kept] for i, c in enumerate(_COLUMNS)})
        for topic, n in Counter(rows[n][1] for n in acked).items():
            metrics.RELAY_PUBLISHED.labels(self.service, topic).inc(n)
        if failure is not None:
            raise PartlySent(f"{len(acked)} rows sent, {len(keep)} kept for the next round") from failure
        # Rows left out of a full partition's batch can go at once; held ones wait for their topic.
        self.more = len(rows) >= self.batch_size or any(rows[n][1] in partitions for n in keep)
        return len(acked)

    def _hold(self, missing: set[str]) -> None:
        if missing != self.held:
            if missing:
                log.warning(
                    "holding outbox rows: the broker does not list their topics", topics=sorted(missing)
                )
            else:
                log.info(
                    "the broker lists every topic again: sending the rows held", topics=sorted(self.held)
                )
            self.held = frozenset(missing)

    async def run(self) -> None:
        # The backlog is counted on a clock of its own: counted after successful rounds only, it
        # froze exactly when the relay failed, and an alert on its growth could not fire.
        loops = [
            retry.forever("relay", self._round, idle=self._idle, on_failure=self._failed),
            retry.forever("outbox count", self._report_pending, idle=retry.sleeper(PENDING_EVERY)),
        ]
        if self.settings.relay_listen:
            loops.append(retry.forever("outbox listener", self.listen, idle=self._idle, cap=5.0))
        await asyncio.gather(*loops)

    async def _round(self) -> bool:
        """One round; True when more is waiting."""
        # Cleared before the claim: a commit during the round wakes the next one at once.
        self.wake.clear()
        await self.publish_once()
        self.healthy = True
        return self.more

    async def _idle(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), timeout=self.idle)

    def _failed(self) -> None:
        self.healthy = False
        metrics.RELAY_FAILURES.labels(self.service).inc()

    async def listen(self) -> bool:
        """LISTEN on a connection of its own until it is lost (then raises: retried with backoff).
        Every staging transaction NOTIFYs at its commit, so this replica's relay wakes on what any
        replica committed, at once."""
        url = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        conn = await asyncpg.connect(url)
        lost = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _: lost.set())
            await conn.add_listener(self.channel, lambda *_: self.wake.set())
            self.listening = True
            self.wake.set()  # what was committed while nobody listened
            await lost.wait()
        finally:
            self.listening = False
            if not conn.is_closed():
                conn.terminate()
        raise ConnectionError("the outbox's listening connection was lost")

    async def _report_pending(self) -> bool:
        async with self.engine.connect() as conn:
            pending = (await conn.execute(self._pending)).scalar_one()
        metrics.OUTBOX_PENDING.labels(self.service).set(pending)
        return False


_COLUMNS = ("id", "topic", "key", "payload", "created_at")


def relay_lock(service: str, table: str) -> int:
    """The advisory lock of a service's outbox: a signed 64-bit number, the same in every replica."""
    digest = hashlib.blake2b(f"whistle-relay/{service}/{table}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
