"""Dead letters an operator can work with: listed and shown from ``deadletter.v1`` (personal data
masked unless the raw bytes are asked for), and redriven to their original topic once their cause
is fixed, each redrive recorded in the tools' database.

A dead letter is named by its place in ``deadletter.v1``, ``PARTITION:OFFSET`` (e.g. ``3:17``): the
topic has several partitions, so an offset alone names several.

What a redrive publishes: the original bytes, to the original topic, with the original key. One
exception: when the service's handler refused the message (the error begins ``refused`` or ``could
not be applied``), the service has recorded its event id in its inbox, and the same id again would be
skipped as a duplicate; the envelope then gets a new ``id``, derived from the dead letter and the
redrive's number, and the extension attribute ``redriveof`` names the original id. A message refused
before it reached a handler (not JSON, an invalid field, an unknown type) was never recorded, so its
bytes go as they are, and a redrive that succeeds is the one its id stands for.

``--with-data FILE`` replaces the event's ``data`` with a corrected copy (a JSON object), for a
cause in the message itself: a redrive of the same bytes would only be refused again.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from shared.contract import DEADLETTER, DeadLetter
from shared.db import create_database_if_missing
from shared.events import derived_id
from shared.messaging import HEADERS, TYPE_HEADER, client_options
from shared.pii import mask_phones_in_text
from shared.settings import Settings
from tools.topiclog import Read, mask_raw, read_one, read_topic

DATABASE = "tools"  # <DATABASE_PREFIX>_tools: what the tools keep, apart from the services'
# Errors of the consumer's that mean the handler ran, and so the event id is in the inbox
# (shared/messaging/consumer.py); every other reason is found before the inbox is asked.
HANDLER_RAN = ("refused ", "could not be applied")
EXTENSION = "redriveof"

# One table, written only by this tool: created here rather than by a migration of its own.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS redrives (
    id bigserial PRIMARY KEY,
    deadletter_id text NOT NULL,
    deadletter_time timestamptz NOT NULL,
    ordinal integer NOT NULL,
    position text NOT NULL,
    original_topic text NOT NULL,
    original_key text,
    event_id text,
    corrected boolean NOT NULL,
    sha256 text NOT NULL,
    operator text NOT NULL,
    redriven_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (deadletter_id, deadletter_time, ordinal)
)
"""


class DeadLetterError(ValueError):
    """What the operator asked for cannot be done; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Letter:
    """One dead letter as read from deadletter.v1."""

    partition: int
    offset: int
    id: str
    time: str
    source: str
    data: DeadLetter

    @property
    def position(self) -> str:
        return f"{self.partition}:{self.offset}"

    def raw_bytes(self) -> bytes:
        if self.data.raw_encoding == "base64":
            return base64.b64decode(self.data.raw)
        return self.data.raw.encode("utf-8")

    def summary(self) -> dict[str, Any]:
        """What ``list`` shows, masked: a key or an error could hold a phone dictated into a field."""
        d = self.data
        return {
            "position": self.position,
            "time": self.time,
            "source": self.source,
            "original_topic": d.original_topic,
            "original_partition": d.original_partition,
            "original_offset": d.original_offset,
            "original_key": mask_phones_in_text(d.original_key) if d.original_key else None,
            "error": mask_phones_in_text(d.error),
        }

    def shown(self, raw: bool) -> dict[str, Any]:
        """The whole dead letter; its ``raw`` masked unless ``raw``."""
        whole = self.summary() | {"id": self.id, "raw_encoding": self.data.raw_encoding}
        if raw:
            return whole | {
                "original_key": self.data.original_key,
                "error": self.data.error,
                "raw": self.data.raw,
            }
        return whole | {"raw": mask_raw(self.data.raw, self.data.raw_encoding)}


def parse_position(position: str) -> tuple[int, int]:
    try:
        partition, offset = position.split(":")
        return int(partition), int(offset)
    except ValueError:
        raise DeadLetterError(
            f"{position!r}: a dead letter is named PARTITION:OFFSET in {DEADLETTER} "
            "(see `whistle deadletters list`)"
        ) from None


def letter_of(read: Read) -> Letter | None:
    """The dead letter a record of deadletter.v1 holds, or None for anything else on the topic."""
    try:
        event = orjson.loads(read.value or b"")
        return Letter(
            read.partition,
            read.offset,
            str(event["id"]),
            str(event["time"]),
            str(event.get("source", "")),
            DeadLetter.model_validate(event["data"]),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValidationError):
        return None


async def letters(settings: Settings) -> list[Letter]:
    return [letter for read in await read_topic(settings, DEADLETTER) if (letter := letter_of(read))]


async def letter_at(settings: Settings, position: str) -> Letter:
    partition, offset = parse_position(position)
    letter = letter_of(await read_one(settings, DEADLETTER, partition, offset))
    if letter is None:
        raise DeadLetterError(f"{DEADLETTER} {position} is not a dead letter (deadletter.recorded)")
    return letter


def redrive_bytes(
    letter: Letter, ordinal: int, data: dict[str, Any] | None = None
) -> tuple[bytes, str | None]:
    """What a redrive publishes, and the event id it carries (None when the bytes are no event)."""
    raw = letter.raw_bytes()
    needs_new_id = letter.data.error.startswith(HANDLER_RAN)
    if data is None and not needs_new_id:
        try:
            found = orjson.loads(raw)
        except orjson.JSONDecodeError:
            found = None
        return raw, str(found["id"]) if isinstance(found, dict) and "id" in found else None
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError:
        event = None
    if not isinstance(event, dict):
        raise DeadLetterError(f"{letter.position}: its raw bytes are not a JSON object (an event) to correct")
    if data is not None:
        event["data"] = data
    if needs_new_id:
        original = event.get("id")
        event["id"] = derived_id("redrive", letter.id, letter.time, str(ordinal))
        if isinstance(original, str):
            event[EXTENSION] = original
    return orjson.dumps(event), str(event.get("id")) if event.get("id") is not None else None


@dataclass(frozen=True, slots=True)
class Redrive:
    position: str
    ordinal: int
    event_id: str | None
    corrected: bool
    operator: str
    at: datetime


async def _ready(settings: Settings) -> Any:
    url = settings.database_url_for(DATABASE)
    await create_database_if_missing(url)
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('whistle tools redrives'))"))
        await conn.execute(text(_SCHEMA))
    return engine


async def _recorded(conn: AsyncConnection, letter: Letter) -> list[Redrive]:
    rows = await conn.execute(
        text(
            "SELECT position, ordinal, event_id, corrected, operator, redriven_at FROM redrives "
            "WHERE deadletter_id = :id AND deadletter_time = :time ORDER BY ordinal"
        ),
        {"id": letter.id, "time": datetime.fromisoformat(letter.time)},
    )
    return [Redrive(*row) for row in rows]


async def redrives_of(settings: Settings, found: list[Letter]) -> dict[str, list[Redrive]]:
    """Each dead letter's redrives, by its position (one query: the table is small)."""
    engine = await _ready(settings)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT deadletter_id, deadletter_time, position, ordinal, event_id, corrected, "
                    "operator, redriven_at FROM redrives ORDER BY ordinal"
                )
            )
            recorded: dict[tuple[str, datetime], list[Redrive]] = {}
            for dead_id, dead_time, *rest in rows:
                recorded.setdefault((dead_id, dead_time), []).append(Redrive(*rest))
    finally:
        await engine.dispose()
    return {
        letter.position: recorded.get((letter.id, datetime.fromisoformat(letter.time)), [])
        for letter in found
    }


