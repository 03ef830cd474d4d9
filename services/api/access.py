"""Who may do what through the api: the department API's steps from a dispatch's status (as
dispatch's own transitions allow them), a 改派 of which order, each role's rights, and which dead
letter is the refusal of a response the api sent. No I/O."""

from __future__ import annotations

import orjson

from shared.contract import (
    DISPATCH_RESPONSES,
    ORDER_COMMANDS,
    DeadLetter,
)

# ---- what the HTTP side may do ----------------------------------------------------------------

# The department API's steps, each the contract's response it publishes on dispatch.responses.v1.
STEPS: dict[str, str] = {
    "accept": "dispatch.accepted",
    "reject": "dispatch.rejected",
    "progress": "dispatch.progress",
    "extend": "dispatch.extension_requested",
    "resolve": "dispatch.resolved",
}
# A dispatch's status as the read model has it -> the steps dispatch's TRANSITIONS take from there
# (services/dispatch/dispatches.py). What is refused here would only be refused by dispatch later.
STEPS_FROM: dict[str, frozenset[str]] = {
    "assigned": frozenset({"accept", "reject"}),
    "accepted": frozenset({"reject", "progress", "extend", "resolve"}),
    "returned": frozenset(),  # the lead's return waits for the centre's review
    "ended": frozenset(),  # returned, or an assist's part over: dispatch takes nothing more
    "resolved": frozenset(),
    "cancelled": frozenset(),
}


def steps_from(status: str) -> list[str]:
    """The steps a department may take now, in the order of ``STEPS``."""
    return [step for step in STEPS if step in STEPS_FROM.get(status, frozenset())]


def step_refusal(status: str, step: str) -> str | None:
    """Why the read model already knows ``step`` cannot apply (dispatch's words), or None."""
    allowed = step in STEPS_FROM.get(status, frozenset())
    return None if allowed else f"status: cannot apply {step} to a dispatch that is {status}"


# An order the centre may reassign (改派): open. "new" too: dispatch dispatches an order as it opens
# it, so a read model that still says new is behind, and dispatch has the last word.
REASSIGNABLE = frozenset({"new", "dispatched", "accepted"})


def reassign_refusal(status: str) -> str | None:
    return None if status in REASSIGNABLE else f"status: the order is {status}, not open"


# Who may do what: a role's kind (``department:heat`` is a department) -> its actions.
MAY: dict[str, frozenset[str]] = {
    "channel": frozenset({"post requests"}),
    "centre": frozenset({"use the centre's desk", "read the monthly report"}),
    "department": frozenset({"answer dispatches"}),
}


def may(role: str, action: str) -> bool:
    return action in MAY.get(role.split(":", 1)[0], frozenset())


def may_see_dispatch(role: str, department: str | None) -> bool:
    """A department sees its own dispatches; another's is as if it did not exist (404)."""
    return department is not None and role == f"department:{department}"


def refused_event(letter: DeadLetter) -> str | None:
    """The id of the event a dead letter refuses, when it is one the api may have sent (a response
    or a 改派); the caller matches it to what it sent itself. The event is the letter's raw text."""
    if letter.original_topic not in (DISPATCH_RESPONSES, ORDER_COMMANDS) or letter.raw_encoding != "utf-8":
        return None
    try:
        event = orjson.loads(letter.raw)
    except orjson.JSONDecodeError:
        return None
    found = event.get("id") if isinstance(event, dict) else None
    return found if isinstance(found, str) and 0 < len(found) <= 200 else None
