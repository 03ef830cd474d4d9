"""A batch's clock changes go in rounds: an order's keep their order, other orders share rounds."""

from __future__ import annotations

from typing import Any

import pytest

from services.escalation.store import Change, ClockChanges, rounds


def _start(order: str, clock: str) -> Change:
    return ("start", {"id": clock, "work_order_id": order})


def _stop(order: str, kind: str | None = None) -> Change:
    return ("stop", (order, kind, None))


def _shape(changes: list[Change]) -> list[tuple[list[str], list[Any]]]:
    return [([r["id"] for r in started], stops) for started, stops in rounds(changes)]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ([], []),
        # Many orders' starts, then their stops: one statement each.
        (
            [_start("A", "a1"), _start("B", "b1"), _stop("C"), _stop("D", "accept")],
            [(["a1", "b1"], [("C", None, None), ("D", "accept", None)])],
        ),
        # An order started, stopped and started again: a round's starts go before its stops, so
        # the stop shares the first start's round, and the second start needs a round of its own.
        (
            [_start("A", "a1"), _stop("A"), _start("A", "a2")],
            [(["a1"], [("A", None, None)]), (["a2"], [])],
        ),
        # An order's stop before its start (resolved: its clocks stop, the feedback clock starts),
        # beside another order's start: the other goes in the first round.
        (
            [_stop("A"), _start("A", "a-feedback"), _start("B", "b1")],
            [(["b1"], [("A", None, None)]), (["a-feedback"], [])],
        ),
        # An order's starts, then its stops: one round.
        (
            [_start("A", "a1"), _start("A", "a2"), _stop("A", "accept"), _stop("A")],
            [(["a1", "a2"], [("A", "accept", None), ("A", None, None)])],
        ),
        # Stopped, started, stopped again: the second stop goes with the start after it.
        (
            [_stop("A", "accept"), _start("A", "a-review"), _stop("A", None)],
            [([], [("A", "accept", None)]), (["a-review"], [("A", None, None)])],
        ),
    ],
)
def test_rounds(changes: list[Change], expected: list[tuple[list[str], list[Any]]]) -> None:
    assert _shape(changes) == expected


def test_a_stop_with_an_empty_kind_or_dispatch_stops_any() -> None:
    changes = ClockChanges()
    changes.stop("A", kind="", dispatch_id="")
    assert changes.changes == [("stop", ("A", None, None))]
