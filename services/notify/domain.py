"""Notify's rules: which event tells which audience, with which template (as data); when a resident
may be told; what a failed attempt leads to."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo

C = TypeVar("C")  # what a caller keeps with a state (the event that caused it)

# event type -> (audience, template) pairs. Residents are told only where a contact is known.
RULES: dict[str, tuple[tuple[str, str], ...]] = {
    "intake.contact.recorded": (("resident", "received"),),
    "intake.contact.merged": (("resident", "joined"),),
    "dispatch.assigned": (("department", "new_work"),),
    "dispatch.reminder": (("department", "reminder"),),
    "dispatch.cancelled": (("department", "cancelled"),),
    "workorder.accepted": (("resident", "accepted"),),
    "workorder.resolved": (("resident", "resolved"), ("resident", "follow_up")),
    "workorder.reopened": (("resident", "reopened"),),
    "workorder.escalated": (("supervisor", "escalated"),),
    "alert.sla_breached": (("supervisor", "sla_breached"),),
    "alert.cluster_detected": (("supervisor", "cluster_detected"),),
}


@dataclass(frozen=True, slots=True)
class Planned:
    audience: str
    recipient: str
    template: str
    data: dict[str, Any]


# Which channel reaches an audience: residents by SMS, departments and supervisors by webhook.
CHANNEL_FOR = {"resident": "sms", "department": "webhook", "supervisor": "webhook"}


# The state of the order a resident's notice tells of. A resident hears of a state once: not
# again when it comes round without news in between (a second department signing for the order
# after a return, a re-dispatch after an escalation), but again after another state (resolved,
# reopened, resolved once more).
RESIDENT_STATE = {
    "intake.contact.recorded": "received",
    "intake.contact.merged": "received",
    "workorder.accepted": "accepted",
    "workorder.resolved": "resolved",
    "workorder.reopened": "reopened",
}


def residents_to_tell(
    event_type: str, data: dict[str, Any], residents: Mapping[str, str | None]
) -> list[str]:
    """Which of an order's reporters (each with the state they were last told of) hear of this event."""
    state = RESIDENT_STATE.get(event_type)
    if state is None or (event_type == "workorder.accepted" and data.get("status") != "accepted"):
        return []  # e.g. an assisting department signing for its part leaves the order as it was
    return [reporter for reporter, told in sorted(residents.items()) if told != state]


def kept_for_residents_to_come(event_type: str, data: dict[str, Any], residents: Mapping[str, Any]) -> bool:
    """Whether a state of an order is kept until its resident's contact is known: a state residents
    hear of, of a call's order with no resident known yet. The contact comes on a topic of its own
    and may come after the order's first states (the contact race); a grid worker's order has none."""
    return (
        not residents
        and data.get("source") == "hotline"
        and bool(residents_to_tell(event_type, data, {"": None}))
    )


def catch_up(seen: Sequence[tuple[str, dict[str, Any], C]]) -> list[tuple[str, dict[str, Any], C]]:
    """Of the states an order went through before its resident's contact was known (event type,
    data and cause, in order), those the resident would have been told of, each once, as if the
    contact had come first: what they hear, after "received", when it comes."""
    told: str | None = RESIDENT_STATE["intake.contact.recorded"]
    heard = []
    for event_type, data, cause in seen:
        if residents_to_tell(event_type, data, {"": told}):
            heard.append((event_type, data, cause))
            told = RESIDENT_STATE[event_type]
    return heard


def plan(event_type: str, data: dict[str, Any], residents: list[str]) -> list[Planned]:
    """The notifications one event calls for; ``residents`` are the reporters to tell."""
    planned: list[Planned] = []
    for audience, template in RULES.get(event_type, ()):
        if audience == "resident":
            planned.extend(Planned("resident", reporter, template, data) for reporter in residents)
        elif audience == "department":  # its own dispatch event names the department
            planned.append(Planned("department", data["department"], template, data))
        else:
            level = data.get("to_level") or data.get("level") or "street"
            planned.append(Planned("supervisor", f"supervisor:{level}", template, data))
    return planned


def quiet_until(at: datetime, window: str, timezone: str) -> datetime | None:
    """When a message to a resident at business time ``at`` may go, if ``at`` falls in the quiet
    hours (``"22:00-07:00"``, local time); None when it may go now or there are no quiet hours."""
    if not window:
        return None
    start_text, end_text = window.split("-")
    start, end = time.fromisoformat(start_text), time.fromisoformat(end_text)
    local = at.astimezone(ZoneInfo(timezone))
    now = local.time()
    quiet = (start <= now or now < end) if start > end else (start <= now < end)
    if not quiet:
        return None
    day = local.date() if now < end else local.date() + timedelta(days=1)
    return datetime.combine(day, end, local.tzinfo)


def hold_until(audience: str, urgency: str, at: datetime, window: str, timezone: str) -> datetime | None:
    """When a message planned at business time ``at`` may go: residents are not woken by the quiet
    hours (``window``), unless the order is an emergency; departments and supervisors any time."""
    if audience != "resident" or urgency == "emergency":
        return None
    return quiet_until(at, window, timezone)


Outcome = Literal["sent", "retry", "failed"]


def outcome(error: str | None, attempts: int, max_attempts: int) -> Outcome:
    """What an attempt (the ``attempts``-th) makes of a notification: sent, tried again later, or
    given up once ``max_attempts`` have failed."""
    if error is None:
        return "sent"
    return "retry" if attempts < max_attempts else "failed"
