"""Database kit: one declarative base, an engine per service, create-if-missing, Alembic per service.

Each service owns a database (``whistle_<service>``) and a migration history in
``services/<service>/migrations``. Services migrate themselves on start, under an advisory lock so
that replicas starting together do not race.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import orjson
from sqlalchemy import Column, LargeBinary, MetaData, Table, TextClause, event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from shared.logs import get_logger

if TYPE_CHECKING:
    from alembic.config import Config

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SERVICES_DIR = Path(__file__).resolve().parent.parent / "services"
log = get_logger(__name__)


class Base(DeclarativeBase):
    """The one declarative base. A service declares ``class Model(Base)`` with ``__abstract__ = True``
    and ``metadata = service_metadata()``, so that each service's tables stay in its own metadata."""

    __abstract__ = True


def service_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


def create_engine(url: str, pool_size: int = 5) -> AsyncEngine:
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
    event.listen(engine.sync_engine, "connect", _json_parameters_as_bytes)
    return engine


def _json_parameters_as_bytes(dbapi_connection: Any, _: Any) -> None:
    """Our json parameters (BulkInsert's rows, json_keys) are orjson's UTF-8 bytes, and the driver
    sends json as UTF-8 bytes: pass them through. SQLAlchemy's codec takes text only, so each was
    decoded to text for the driver to encode again, a few percent of intake's CPU."""
    dbapi_connection.run_async(
        lambda conn: conn.set_type_codec(
            "json", encoder=_utf8, decoder=json.loads, schema="pg_catalog", format="binary"
        )
    )


