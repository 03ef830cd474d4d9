"""The real stack for integration tests: Tansu, PostgreSQL and the four services as processes, on
ports and databases of their own so that a developer's `make up` stack is left alone."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import pytest

from tests.integration.bus import Bus
from tests.integration.sink import Sink
from tools.stack import ROOT, SERVICES, Stack

SINK_PORT = 18399
WEBHOOK_SECRET = "test-secret"
TEST_ENV = {
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:19092",
    "HTTP_PORT_BASE": "18280",
    "DATABASE_PREFIX": "whistle_test",
    # Seconds, so that clocks fire during a test: an emergency must be signed for in 4 s.
    "TIME_LIMITS": (
        '{"emergency": {"accept": "PT4S", "resolve": "PT60S"},'
        ' "urgent": {"accept": "PT60S", "resolve": "PT120S"},'
        ' "normal": {"accept": "PT120S", "resolve": "PT300S"}}'
    ),
    # Complaints count working days (weekends, the sample's holidays and make-up days); emergencies
    # and urgent orders run on the clock.
    "TIME_COUNTING": '{"normal": "working"}',
    # A normal order's time to resolve is its request type's (working days): seconds here, as the
    # normal limit above, but for complaints, which keep their real 15 working days. The tests
    # that need seconds send request_type help where the words might say complaint.
    "REQUEST_TYPE_TIME_LIMITS": (
        '{"inquiry": "PT300S", "help": "PT300S", "suggestion": "PT300S", "report": "PT300S"}'
    ),
    "TIMER_INTERVAL_SECONDS": "0.2",
    # The centre's windows on the clock, and long enough for the tests that rate an order after
    # watching it resolve; the unrated test backdates its resolution instead of waiting.
    "CENTRE_COUNTING": "calendar",
    "FEEDBACK_WITHIN": "PT30S",
    # A return's review (派单异议审核): a minute to approve or refuse it over HTTP; the expiry
    # test backdates its return instead of waiting.
    "RETURN_REVIEW_WITHIN": "PT60S",
    # Notify delivers to the tests' own HTTP sink, and retries quickly.
    "NOTIFY_WEBHOOK_URL": f"http://127.0.0.1:{SINK_PORT}/webhook",
    "NOTIFY_SMS_URL": f"http://127.0.0.1:{SINK_PORT}/sms",
    "NOTIFY_WEBHOOK_SECRET": WEBHOOK_SECRET,
    "NOTIFY_BACKOFF_SECONDS": "0.2",
    "NOTIFY_BACKOFF_CAP_SECONDS": "1",
    "NOTIFY_BREAKER_FAILURES": "3",
    "NOTIFY_BREAKER_COOLDOWN_SECONDS": "1",
    # Tests run at any hour: quiet hours off here (they are tested on their own rule).
    "NOTIFY_QUIET_HOURS": "",
    "RATES_INTERVAL_SECONDS": "1",
    # The api's rate per key is tested in process (test_api_web); here the routes are what is tested,
    # the schema test's generated requests among them.
    "API_RATE_PER_SECOND": "100000",
}


@pytest.fixture(scope="session")
def sink() -> Iterator[Sink]:
    sink = Sink(SINK_PORT)
    sink.start()
    yield sink
    sink.stop()


@contextmanager
def fresh(stack: Stack, services: tuple[str, ...] = SERVICES) -> Iterator[Stack]:
    """The stack started anew (its databases dropped, its in-memory broker new), then stopped."""
    stack.down()
    stack.reset_databases()
    try:
        stack.up(services)
        yield stack
    finally:
        stack.down()


@pytest.fixture(scope="session")
def stack(sink: Sink) -> Iterator[Stack]:
    with fresh(Stack(home=ROOT / ".whistle" / "test", env=TEST_ENV)) as stack:
        yield stack


@pytest.fixture(scope="session")
async def bus(stack: Stack) -> AsyncIterator[Bus]:
    bus = Bus(stack.settings)
    await bus.start()
    yield bus
    await bus.stop()
