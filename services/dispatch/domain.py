"""Dispatch's pure rules: tier, routing by the duty list, deadlines, and the dispatch state machine."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared import reference
from shared.calendar import Calendar
from shared.contract import Level, Urgency
from shared.reference import LEVELS, Jurisdiction, TimeLimit

Role = str  # "lead" | "assist"
CALENDAR_TIME = Calendar()


@dataclass(frozen=True, slots=True)
class OrderFacts:
    """What routing needs to know of an order."""

    category: str
    urgency: Urgency
    community: str | None
    property_company: str | None


def initial_level(order: OrderFacts, ref: Jurisdiction, clustered: bool = False) -> Level:
    """The category's tier where someone at that tier can act; an emergency goes no lower than the
    community (the property company alone does not handle it); a concentrated cluster of complaints
    (工单预警) starts at the street, which coordinates several departments."""
    category = ref.category_by_code.get(order.category)
    tier: Level = category.tier if category else "community"
    level = reference.initial_level(tier, order.community is not None, order.property_company is not None)
    if order.urgency == "emergency" and LEVELS.index(level) < LEVELS.index("community"):
        level = "community"
    if clustered and LEVELS.index(level) < LEVELS.index("street"):
        level = "street"
    return level


def assignees(
    order: OrderFacts, level: Level, ref: Jurisdiction, returned: frozenset[str] = frozenset()
) -> list[tuple[str, Role]]:
    """The lead (first) and the assisting departments for the order at that level, from the duty
    list (职责清单). Departments that returned the order are passed over: the next candidate leads.
    Empty when nobody at this level is left; the order must go up."""
    if level == "property" and order.property_company:
        candidates = [order.property_company]
    elif order.category != "other" and order.community is not None:
        candidates = []
        for at in LEVELS[LEVELS.index(level) :]:
            duty = ref.duty_by_key.get((order.category, at))
            if duty:
                candidates = list(dict.fromkeys([duty.lead, *duty.assist]))
                break
    else:
        candidates = []
    if not candidates:
        candidates = [triage_desk(order, level, ref)]
    remaining = [code for code in candidates if code not in returned]
    return [(code, "lead" if i == 0 else "assist") for i, code in enumerate(remaining)]


def triage_desk(order: OrderFacts, level: Level, ref: Jurisdiction) -> str:
    """Where unplaced, uncategorised or unclear orders go: the community's desk, or the street's."""
    return ref.triage["street" if level in ("street", "district") or order.community is None else "community"]


def extension_allowed(
    assigned_at: datetime,
    resolve_by: datetime,
    requested: datetime,
    already_extended: bool,
    max_factor: float,
) -> str | None:
    """延期: granted once per dispatch, to at most ``max_factor`` times the original time allowed
    beyond the current resolve-by. Returns why not, or None when it is granted."""
    if already_extended:
        return "an extension was already granted for this dispatch; only one is allowed"
    asked = requested.isoformat()
    if requested <= resolve_by:
        return f"data.resolve_by: {asked} is not later than the current resolve-by {resolve_by.isoformat()}"
    limit = resolve_by + (resolve_by - assigned_at) * max_factor
    if requested > limit:
        return f"data.resolve_by: {asked} is beyond the longest extension allowed ({limit.isoformat()})"
    return None


def time_limit(
    urgency: Urgency,
    ref: Jurisdiction,
    overrides: dict[Urgency, TimeLimit],
    category: str | None = None,
    by_category: dict[str, dict[Urgency, TimeLimit]] | None = None,
) -> TimeLimit:
    """The limit for an order: a category's own (e.g. 政策咨询 answered in a working day), else the
    configured one for its urgency, else the jurisdiction's."""
    own = (by_category or {}).get(category or "", {}).get(urgency)
    return own or overrides.get(urgency) or ref.time_limits[urgency]


def deadlines(
    at: datetime, limit: TimeLimit, calendar: Calendar = CALENDAR_TIME
) -> tuple[datetime, datetime]:
    """Accept-by and resolve-by, counted in calendar or working time."""
    return calendar.add(at, limit.accept), calendar.add(at, limit.resolve)


class InvalidTransition(ValueError):
    pass


# (dispatch status, response type) -> new dispatch status
TRANSITIONS: dict[tuple[str, str], str] = {
    ("assigned", "dispatch.accepted"): "accepted",
    ("assigned", "dispatch.rejected"): "rejected",
    ("accepted", "dispatch.rejected"): "rejected",
    ("accepted", "dispatch.progress"): "accepted",
    ("accepted", "dispatch.extension_requested"): "accepted",
    ("accepted", "dispatch.resolved"): "resolved",
}


def respond(status: str, response_type: str) -> str:
    """The dispatch's next status, or InvalidTransition saying why not."""
    new = TRANSITIONS.get((status, response_type))
    if new is None:
        verb = response_type.removeprefix("dispatch.")
        raise InvalidTransition(f"cannot apply {verb} to a dispatch that is {status}")
    return new
