"""A service's schema in a database of a test module's own, for tests of SQL without the stack."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import create_engine, migrate
from shared.settings import Settings


@asynccontextmanager
async def fresh_database(prefix: str, service: str = "intake") -> AsyncIterator[AsyncEngine]:
    """``<prefix>_<service>`` dropped, migrated afresh, and an engine on it."""
    url = Settings(database_prefix=prefix).database_url_for(service)
    server = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
    await server.execute(f'DROP DATABASE IF EXISTS "{prefix}_{service}" WITH (FORCE)')
    await server.close()
    await migrate(service, url)
    engine = create_engine(url)
    try:
        yield engine
    finally:
        await engine.dispose()
