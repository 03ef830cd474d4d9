"""Dispatch's pure rules: tier, routing by the duty list, deadlines, and the dispatch state machine."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared import reference
from shared.contract import Level, Urgency
from shared.reference import LEVELS, Jurisdiction, TimeLimit

Role = str  # "lead" | "assist"


@dataclass(frozen=True, slots=True)
class OrderFacts:
    """What routing needs to know of an order."""

    category: str
    urgency: Urgency
    community: str | None
    property_company: str | None


def initial_level(order: OrderFacts, ref: Jurisdiction) -> Level:
    category = ref.category_by_code.get(order.category)
    tier: Level = category.tier if category else "community"
    return reference.initial_level(tier, order.community is not None, order.property_company is not None)


def assignees(order: OrderFacts, level: Level, ref: Jurisdiction) -> list[tuple[str, Role]]:
    """The lead (first) and the assisting departments for the order at that level."""
    if level == "property" and order.property_company:
        return [(order.property_company, "lead")]
    if order.category != "other" and order.community is not None:
        for candidate in LEVELS[LEVELS.index(level) :]:
            duty = ref.duty_by_key.get((order.category, candidate))
            if duty:
                return [(duty.lead, "lead"), *((code, "assist") for code in duty.assist if code != duty.lead)]
    desk = ref.triage["street" if level in ("street", "district") or order.community is None else "community"]
    return [(desk, "lead")]


def time_limit(urgency: Urgency, ref: Jurisdiction, overrides: dict[Urgency, TimeLimit]) -> TimeLimit:
    return overrides.get(urgency) or ref.time_limits[urgency]


def deadlines(at: datetime, limit: TimeLimit) -> tuple[datetime, datetime]:
    return at + limit.accept, at + limit.resolve


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
