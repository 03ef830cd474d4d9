"""Which failures are the message's and which the world's: a transient one (database or network)
is retried, anything else is the message's and sends its batch down the careful path."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError


def is_transient(exc: BaseException) -> bool:
    """Failures worth retrying: the database or the network, not the message."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError | InterfaceError | OSError | asyncio.TimeoutError):
        return True
    orig = getattr(exc, "orig", None)
    cause = getattr(orig, "__cause__", None) or orig
    return isinstance(
        cause,
        asyncpg.PostgresConnectionError
        | asyncpg.CannotConnectNowError
        | asyncpg.SerializationError
        | asyncpg.DeadlockDetectedError
        | asyncpg.InterfaceError,
    )


class NeedsCare(Exception):
    """A message of the batch could not be applied: go again, one savepoint per message."""


class _CarefulOnFailure:
    """A failure that is not transient sends the batch down the careful path, where each message is
    applied alone and the one at fault is dead-lettered; a transient one retries the batch. A class,
    not a generator: the fast path enters it once per message."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if isinstance(exc, Exception) and not isinstance(exc, NeedsCare) and not is_transient(exc):
            raise NeedsCare from exc


careful_on_failure = _CarefulOnFailure()