async def redrive(
    settings: Settings,
    position: str,
    operator: str,
    again: bool = False,
    data: dict[str, Any] | None = None,
) -> Redrive:
    """Republish one dead letter's message and record it. The record is written, the message
    published (acks=all), and only then the record committed: a failed publish leaves no record,
    and a record that fails after the publish is redone under the same derived id, a duplicate."""
    letter = await letter_at(settings, position)
    engine = await _ready(settings)
    try:
        async with engine.begin() as conn:
            before = await _recorded(conn, letter)
            if before and not again:
                last = before[-1]
                raise DeadLetterError(
                    f"{position} was redriven already ({len(before)}x, last by {last.operator} at "
                    f"{last.at.isoformat()}); --again to redrive it once more"
                )
            ordinal = len(before) + 1
            value, event_id = redrive_bytes(letter, ordinal, data)
            try:
                await conn.execute(
                    text(
                        "INSERT INTO redrives (deadletter_id, deadletter_time, ordinal, position, "
                        "original_topic, original_key, event_id, corrected, sha256, operator) VALUES "
                        "(:id, :time, :ordinal, :position, :topic, :key, :event_id, :corrected, :sha, "
                        ":operator)"
                    ),
                    {
                        "id": letter.id,
                        "time": datetime.fromisoformat(letter.time),
                        "ordinal": ordinal,
                        "position": position,
                        "topic": letter.data.original_topic,
                        "key": letter.data.original_key,
                        "event_id": event_id,
                        "corrected": data is not None,
                        "sha": hashlib.sha256(value).hexdigest(),
                        "operator": operator,
                    },
                )
            except IntegrityError:
                raise DeadLetterError(f"{position} is being redriven by someone else right now") from None
            await _publish(settings, letter, value)
        async with engine.connect() as conn:
            return (await _recorded(conn, letter))[ordinal - 1]
    finally:
        await engine.dispose()


async def _publish(settings: Settings, letter: Letter, value: bytes) -> None:
    headers = list(HEADERS)
    try:
        kind = orjson.loads(value).get("type")
    except (orjson.JSONDecodeError, AttributeError):
        kind = None
    if isinstance(kind, str):  # as everything the project publishes carries it
        headers.append((TYPE_HEADER, kind.encode()))
    key = letter.data.original_key.encode() if letter.data.original_key is not None else None
    producer = AIOKafkaProducer(**client_options(settings), acks="all", enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait(letter.data.original_topic, value, key=key, headers=headers)
    finally:
        await producer.stop()
