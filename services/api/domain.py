"""The api's read model: how the events it reads make its view of orders and dispatches, and what
Open311 calls open and closed. Who may do what: ``access``; the three rates: ``rates``; what a
request must hold: ``forms``. No I/O.

The read model follows events of one order from several topics (the lifecycle, the departments'
topics, the deadlines), which may arrive in any order between topics. Each projection is
idempotent and tolerant of that: a dispatch's status only moves forward, an order's status only
along dispatch's transitions, deadlines only later, and what is missing is filled in by whichever
event brings it first."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from shared.contract import (
    DeadlineMoved,
    DispatchAssigned,
    DispatchCancelled,
    DispatchReminder,
    NotificationRecord,
    WorkOrderData,
    WorkOrderReassigned,
)
from shared.pii import mask_phones_in_text

# ---- the read model ---------------------------------------------------------------------------

# An order's status -> the statuses a lifecycle event may move it to: dispatch's transitions (a
# step may be skipped). One order's lifecycle events share a key and a partition, so they come in
# order; this catches what may not: intake's workorder.created landing after dispatch's first event
# (two producers), an old event replayed under a new id.
STATUS_MOVES: dict[str, frozenset[str]] = {
    "new": frozenset({"dispatched", "accepted", "resolved", "closed", "merged"}),
    "dispatched": frozenset({"accepted", "resolved"}),
    "accepted": frozenset({"dispatched", "resolved"}),  # dispatched again after an escalation
    "resolved": frozenset({"closed", "dispatched"}),  # closed by the resident, or reopened (重办)
    "closed": frozenset(),
    "merged": frozenset(),
}
CLOSED = frozenset({"closed", "merged"})  # a merged report lives on in the order it joined
# What a resident's answer to the follow-up call (回访) does to a resolved order.
RATED = frozenset({"workorder.closed", "workorder.reopened"})

# A dispatch's status only moves to a higher rank: a cancelled one never goes back to assigned.
# "ended": over, but no event the api reads says how: a return (退单), an assisting department's
# own result. A cancellation that comes later still says it was cancelled.
# "returned": a lead's return under the centre's review; only its refusal moves it back
# (``OrderView.lifecycle``), as dispatch gives the dispatch back to the department.
DISPATCH_RANK = {"assigned": 0, "accepted": 1, "returned": 2, "ended": 3, "resolved": 4, "cancelled": 4}
ENDED = frozenset({"ended", "resolved", "cancelled"})


@dataclass(slots=True)
class DispatchView:
    id: str
    work_order_id: str
    department: str | None = None
    role: str | None = None
    level: str | None = None
    accept_by: datetime | None = None
    resolve_by: datetime | None = None
    status: str = "assigned"
    overdue: bool = False
    # Business times, for the three rates. assigned_at: the earliest event that showed the dispatch
    # (its announcement, normally); accepted_at: its 签收; resolved_at: the lead's 办结.
    assigned_at: datetime | None = None
    accepted_at: datetime | None = None
    resolved_at: datetime | None = None

    def move(self, status: str) -> None:
        if DISPATCH_RANK[status] > DISPATCH_RANK[self.status]:
            self.status = status
        if self.status in ENDED:
            self.overdue = False


@dataclass(slots=True)
class OrderView:
    """An order as the api answers for it: no personal data (summary and address come masked)."""

    id: str
    status: str = "new"
    level: str | None = None
    category: str | None = None
    category_name: str | None = None
    street: str | None = None
    community: str | None = None
    grid: str | None = None
    source: str | None = None
    urgency: str | None = None
    merged_into: str | None = None
    summary: str | None = None
    address: str | None = None
    lat: float | None = None
    lon: float | None = None
    requested_at: datetime | None = None  # the first event's business time
    updated_at: datetime | None = None  # the latest
    lead_dispatch_id: str | None = None
    lead_department: str | None = None
    resolve_by: datetime | None = None  # the lead dispatch's
    status_notes: str | None = None
    overdue: bool = False
    # The resident's answer dispatch applied (closed or reopened from resolved): the feedback
    # event's id (the lifecycle event's cause), matched to the answer itself for the rates.
    rated_by: str | None = None
    rated_at: datetime | None = None
    dispatches: dict[str, DispatchView] = field(default_factory=dict)
    changed: set[str] = field(default_factory=set)  # dispatch ids to write; "" for the order itself

    def dispatch(self, dispatch_id: str, seen: datetime | None = None) -> DispatchView:
        """The dispatch (made if new), to be written; ``seen``: the time of an event about it."""
        found = self.dispatches.get(dispatch_id)
        if found is None:
            found = self.dispatches[dispatch_id] = DispatchView(dispatch_id, self.id)
        found.assigned_at = earlier(found.assigned_at, seen)
        self.changed.add(dispatch_id)
        return found

    def lifecycle(self, kind: str, e: WorkOrderData, at: datetime, names: Mapping[str, str]) -> None:
        """A ``workorders.events.v1`` event. One whose status the order cannot move to (out of
        turn) still counts for the order's times and fills in what is missing, nothing more."""
        self._seen(at)
        moves = e.status == self.status or e.status in STATUS_MOVES[self.status]
        self._describe(e, overwrite=moves)
        if not moves:
            return
        previous = self.status
        self.status, self.level = e.status, e.to_level or e.level
        if kind == "workorder.merged":
            self.merged_into = e.merged_into
        elif kind == "workorder.dispatched":
            self._announce(e.dispatches or [], e.level, at)
        elif kind == "workorder.accepted" and e.dispatch_id:
            d = self.dispatch(e.dispatch_id, at)
            d.department = d.department or e.department
            d.accepted_at = earlier(d.accepted_at, at)
            d.move("accepted")
        elif kind == "workorder.resolved":
            self._resolve_lead(e.department, at)
        elif kind in RETURN_STATUS and e.dispatch_id:
            self._review(kind, e, at)
        if kind in RATED and previous == "resolved":  # only the resident's answer moves it so
            self.rated_by, self.rated_at = e.caused_by, at
        if self.status in CLOSED:  # what dispatch did not cancel: assists that finished their part
            for d in self.dispatches.values():
                if d.status not in ENDED:
                    self.dispatch(d.id).move("ended")
        self.status_notes = self._note(kind, e, previous, names) or self.status_notes
        self._refresh()

    def assigned(self, a: DispatchAssigned, at: datetime) -> None:
        self._seen(at)
        d = self.dispatch(a.dispatch_id, at)
        d.department, d.role, d.level = a.department, a.role, a.level
        d.accept_by = d.accept_by or a.accept_by
        d.resolve_by = later(d.resolve_by, a.resolve_by)
        # The order as dispatch describes it to departments: masked by intake, masked again here.
        self.summary = mask_phones_in_text(a.summary)
        self.address = mask_phones_in_text(a.address) if a.address else self.address
        location = a.location or {}
        if isinstance(location.get("lat"), int | float) and isinstance(location.get("lon"), int | float):
            self.lat, self.lon = float(location["lat"]), float(location["lon"])
        self.category = self.category or a.category
        self.category_name = self.category_name or a.category_name
        self.urgency = self.urgency or a.urgency
        self._refresh()

    def cancelled(self, c: DispatchCancelled, at: datetime) -> None:
        self._seen(at)
        d = self.dispatch(c.dispatch_id, at)
        d.department = d.department or c.department
        d.move("cancelled")
        self._refresh()

    def reminded(self, r: DispatchReminder) -> None:
        """督办: the clock's, not a change of the request (its times stay). Overdue until the
        dispatch ends; a reminder that comes after the end changes nothing."""
        d = self.dispatch(r.dispatch_id)
        d.department = d.department or r.department
        if r.overdue and d.status not in ENDED:
            d.overdue = True
        if r.deadline == "resolve":
            d.resolve_by = later(d.resolve_by, r.due)
        self.changed.add("")
        self._refresh()

    def deadline_moved(self, m: DeadlineMoved, at: datetime) -> None:
        """延期 granted: the resolve-by only moves later, whichever of its events comes first."""
        self._seen(at)
        d = self.dispatch(m.dispatch_id, at)
        d.resolve_by = later(d.resolve_by, m.resolve_by)
        self._refresh()

    # ---- helpers -------------------------------------------------------------------------------

    def _seen(self, at: datetime) -> None:
        self.requested_at = at if self.requested_at is None else min(self.requested_at, at)
        self.updated_at = at if self.updated_at is None else max(self.updated_at, at)
        self.changed.add("")

    def _describe(self, e: WorkOrderData, overwrite: bool) -> None:
        for name in ("category", "category_name", "street", "community", "grid", "source", "urgency"):
            if overwrite or getattr(self, name) is None:
                setattr(self, name, getattr(e, name))
        if self.level is None:
            self.level = e.level

    def _announce(self, entries: list[dict[str, Any]], level: str, at: datetime) -> None:
        """workorder.dispatched: its dispatches, and its lead the order's. The lead it replaces, if
        still open here, has ended: returned (退单), or cancelled on a department's topic not read
        yet."""
        for entry in entries:
            d = self.dispatch(str(entry["dispatch_id"]), at)
            d.department = entry.get("department") or d.department
            d.role = entry.get("role") or d.role
            d.level = d.level or level
            d.accept_by = d.accept_by or _time(entry.get("accept_by"))
            d.resolve_by = later(d.resolve_by, _time(entry.get("resolve_by")))
            if d.role == "lead" and d.id != self.lead_dispatch_id:
                previous = self.dispatches.get(self.lead_dispatch_id or "")
                if previous is not None:
                    self.dispatch(previous.id).move("ended")
                self.lead_dispatch_id = d.id

    def _review(self, kind: str, e: WorkOrderData, at: datetime) -> None:
        """派单异议审核: a return waits (no step for the department), stands (its part has ended),
        or is refused: the department's to sign for again, by its new times."""
        d = self.dispatch(e.dispatch_id or "", at)
        d.department = d.department or e.department
        if kind == "workorder.return_requested":
            d.move("returned")
        elif kind == "workorder.return_approved":
            d.move("ended")
        elif d.status == "returned":
            d.status, d.overdue = "assigned", False
            d.accept_by = later(d.accept_by, e.accept_by)
            d.resolve_by = later(d.resolve_by, e.resolve_by)

    def _resolve_lead(self, department: str | None, at: datetime) -> None:
        """workorder.resolved names the lead's department, not its dispatch: the current lead's."""
        lead = self.dispatches.get(self.lead_dispatch_id or "")
        if lead is not None and department in (None, lead.department):
            self.dispatch(lead.id).move("resolved")
            lead.resolved_at = earlier(lead.resolved_at, at)

    def _refresh(self) -> None:
        lead = self.dispatches.get(self.lead_dispatch_id or "")
        self.lead_department = lead.department if lead else None
        self.resolve_by = lead.resolve_by if lead else None
        self.overdue = any(d.overdue and d.status not in ENDED for d in self.dispatches.values())

    def _note(self, kind: str, e: WorkOrderData, previous: str, names: Mapping[str, str]) -> str | None:
        """The last reason or result in words (status_notes); None leaves the last one."""
        who = names.get(e.department or "", e.department or "")
        if kind == "workorder.merged":
            return f"merged into {e.merged_into}"
        if kind == "workorder.dispatched":
            lead = next((d for d in e.dispatches or [] if d.get("role") == "lead"), None)
            department = str(lead.get("department")) if lead else ""
            return f"dispatched to {names.get(department, department)}" if lead else None
        if kind == "workorder.accepted":
            d = self.dispatches.get(e.dispatch_id or "")
            return f"accepted by {who}" if d is not None and d.role == "lead" else None
        if kind == "workorder.escalated":
            return f"escalated to {e.to_level}: {mask_phones_in_text(e.reason or '')}".rstrip(": ")
        if kind == "workorder.resolved":
            return f"resolved by {who}: {mask_phones_in_text(e.result or '')}".rstrip(": ")
        if isinstance(e, WorkOrderReassigned):  # 改派 by the centre: why, in its own words
            return f"reassigned: {mask_phones_in_text(e.note)}"
        if kind == "workorder.reopened":
            return f"reopened ({mask_phones_in_text(e.reason or 'resident')})"
        if kind == "workorder.return_requested":
            return f"returned by {who}, waiting for the centre's review"
        if kind == "workorder.return_approved":
            return f"return by {who} approved" + (" (not reviewed in time)" if e.automatic else "")
        if kind == "workorder.return_refused":
            return f"return by {who} refused: {mask_phones_in_text(e.note or '')}".rstrip(": ")
        if kind == "workorder.closed":
            if previous == "closed":
                return None  # the same closing again: its note stands
            if previous == "resolved" and self.status_notes:
                unrated = " without a rating" if e.closure == "unrated" else ""
                return f"closed{unrated}; {self.status_notes}"
            return "closed: handled on the spot" if previous == "new" else "closed"
        return None


