"""A dispatch: one department's part in an order, and the steps its responses may take. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


class Refusal(ValueError):
    """A command the order's rules do not allow; the message says why, naming the field."""


class InvalidTransition(Refusal):
    pass


# (dispatch status, response type or the centre's decision) -> new dispatch status. A lead's
# return (退单) under review is "returned" until the centre approves it (it stands: rejected) or
# refuses it (the department's again: assigned, to sign for anew).
TRANSITIONS: dict[tuple[str, str], str] = {
    ("assigned", "dispatch.accepted"): "accepted",
    ("assigned", "dispatch.rejected"): "rejected",
    ("accepted", "dispatch.rejected"): "rejected",
    ("assigned", "return.requested"): "returned",
    ("accepted", "return.requested"): "returned",
    ("returned", "return.approved"): "rejected",
    ("returned", "return.refused"): "assigned",
    ("accepted", "dispatch.progress"): "accepted",
    ("accepted", "dispatch.extension_requested"): "accepted",
    ("accepted", "dispatch.resolved"): "resolved",
}


def respond(status: str, response_type: str) -> str:
    """The dispatch's next status, or InvalidTransition saying why not."""
    new = TRANSITIONS.get((status, response_type))
    if new is None:
        verb = response_type.removeprefix("dispatch.").removeprefix("return.")
        raise InvalidTransition(f"cannot apply {verb} to a dispatch that is {status}")
    return new


@dataclass(slots=True)
class Dispatch:
    id: str
    work_order_id: str
    department: str
    role: str  # lead | assist
    level: str
    attempt: int
    status: str  # assigned, accepted, returned (under review), resolved, rejected, cancelled
    accept_by: datetime
    resolve_by: datetime
    created_at: datetime
    accepted_at: datetime | None = None
    resolved_at: datetime | None = None
    extended: bool = False
    # A return put to the centre's review: when, why, and when the review is due. Kept after a
    # refusal: the department has returned this dispatch once.
    returned_at: datetime | None = None
    return_reason: str | None = None
    review_by: datetime | None = None
    changed: bool = False  # since it was loaded: saved by its id
    new: bool = False  # made by this command: inserted

    def summary(self) -> dict[str, Any]:
        """As ``workorder.dispatched`` lists it."""
        return {
            "dispatch_id": self.id,
            "department": self.department,
            "role": self.role,
            "accept_by": self.accept_by.isoformat(),
            "resolve_by": self.resolve_by.isoformat(),
        }

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "work_order_id": self.work_order_id,
            "department": self.department,
            "role": self.role,
            "level": self.level,
            "attempt": self.attempt,
            "status": self.status,
            "accept_by": self.accept_by,
            "resolve_by": self.resolve_by,
            "created_at": self.created_at,
            "extended": self.extended,
            "returned_at": self.returned_at,
            "return_reason": self.return_reason,
            "review_by": self.review_by,
        }


@dataclass(frozen=True, slots=True)
class Response:
    """A department's response, as far as the order's rules look at it."""

    type: str  # dispatch.accepted, .progress, .extension_requested, .rejected, .resolved
    dispatch_id: str
    work_order_id: str
    department: str
