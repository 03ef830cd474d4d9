"""Escalation's pure rules: when to remind, what a due clock fires, and where the order goes next."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from shared import contract
from shared.calendar import Calendar
from shared.contract import (
    DispatchReminder,
    EscalationRequested,
    FeedbackExpired,
    Level,
    ReviewExpired,
    SlaBreached,
)
from shared.events import derived_id
from shared.reference import next_level


@dataclass(frozen=True, slots=True)
class Deadline:
    kind: str  # "accept" | "resolve"
    started_at: datetime
    due_at: datetime


def remind_at(deadline: Deadline, share: float, calendar: Calendar = Calendar()) -> datetime:
    """督办 comes before the deadline, at a share of the time allowed (counted as the limit was)."""
    return calendar.share(deadline.started_at, deadline.due_at, share)


def alert_area(community: str | None, street: str | None) -> str:
    """The key of a clock's alerts: the community, else the street."""
    return community or street or "unplaced"


@dataclass(frozen=True, slots=True)
class Breach:
    to_level: Level | None  # None: at the top of the ladder, supervisors are alerted instead
    reason: str


def on_breach(kind: str, level: Level, department: str) -> Breach:
    verb = "signed for" if kind == "accept" else "resolved"
    return Breach(next_level(level), f"not {verb} by {department} in time")


# ---- The clock loop's round ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DueClock:
    """A clock the loop claimed: its reminder is due, or its deadline."""

    id: str  # <dispatch_id>:<kind>, or a command clock's own (COMMANDS)
    work_order_id: str
    dispatch_id: str
    department: str
    level: Level
    area: str
    kind: str
    due_at: datetime
    remind_at: datetime


Payload = DispatchReminder | SlaBreached | EscalationRequested | FeedbackExpired | ReviewExpired


@dataclass(frozen=True, slots=True)
class Event:
    """An event to publish. Its id derives from the clock and its deadline, so a round fired again
    after a crash publishes the same events: outside systems dedupe on them."""

    topic: str
    key: str
    type: str
    data: Payload
    time: datetime
    id: str


@dataclass(frozen=True, slots=True)
class Fired:
    """What one due clock does: its events, its columns that change, and its breach if it breached."""

    clock: DueClock
    events: tuple[Event, ...]
    changes: Mapping[str, object]
    breach: Breach | None = None


@dataclass(frozen=True, slots=True)
class Round:
    fired: tuple[Fired, ...]  # in the order the clocks came
    stopped: tuple[str, ...]  # orders that breached: all their other clocks stop

    @property
    def events(self) -> list[Event]:
        return [e for f in self.fired for e in f.events]


def fire(due: Iterable[DueClock], now: datetime) -> Round:
    """A round of due clocks at ``now``. One breach per order climbs the ladder once: the order's
    further clocks in the round are passed over, and all its clocks stop."""
    fired: list[Fired] = []
    stopped: list[str] = []
    for clock in due:
        command = COMMANDS.get(clock.kind)
        if command is not None:  # a wait on the centre or the resident, not on a department
            fired.append(Fired(clock, (command(clock),), {"state": "fired"}))
            continue
        if clock.work_order_id in stopped:
            continue
        if clock.due_at > now:
            fired.append(Fired(clock, (_reminder(clock),), {"reminded": True}))
        else:
            breach = on_breach(clock.kind, clock.level, clock.department)
            fired.append(Fired(clock, _breach_events(clock, breach), {"state": "fired"}, breach))
            stopped.append(clock.work_order_id)
    return Round(tuple(fired), tuple(stopped))


# ---- Command clocks: a wait that ends in a command to dispatch, with no reminder and no alert ----


def feedback_clock_id(work_order_id: str, feedback_by: datetime) -> str:
    """One clock per resolution: an order resolved again after 重办 waits anew."""
    return f"{work_order_id}:feedback:{int(feedback_by.timestamp())}"


def _feedback_expired(clock: DueClock) -> Event:
    """回访 that ends: the resolved order was not rated by its time; dispatch closes it as unrated."""
    data = FeedbackExpired(work_order_id=clock.work_order_id, feedback_by=clock.due_at)
    command_id = derived_id(clock.id, "expired")
    return Event(
        contract.ESCALATION_COMMANDS, clock.work_order_id, "feedback.expired", data, clock.due_at, command_id
    )


def review_clock_id(dispatch_id: str) -> str:
    """One review per dispatch: a department returns a dispatch once."""
    return f"{dispatch_id}:review"


def _review_expired(clock: DueClock) -> Event:
    """派单异议审核: nobody reviewed the return by its time; dispatch approves it automatically."""
    data = ReviewExpired(
        work_order_id=clock.work_order_id, dispatch_id=clock.dispatch_id, review_by=clock.due_at
    )
    command_id = derived_id(clock.id, "expired")
    return Event(
        contract.ESCALATION_COMMANDS,
        clock.work_order_id,
        "return.review.expired",
        data,
        clock.due_at,
        command_id,
    )


# Clock kind -> the command it fires when due. Started with ``reminded`` set: no reminder comes.
COMMANDS: dict[str, Callable[[DueClock], Event]] = {
    "feedback": _feedback_expired,
    "review": _review_expired,
}


def _reminder(clock: DueClock) -> Event:
    reminder = DispatchReminder(
        dispatch_id=clock.dispatch_id,
        work_order_id=clock.work_order_id,
        department=clock.department,
        deadline=clock.kind,
        due=clock.due_at,
        overdue=False,
    )
    return Event(
        contract.department_topic(clock.department),
        clock.work_order_id,
        "dispatch.reminder",
        reminder,
        clock.remind_at,
        derived_id(clock.id, "remind", clock.due_at.isoformat()),
    )


def _breach_events(clock: DueClock, breach: Breach) -> tuple[Event, ...]:
    """At the deadline: an overdue reminder to the department, an alert keyed by the area, and,
    below the top of the ladder, the command to climb; all at the deadline's time."""
    at, key = clock.due_at, clock.work_order_id
    ids = (clock.id, "breach", at.isoformat())
    overdue = DispatchReminder(
        dispatch_id=clock.dispatch_id,
        work_order_id=key,
        department=clock.department,
        deadline=clock.kind,
        due=at,
        overdue=True,
    )
    sla = SlaBreached(
        work_order_id=key, department=clock.department, deadline=clock.kind, due=at, level=clock.level
    )
    events = [
        Event(
            contract.department_topic(clock.department),
            key,
            "dispatch.reminder",
            overdue,
            at,
            derived_id(*ids, "r"),
        ),
        Event(contract.ALERTS, clock.area, "alert.sla_breached", sla, at, derived_id(*ids, "a")),
    ]
    if breach.to_level:
        command = EscalationRequested(
            work_order_id=key,
            from_level=clock.level,
            to_level=breach.to_level,
            reason=breach.reason,
            dispatch_id=clock.dispatch_id,
        )
        events.append(
            Event(
                contract.ESCALATION_COMMANDS,
                key,
                "escalation.requested",
                command,
                at,
                derived_id(*ids, "e"),
            )
        )
    return tuple(events)