def later(current: datetime | None, other: datetime | None) -> datetime | None:
    if current is None or other is None:
        return current or other
    return max(current, other)


def earlier(current: datetime | None, other: datetime | None) -> datetime | None:
    if current is None or other is None:
        return current or other
    return min(current, other)


def _time(value: object) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def timeline_entry(kind: str, e: WorkOrderData, event_id: str, at: datetime) -> dict[str, Any]:
    """A lifecycle event as the order's timeline keeps it: what happened and why, no personal data."""
    notable: dict[str, Any] = {
        "reason": mask_phones_in_text(e.reason) if e.reason else None,
        "from_level": e.from_level,
        "to_level": e.to_level,
        "department": e.department,
        "dispatch_id": e.dispatch_id,
        "result": mask_phones_in_text(e.result) if e.result else None,
        "merged_into": e.merged_into,
        "request_type": e.request_type,
        "closure": e.closure,
        "satisfaction": e.satisfaction,
        "feedback_by": e.feedback_by.isoformat() if e.feedback_by else None,
        "return_reason": e.return_reason,
        "review_by": e.review_by.isoformat() if e.review_by else None,
        "accept_by": e.accept_by.isoformat() if e.accept_by else None,
        "automatic": e.automatic,
        # Who at the centre (staff, not a resident), and why: 改派 and the review of a return.
        "operator": e.operator,
        "note": mask_phones_in_text(e.note) if e.note else None,
    }
    if e.dispatches:
        notable["dispatches"] = [
            {k: d.get(k) for k in ("dispatch_id", "department", "role")} for d in e.dispatches
        ]
    return {
        "event_id": event_id,
        "work_order_id": e.work_order_id,
        "type": kind,
        "status": e.status,
        "level": e.to_level or e.level,
        "at": at,
        "caused_by": e.caused_by,
        "detail": {k: v for k, v in notable.items() if v is not None} or None,
    }