def _utf8(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


@dataclass(frozen=True)
class BulkInsert:
    """Many rows in one INSERT (or UPDATE: ``bulk_update``). The rows travel as one JSON array,
    which PostgreSQL turns back into rows of the table's own types (``json_populate_recordset``),
    in order. SQLAlchemy would run a list of rows as one statement per row; an array per column,
    sent through asyncpg, costs a type check per value, a tenth of intake's CPU; one JSON text
    costs the driver nothing. (Not for bytes: as JSON they would travel as hex text, twice their
    size, for the server to parse; the outbox sends its payloads as an array of its own.)"""

    table: str
    statement: TextClause
    columns: tuple[str, ...]

    async def execute(self, conn: AsyncConnection, rows: Iterable[dict[str, Any]]) -> None:
        rows = list(rows)
        if not rows:
            return
        # A key left out would be stored as NULL without a word: refuse it (checked on the first
        # row; a batch's rows are built by one function).
        missing = [c for c in self.columns if c not in rows[0]]
        if missing:
            raise KeyError(f"rows for {self.table} lack {missing}")
        await conn.execute(self.statement, {"rows": orjson.dumps(rows)})


def json_keys(keys: Iterable[Sequence[object]]) -> bytes:
    """A batch's keys (tuples) as one JSON parameter, which ``keys_table`` reads back in SQL: one
    value for the driver to send, as with BulkInsert, where an array per column cost a check per
    value."""
    return orjson.dumps(list(keys))


def key_in(expression: str, param: str, column: int = 0) -> str:
    """``expression = ANY(ARRAY(...))`` of one column of a ``json_keys`` parameter: the batch's keys
    probed in the expression's index whatever the planner believes of the table. Joined to
    ``keys_table`` instead, whose size it cannot guess, a table without statistics (a new one) or
    with stale ones was read whole, every batch. Not for a small table: scanned anyway, each of its
    rows is compared with every key, where a join hashes them; nor for ids in a constant array
    (``= ANY(CAST(:ids AS text[]))``), which the planner sizes and hashes itself."""
    keys = f"SELECT k->>{column} FROM json_array_elements(CAST(:{param} AS json)) AS k"
    return f"{expression} = ANY(ARRAY({keys}))"


def keys_table(param: str, *columns: str) -> str:
    """The relation of a ``json_keys`` parameter, its columns text, for ``IN``, ``JOIN`` or ``FROM``:
    ``(SELECT k->>0 AS a, k->>1 AS b FROM json_array_elements(CAST(:param AS json)) AS k)``."""
    picks = ", ".join(f"k->>{i} AS {c}" for i, c in enumerate(columns))
    return f"(SELECT {picks} FROM json_array_elements(CAST(:{param} AS json)) AS k)"


def bulk_insert(table: Table, columns: Sequence[str], on_conflict: str = "") -> BulkInsert:
    """``INSERT INTO table (columns) SELECT columns FROM json_populate_recordset(...) [on_conflict]``,
    for ``execute``; a row's keys are the column names, its values what orjson makes of them
    (aware datetimes as ISO 8601, dicts as JSON)."""
    names = ", ".join(columns)
    statement = text(
        f"INSERT INTO {table.name} ({names}) SELECT {names} "
        f"FROM json_populate_recordset(NULL::{table.name}, CAST(:rows AS json)) WITH ORDINALITY AS u "
        f"ORDER BY u.ordinality {on_conflict}".rstrip()
    )
    if any(isinstance(table.c[c].type, LargeBinary) for c in columns):
        raise ValueError(f"bulk_insert into {table.name}: bytes do not travel well as JSON")
    return BulkInsert(table.name, statement, tuple(columns))


def bulk_update(table: Table, columns: Sequence[str], key: str = "id") -> BulkInsert:
    """``UPDATE table SET columns`` of the rows a JSON array of rows names by ``key``, in one
    statement, for ``execute``: the rows read back in the table's own types, as ``bulk_insert``'s."""
    sets = ", ".join(f"{c} = v.{c}" for c in columns)
    statement = text(
        f"UPDATE {table.name} AS t SET {sets} "
        f"FROM json_populate_recordset(NULL::{table.name}, CAST(:rows AS json)) AS v WHERE t.{key} = v.{key}"
    )
    if any(isinstance(table.c[c].type, LargeBinary) for c in columns):
        raise ValueError(f"bulk_update of {table.name}: bytes do not travel well as JSON")
    return BulkInsert(table.name, statement, (key, *columns))


async def create_database_if_missing(url: str) -> None:
    """CREATE DATABASE for the service's own database when the server does not have it yet."""
    parsed = make_url(url)
    name = parsed.database
    assert name, "a service database URL names its database"
    server = parsed.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    conn = await asyncpg.connect(server)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
                log.info("database created", database=name)
            except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
                # A replica starting at the same moment created it (at the very same moment, the
                # catalogue's unique index says so rather than CREATE DATABASE).
                pass
    finally:
        await conn.close()


def alembic_config(service: str, url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(SERVICES_DIR / service / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["service"] = service
    return cfg


def head_revisions(service: str) -> set[str]:
    """The newest revisions of a service's migrations, read from their files' ``revision`` and
    ``down_revision`` lines: no need to load Alembic and every script to know them."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (SERVICES_DIR / service / "migrations" / "versions").glob("*.py"):
        for line in script.read_text(encoding="utf-8").splitlines():
            name, _, value = line.partition("=")
            field = name.split(":")[0].strip()
            if field in ("revision", "down_revision"):
                found = set(re.findall(r"[\"']([0-9a-zA-Z_]+)[\"']", value))
                (revisions if field == "revision" else parents).update(found)
    return revisions - parents


async def migrate(service: str, url: str) -> None:
    """Create the database if needed and upgrade it to the newest revision. A database already at
    head (every restart of a service) is left alone without loading Alembic: a restarted replica
    serves again that much sooner."""
    await create_database_if_missing(url)
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            with contextlib.suppress(Exception):  # no version table yet: a new database
                version = await conn.execute(text("SELECT version_num FROM alembic_version"))
                current = set(version.scalars())
                if current and current == head_revisions(service):
                    return
            await conn.rollback()
            # One migrator at a time per database; the others wait, then find nothing to do.
            await conn.execute(text("SELECT pg_advisory_lock(727274)"))
            try:
                await conn.run_sync(_upgrade, alembic_config(service, url))
                await conn.commit()
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(727274)"))
    finally:
        await engine.dispose()


def _upgrade(connection: Connection, cfg: Config) -> None:
    from alembic import command

    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


def run_migrations_online(target_metadata: MetaData) -> None:
    """The body of every service's ``migrations/env.py``."""
    from alembic import context

    connection = context.config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection, target_metadata)
        return
    # Invoked by the alembic CLI (e.g. autogenerate): open our own connection.
    url = context.config.get_main_option("sqlalchemy.url")
    assert url

    async def run() -> None:
        engine = create_async_engine(url)
        async with engine.connect() as conn:
            await conn.run_sync(_configure_and_run, target_metadata)
            await conn.commit()
        await engine.dispose()

    asyncio.run(run())


def _configure_and_run(connection: Connection, target_metadata: MetaData) -> None:
    from alembic import context

    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        include_object=_comparable,
    )
    with context.begin_transaction():
        context.run_migrations()


def _comparable(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """What autogenerate compares: not expression indexes (intake's merge keys), which it cannot
    read back as it wrote them and would drop and recreate in every new migration."""
    if type_ == "index":
        declared = compare_to if reflected else obj
        if declared is not None and any(not isinstance(e, Column) for e in declared.expressions):
            return False
    return True
