"""The one way to try again: exponential backoff with jitter (tenacity), for a failed batch, a
relay round, a timer loop or a notification's next attempt. Jitter keeps replicas that failed
together from retrying together."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from shared.logs import get_logger

log = get_logger(__name__)


def backoff(attempt: int, *, initial: float, cap: float) -> float:
    """Seconds to wait after the ``attempt``-th failure: ``initial`` doubling to ``cap``, jittered."""
    state = RetryCallState(retry_object=AsyncRetrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    return float(wait_exponential_jitter(multiplier=initial, max=cap, jitter=initial)(state))


def transient_retries(
    is_transient: Callable[[BaseException], bool],
    *,
    attempts: int,
    initial: float,
    cap: float,
    on_retry: Callable[[BaseException, int], None],
) -> AsyncRetrying:
    """``async for attempt in transient_retries(...): with attempt: ...``: up to ``attempts`` tries
    while the failure is transient; anything else, or the last failure, is raised as it is."""

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if exc is not None:
            on_retry(exc, state.attempt_number)

    return AsyncRetrying(
        retry=retry_if_exception(is_transient),
        stop=stop_after_attempt(attempts),
        wait=wait_exponential_jitter(multiplier=initial, max=cap, jitter=initial),
        before_sleep=before_sleep,
        reraise=True,
    )


async def forever(
    name: str,
    step: Callable[[], Awaitable[bool]],
    *,
    idle: Callable[[], Awaitable[object]],
    initial: float = 0.2,
    cap: float = 10.0,
    on_failure: Callable[[], None] = lambda: None,
) -> None:
    """A background loop: run ``step`` again at once while it says more is waiting, else after
    ``idle``; a step that fails is logged and tried again with backoff. Only cancellation ends it."""
    while True:
        more = False
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(Exception),
            wait=wait_exponential_jitter(multiplier=initial, max=cap, jitter=initial),
            before_sleep=lambda state: _failed(name, state, on_failure),
            reraise=True,
        ):
            with attempt:
                more = await step()
        if not more:
            await idle()


def _failed(name: str, state: RetryCallState, on_failure: Callable[[], None]) -> None:
    on_failure()
    exc = state.outcome.exception() if state.outcome else None
    retry_in = round(state.upcoming_sleep, 2)
    log.warning(f"{name} round failed, will retry", error=str(exc)[:300], retry_in=retry_in)


def sleeper(seconds: float) -> Callable[[], Awaitable[None]]:
    """An ``idle`` of a fixed pause."""
    return lambda: asyncio.sleep(seconds)