# ---- returns under the centre's review (派单异议审核) --------------------------------------------

# The lifecycle types of a review -> the return's status they leave. "cancelled": the order moved on
# (escalated, 改派, closed) before anyone decided, and dispatch cancelled the returned dispatch.
RETURN_STATUS = {
    "workorder.return_requested": "pending",
    "workorder.return_approved": "approved",
    "workorder.return_refused": "refused",
}
DECISION_COLUMNS = ("status", "decided_at", "operator", "automatic", "decision_note")


def return_row(kind: str, e: WorkOrderData, at: datetime) -> dict[str, Any] | None:
    """A review's event as the ``returns`` table keeps it, by its dispatch (a department returns a
    dispatch once): the request whole, a decision its columns only. Notes masked."""
    status = RETURN_STATUS.get(kind)
    if status is None or e.dispatch_id is None:
        return None
    note = mask_phones_in_text(e.note) if e.note else None
    if status != "pending":
        return decision_row(e.dispatch_id, status, at, e.operator, bool(e.automatic), note)
    return (
        {
            "dispatch_id": e.dispatch_id,
            "work_order_id": e.work_order_id,
            "department": e.department,
            "reason": e.return_reason,
            "note": note,
            "requested_at": at,
            "review_by": e.review_by,
        }
        | dict.fromkeys(DECISION_COLUMNS)
        | {"status": "pending"}
    )


def decision_row(
    dispatch_id: str,
    status: str,
    at: datetime,
    operator: str | None = None,
    automatic: bool | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    return {
        "dispatch_id": dispatch_id,
        "status": status,
        "decided_at": at,
        "operator": operator,
        "automatic": automatic,
        "decision_note": note,
    }


def merge_return(rows: dict[str, dict[str, Any]], row: dict[str, Any]) -> None:
    """A batch's returns, one row per dispatch: a decision completes a pending request; once
    decided, a return stays so (a replayed request or a later cancellation changes nothing). The
    database's statements (``store``) apply the same rule to what is already written."""
    current = rows.get(row["dispatch_id"])
    if current is None:
        rows[row["dispatch_id"]] = row
    elif current["status"] == "pending" and row["status"] != "pending":
        current.update({c: row[c] for c in DECISION_COLUMNS})
    elif row["status"] == "pending" and "work_order_id" not in current:
        rows[row["dispatch_id"]] = row | {c: current[c] for c in DECISION_COLUMNS}


def return_refusal(status: str) -> str | None:
    """Why the centre cannot decide a return any more (409), or None while it waits."""
    return None if status == "pending" else f"status: the return is {status}, no longer pending"


# ---- notifications (notifications.v1) -----------------------------------------------------------

NOTIFIED = {"notification.sent": "sent", "notification.failed": "failed"}


def notification_row(kind: str, n: NotificationRecord, at: datetime) -> dict[str, Any]:
    """A ``notification.sent`` or ``.failed`` as the ``notifications`` table keeps it; the error is
    a gateway's words, which may quote a number."""
    return {
        "notification_id": n.notification_id,
        "work_order_id": n.work_order_id,
        "type": NOTIFIED[kind],
        "audience": n.audience,
        "channel": n.channel,
        "template": n.template,
        "attempts": n.attempts,
        "error": mask_phones_in_text(n.error) if n.error else None,
        "at": at,
    }


def notification_rank(row: Mapping[str, Any]) -> tuple[datetime, int, bool]:
    """Which of two events of one notification is newer: the later; notify stamps both with their
    cause's time, so then the one with more attempts, then a send (it is final)."""
    return row["at"], row["attempts"], row["type"] == "sent"


def newer_notification(row: Mapping[str, Any], current: Mapping[str, Any] | None) -> bool:
    """Whether ``row`` replaces ``current``: only a newer event does (a replay changes nothing).
    ``store``'s upsert asks the same of the database's row."""
    return current is None or notification_rank(row) > notification_rank(current)


def open311_status(status: str) -> Literal["open", "closed"]:
    """Open311 knows two: closed is an order closed, or merged into another (并单)."""
    return "closed" if status in CLOSED else "open"
