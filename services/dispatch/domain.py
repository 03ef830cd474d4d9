"""The work order as dispatch owns it: an aggregate holding the order's state and its dispatches,
with every rule about them. Commands change it and leave behind the events to publish and the
history to record; nothing here does I/O. Where an order goes and how long it has: ``routing``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared import contract
from shared.contract import (
    DeadlineMoved,
    DispatchAssigned,
    DispatchCancelled,
    DispatchReturnRefused,
    Level,
    MaskedContact,
    OrderOpened,
    ReassignRequested,
    RequestType,
    Urgency,
    WorkOrderData,
    WorkOrderReassigned,
)
from shared.pii import mask_phones_in_text
from shared.reference import LEVELS, next_level

from .dispatches import Dispatch, InvalidTransition, Refusal, Response, respond
from .records import Entry, Event
from .routing import (
    OrderFacts,
    Policy,
    extension_allowed,
    initial_level,
    named_departments,
    onward,
    placed_at,
    triage_desk,
)

# (order status, what happens to it) -> new order status. What is not here is refused.
ORDER_TRANSITIONS: dict[tuple[str, str], str] = {
    ("new", "dispatch"): "dispatched",
    ("dispatched", "dispatch"): "dispatched",  # again, after a return or up a level
    ("accepted", "dispatch"): "dispatched",
    ("dispatched", "accept"): "accepted",  # the lead signs for it (签收)
    ("accepted", "accept"): "accepted",
    ("dispatched", "resolve"): "resolved",  # the lead has resolved it (办结)
    ("accepted", "resolve"): "resolved",
    ("resolved", "close"): "closed",  # the resident is satisfied, or nobody rated it in time
    ("new", "answer"): "closed",  # 直接答复: the operator answered it on the call, never dispatched
    ("resolved", "reopen"): "dispatched",  # the resident is not (重办)
    ("dispatched", "reassign"): "dispatched",  # 改派 by the centre, while the order is open
    ("accepted", "reassign"): "dispatched",
}
OPEN_STATUSES = ("new", "dispatched", "accepted")
# The order's fields every lifecycle event carries, beside its id and cause.
_LIFECYCLE_FIELDS = (
    "status",
    "level",
    "category",
    "category_name",
    "street",
    "community",
    "grid",
    "source",
    "urgency",
    "request_type",
)
ORDER_STATUSES = ("new", "dispatched", "accepted", "resolved", "closed")
ANSWERED = "answered on the call by the operator"


def next_status(status: str, what: str) -> str:
    """The order's status after ``what`` happens to it, or InvalidTransition saying why not."""
    new = ORDER_TRANSITIONS.get((status, what))
    if new is None:
        raise InvalidTransition(f"cannot {what} a work order that is {status}")
    return new


@dataclass(slots=True)
class Order:
    id: str
    status: str
    level: Level
    source: str
    category: str
    category_name: str
    urgency: Urgency
    street: str | None
    community: str | None
    grid: str | None
    property_company: str | None
    summary: str
    address: str | None
    location: dict[str, Any] | None
    contact: dict[str, Any] | None  # masked only
    opened_at: datetime
    updated_at: datetime
    reopen_count: int = 0
    satisfaction: str | None = None
    feedback_by: datetime | None = None  # resolved: unrated by then, it closes (回访 that ends)
    request_type: RequestType | None = None  # None: opened before request types
    closure: str | None = None  # how it closed (contract.Closure), once closed
    dispatches: list[Dispatch] = field(default_factory=list)
    # What the current command left behind: the caller publishes, records and saves them.
    cause: str = ""
    at: datetime | None = None
    events: list[Event] = field(default_factory=list)
    history: list[Entry] = field(default_factory=list)
    loaded: dict[str, Any] | None = None  # its row's values as the store read them (saved if changed)

    @classmethod
    def opened(cls, o: OrderOpened, clustered: bool, policy: Policy, cause: str, at: datetime) -> Order:
        """A new order from intake, dispatched at its starting level (the street's, in a cluster);
        one the operator answered on the call is closed at once instead."""
        facts = OrderFacts(o.category, o.urgency, o.community, o.property_company)
        order = cls(
            id=o.work_order_id,
            status="new",
            level=initial_level(facts, policy.ref, clustered),
            source=o.source,
            category=o.category,
            category_name=o.category_name,
            urgency=o.urgency,
            street=o.street,
            community=o.community,
            grid=o.grid,
            property_company=o.property_company,
            summary=o.summary,
            address=o.address,
            location=o.location,
            contact=o.contact.model_dump() if o.contact else None,
            opened_at=at,
            updated_at=at,
            request_type=o.request_type,
        )
        if o.answer is not None:
            order.begin(cause, at).answered(o.answer)
        else:
            order.begin(cause, at)._dispatch(order.level, policy)
        return order

    def answered(self, answer: str) -> None:
        """直接答复: recorded and closed with the operator's answer as its result, never dispatched."""
        result = mask_phones_in_text(answer)
        self._move("answer")
        self.closure = "answered_directly"
        self._publish("workorder.closed", closure=self.closure, result=result, reason=ANSWERED)
        self._record("workorder.closed", {"closure": self.closure, "result": result})

    def begin(self, cause: str, at: datetime) -> Order:
        """A command starts: ``cause`` is the event id behind it, ``at`` its business time."""
        self.cause, self.at = cause, at
        return self

    @property
    def now(self) -> datetime:
        assert self.at is not None, "begin() a command first"
        return self.at

    @property
    def facts(self) -> OrderFacts:
        return OrderFacts(self.category, self.urgency, self.community, self.property_company)

    # ---- the department's responses ----------------------------------------------------------

    def respond(self, r: Response) -> Dispatch:
        """The dispatch the response is about, moved to its next status, after checking that this
        department may say so of it."""
        dispatch = self._answered(r)
        self._step(dispatch, r.type)
        return dispatch

    def _answered(self, r: Response) -> Dispatch:
        """The dispatch a response is about, if it is this department's, of this order."""
        dispatch = next((d for d in self.dispatches if d.id == r.dispatch_id), None)
        if dispatch is None:
            raise Refusal(f"data.dispatch_id: no dispatch {r.dispatch_id!r}")
        if dispatch.work_order_id != r.work_order_id:
            raise Refusal(
                f"data.work_order_id: dispatch {dispatch.id} belongs to {dispatch.work_order_id}, "
                f"not {r.work_order_id}"
            )
        if dispatch.department != r.department:
            raise Refusal(
                f"data.department: dispatch {dispatch.id} went to {dispatch.department!r}, "
                f"not {r.department!r}"
            )
        return dispatch

    @staticmethod
    def _step(dispatch: Dispatch, what: str) -> None:
        status = respond(dispatch.status, what)
        if status != dispatch.status:
            dispatch.status, dispatch.changed = status, True

    def accept(self, r: Response) -> None:
        """签收. The lead's acceptance is the order's; an assisting department's leaves it as it is."""
        dispatch = self.respond(r)
        dispatch.accepted_at = self.now
        if dispatch.role == "lead":
            self._move("accept")
        self.updated_at = self.now
        self._publish("workorder.accepted", department=r.department, dispatch_id=r.dispatch_id)
        self._record("dispatch.accepted", {"department": r.department})

    def progress(self, r: Response, note: str | None) -> None:
        self.respond(r)
        self._record("dispatch.progress", {"department": r.department, "note": note})

    def extend(self, r: Response, resolve_by: datetime, policy: Policy) -> None:
        """延期: once per dispatch, within the policy's longest extension."""
        dispatch = self.respond(r)
        refusal = extension_allowed(
            dispatch.created_at,
            dispatch.resolve_by,
            resolve_by,
            dispatch.extended,
            policy.extension_max_factor,
        )
        if refusal:
            raise Refusal(refusal)
        dispatch.resolve_by, dispatch.extended, dispatch.changed = resolve_by, True, True
        moved = DeadlineMoved(work_order_id=self.id, dispatch_id=dispatch.id, resolve_by=resolve_by)
        self.events.append(Event(contract.DISPATCH_DEADLINES, "dispatch.deadline.moved", moved))
        self._record("dispatch.extension_granted", moved.model_dump(mode="json"))

    def reject(self, r: Response, reason: str, note: str | None, policy: Policy) -> None:
        """退单. A department returns an order once at a level. An assisting department that
        returns its part just drops out. The lead's return waits for the centre's review
        (派单异议审核) when the policy says so; otherwise, or once approved, the order goes on
        (``_after_return``)."""
        dispatch = self._answered(r)
        if r.department in self.returned_by(dispatch.level):
            raise Refusal(
                f"data.department: {r.department} has already returned this order once "
                f"at the {dispatch.level} level"
            )
        review = policy.return_review and dispatch.role == "lead"
        self._step(dispatch, "return.requested" if review else r.type)
        self._record("dispatch.rejected", {"department": r.department, "reason": reason, "note": note})
        if dispatch.role != "lead":
            return
        if not review:
            self._return_stands(dispatch, reason, policy)
            return
        dispatch.returned_at, dispatch.return_reason = self.now, reason
        dispatch.review_by = policy.review_by(self.now)
        self.updated_at = self.now
        changes = {
            "department": r.department,
            "dispatch_id": dispatch.id,
            "return_reason": reason,
            "note": note,
            "review_by": dispatch.review_by,
        }
        self._publish("workorder.return_requested", **changes)
        self._record("workorder.return_requested", {**changes, "review_by": dispatch.review_by.isoformat()})

    # ---- the centre's review of a return (派单异议审核) ---------------------------------------

    def approve_return(
        self,
        dispatch_id: str,
        operator: str,
        note: str | None,
        policy: Policy,
        *,
        lead: str | None = None,
        assist: tuple[str, ...] | list[str] = (),
        automatic: bool = False,
    ) -> None:
        """The return stands: the order goes to the departments named (lead first), else on as a
        return goes (``_after_return``). Where nobody is left at any level, the centre must name
        them: refused, and the return stays under review."""
        dispatch = self._under_review(dispatch_id)
        reason = dispatch.return_reason or "other"
        named = named_departments(policy.ref, lead, list(assist))
        found = (self.level, named) if named else self._after_return(reason, policy)
        if found is None:
            raise Refusal(
                "data.lead: nobody is left to take this order at any level (each department and desk "
                "returned it); name the departments (lead, assist) to approve the return"
            )
        self._step(dispatch, "return.approved")
        self.updated_at = self.now
        changes = {
            "department": dispatch.department,
            "dispatch_id": dispatch.id,
            "operator": operator,
            "note": note,
            "automatic": automatic,
        }
        self._publish("workorder.return_approved", **changes)
        self._record("workorder.return_approved", changes | {"lead": lead, "assist": list(assist) or None})
        self._cancel_open(f"returned by {dispatch.department}: {reason}")
        self._climb_to(found[0])
        self._dispatch(found[0], policy, to=found[1])

    def refuse_return(self, dispatch_id: str, operator: str, note: str, policy: Policy) -> None:
        """The dispatch is the department's again, with the reviewer's note: its time to sign for
        it counted anew from now; its time to resolve moved on by the time the review took (its
        clock stood still meanwhile). It has returned this dispatch once and cannot again."""
        dispatch = self._under_review(dispatch_id)
        self._step(dispatch, "return.refused")
        accept_by, _ = policy.deadlines(self.now, self.urgency, self.category, False, self.request_type)
        waited = self.now - (dispatch.returned_at or self.now)
        dispatch.accept_by, dispatch.resolve_by = accept_by, max(dispatch.resolve_by + waited, accept_by)
        self.updated_at = self.now
        refused = DispatchReturnRefused(
            dispatch_id=dispatch.id,
            work_order_id=self.id,
            department=dispatch.department,
            note=note,
            accept_by=dispatch.accept_by,
            resolve_by=dispatch.resolve_by,
        )
        self.events.append(
            Event(contract.department_topic(dispatch.department), "dispatch.return_refused", refused)
        )
        changes = {
            "department": dispatch.department,
            "dispatch_id": dispatch.id,
            "operator": operator,
            "note": note,
            "accept_by": dispatch.accept_by,
            "resolve_by": dispatch.resolve_by,
        }
        self._publish("workorder.return_refused", **changes)
        self._record("workorder.return_refused", refused.model_dump(mode="json") | {"operator": operator})

    def review_expired(self, dispatch_id: str, review_by: datetime, policy: Policy) -> bool:
        """Nobody reviewed the return in time: approved automatically (operator ``system``), and
        True. A decision already made (the timer is stale) is only recorded; where nobody is left
        to take the order, it stays under review: a person decides, never a desk that said no."""
        dispatch = next((d for d in self.dispatches if d.id == dispatch_id), None)
        if dispatch is None or dispatch.status != "returned" or dispatch.review_by != review_by:
            self._record("return.review_stale", {"dispatch_id": dispatch_id})
            return False
        if not dispatch.return_reason or self._after_return(dispatch.return_reason, policy) is None:
            self._record("return.review_waiting", {"dispatch_id": dispatch_id, "reason": "nobody is left"})
            return False
        self.approve_return(dispatch_id, "system", "not reviewed in time", policy, automatic=True)
        return True

    def _under_review(self, dispatch_id: str) -> Dispatch:
        dispatch = next((d for d in self.dispatches if d.id == dispatch_id), None)
        if dispatch is None:
            raise Refusal(f"data.dispatch_id: no dispatch {dispatch_id!r} of work order {self.id}")
        if dispatch.status != "returned":
            raise Refusal(
                f"data.dispatch_id: dispatch {dispatch_id} has no return waiting for review "
                f"(the dispatch is {dispatch.status})"
            )
        return dispatch

    def _after_return(self, reason: str, policy: Policy) -> tuple[Level, list[tuple[str, str]]] | None:
        """Where a return that stands sends the order. Not ours: the next candidate of the duty
        list (up a level when none is left there). Not enough to act on, a duplicate, or other: the
        triage desk, unless it returned it itself. None: nobody is left at any level."""
        if reason != "not_our_responsibility":
            desk = triage_desk(self.facts, self.level, policy.ref)
            if desk not in self.returned_by(self.level):
                return self.level, [(desk, "lead")]
        return onward(self.facts, self.level, policy.ref, self.returned_by)

    def _return_stands(self, dispatch: Dispatch, reason: str, policy: Policy) -> None:
        """Without a review: the return moves the order at once (to the top's desk, as before the
        review, when nobody is left)."""
        self._cancel_open(f"returned by {dispatch.department}: {reason}")
        found = self._after_return(reason, policy)
        if found is None:
            self._dispatch(self.level, policy)
            return
        self._climb_to(found[0])
        self._dispatch(found[0], policy, to=found[1])

    def resolve(self, r: Response, result: str, policy: Policy) -> None:
        """办结. The lead's result resolves the order, and the wait for the resident's rating starts;
        assisting departments' results are recorded."""
        dispatch = self.respond(r)
        dispatch.resolved_at = self.now
        detail = {"department": r.department, "result": result}
        if dispatch.role != "lead":  # 协同处置
            self._record("dispatch.resolved", detail)
            return
        self._move("resolve")
        self.updated_at = self.now
        self.feedback_by = policy.feedback_by(self.now)
        self._publish(
            "workorder.resolved", department=r.department, result=result, feedback_by=self.feedback_by
        )
        self._record("workorder.resolved", detail)

    # ---- the resident's answer, the ladder, clusters ------------------------------------------

    def feedback(self, satisfaction: str, resolved: bool, policy: Policy) -> None:
        """回访. Satisfied and resolved: closed. Otherwise reopened (重办) to the same level with half
        the time; the second dissatisfaction climbs a level instead. On an order answered on the
        call, the answer is recorded and the order stays closed: nobody was sent to redo."""
        detail = {"satisfaction": satisfaction, "resolved": resolved}
        if self.status == "closed" and self.closure == "answered_directly":
            self._record("feedback.recorded", detail)
            return
        if self.status != "resolved":
            raise Refusal(f"work order {self.id} is {self.status}; feedback applies to a resolved order")
        self.satisfaction = satisfaction
        self.updated_at = self.now
        self.feedback_by = None
        if resolved and satisfaction != "dissatisfied":
            self._cancel_open("closed")
            self._move("close")
            self.closure = "rated"
            reason = f"resident: {satisfaction}"
            self._publish("workorder.closed", closure="rated", satisfaction=satisfaction, reason=reason)
            self._record("workorder.closed", detail)
            return
        second = self.reopen_count >= 1
        self.reopen_count += 1
        self._move("reopen")
        self._publish("workorder.reopened", reason=f"resident: {satisfaction}", satisfaction=satisfaction)
        self._record("workorder.reopened", detail)
        higher = next_level(self.level)
        if second and higher:
            self.escalate(higher, "resident dissatisfied twice", policy)
        else:
            self._dispatch(self.level, policy, shorter=True)

    def feedback_expired(self, feedback_by: datetime) -> None:
        """回访 that ends: resolved and not rated by ``feedback_by``, the order closes as unrated,
        neither satisfied nor dissatisfied. Stale once rated, or resolved again since."""
        if self.status != "resolved" or self.feedback_by != feedback_by:
            self._record("feedback.expiry_stale", {"feedback_by": feedback_by.isoformat()})
            return
        self.feedback_by = None
        self.updated_at = self.now
        self._cancel_open("closed")
        self._move("close")
        self.closure = "unrated"
        reason = "no feedback from the resident in time"
        self._publish("workorder.closed", closure="unrated", reason=reason)
        self._record("workorder.closed", {"closure": "unrated", "feedback_by": feedback_by.isoformat()})

    def escalate(self, to_level: Level, reason: str, policy: Policy) -> None:
        """Up the ladder: open dispatches cancelled, the order sent to whoever acts there."""
        self._cancel_open(f"escalated to {to_level}: {reason}")
        self._climb(to_level, reason)
        self._dispatch(to_level, policy)

    def escalation_requested(self, from_level: str, to_level: Level, reason: str, policy: Policy) -> None:
        """A missed deadline (from escalation's clocks): stale once the order has moved on since."""
        if self.status not in OPEN_STATUSES or self.level != from_level:
            self._record("escalation.stale", {"reason": reason})
            return
        self.escalate(to_level, reason, policy)

    def reassign(self, r: ReassignRequested, policy: Policy) -> None:
        """改派: the centre re-tags or re-places the order, or names who handles it. What is open is
        cancelled; the order starts anew at its tier, dispatched by the duty list or to the named
        departments, its deadlines counted from now."""
        ref = policy.ref
        category = ref.find_category(r.category) if r.category is not None else None
        if r.category is not None and category is None:
            raise Refusal(f"data.category: unknown category {r.category!r}")
        place = placed_at(ref, r.community, r.grid)
        named = named_departments(ref, r.lead, r.assist)
        self._move("reassign")
        self._cancel_open(f"reassigned: {r.note}")
        if category is not None:
            self.category, self.category_name = category.code, category.name
        if place is not None:
            self.street, self.community, self.grid = place
            self.property_company = None  # the compound's, if any, is not known at the new place
        from_level, self.level = self.level, initial_level(self.facts, ref)
        changes = {"from_level": from_level, "to_level": self.level, "operator": r.operator, "note": r.note}
        self.events.append(
            Event(contract.WORKORDER_EVENTS, "workorder.reassigned", self._data(WorkOrderReassigned, changes))
        )
        detail = r.model_dump(exclude={"work_order_id"}, exclude_defaults=True)
        self._record("workorder.reassigned", detail)
        self._dispatch(self.level, policy, to=named or None)

    def raise_for_cluster(self, reason: str, policy: Policy) -> None:
        """工单预警: the street coordinates a concentrated cluster; its open orders below go up now."""
        if self.status in OPEN_STATUSES and LEVELS.index(self.level) < LEVELS.index("street"):
            self.escalate("street", reason, policy)

    # ---- dispatching ----------------------------------------------------------------------------

    def returned_by(self, level: str) -> frozenset[str]:
        """Departments that returned (退单) this order at that level: their return stood, waits
        for review, or was refused (they had their one return). Each level is a new duty: a
        department that returned the order below is asked again where the duty list names it."""
        return frozenset(
            d.department
            for d in self.dispatches
            if d.level == level and (d.status in ("rejected", "returned") or d.returned_at is not None)
        )

    def _dispatch(
        self, level: Level, policy: Policy, *, shorter: bool = False, to: list[tuple[str, str]] | None = None
    ) -> None:
        """Send the order to whoever acts at that level by the duty list, or ``to`` the departments
        named (lead first). When every candidate there has returned it, it goes up a level; at the
        top, to the triage desk."""
        facts = self.facts
        who = to
        if who is None:
            found = onward(facts, level, policy.ref, self.returned_by)
            top = LEVELS[-1]
            at, who = found or (top, [(triage_desk(facts, top, policy.ref), "lead")])
            self._climb_to(at, level)
            level = at
        accept_by, resolve_by = policy.deadlines(
            self.now, self.urgency, self.category, shorter, self.request_type
        )
        attempts: dict[str, int] = {}
        for d in self.dispatches:
            attempts[d.department] = attempts.get(d.department, 0) + 1
        contact = MaskedContact.model_validate(self.contact) if self.contact else None
        summaries = []
        for department, role in who:
            dispatch = Dispatch(
                id=f"{self.id}-D{len(self.dispatches) + 1}",
                work_order_id=self.id,
                department=department,
                role=role,
                level=level,
                attempt=attempts.get(department, 0) + 1,
                status="assigned",
                accept_by=accept_by,
                resolve_by=resolve_by,
                created_at=self.now,
                new=True,
            )
            self.dispatches.append(dispatch)
            assigned = DispatchAssigned(
                dispatch_id=dispatch.id,
                work_order_id=self.id,
                department=department,
                role=role,
                level=level,
                category=self.category,
                category_name=self.category_name,
                summary=self.summary,
                address=self.address,
                location=self.location,
                urgency=self.urgency,
                accept_by=accept_by,
                resolve_by=resolve_by,
                contact=contact,
                attempt=dispatch.attempt,
                request_type=self.request_type,
            )
            self.events.append(Event(contract.department_topic(department), "dispatch.assigned", assigned))
            summaries.append(dispatch.summary())
        self._move("dispatch")
        self.level = level
        self.updated_at = self.now
        self._publish("workorder.dispatched", dispatches=summaries)
        self._record("workorder.dispatched", {"dispatches": summaries})

    def _cancel_open(self, reason: str) -> None:
        """What is open is cancelled; a return under review too: the order moved on without it."""
        for d in self.dispatches:
            if d.status in ("assigned", "accepted", "returned"):
                d.status, d.changed = "cancelled", True
                cancelled = DispatchCancelled(
                    dispatch_id=d.id, work_order_id=self.id, department=d.department, reason=reason
                )
                self.events.append(
                    Event(contract.department_topic(d.department), "dispatch.cancelled", cancelled)
                )

    def _climb_to(self, to_level: Level, from_level: Level | None = None) -> None:
        """Up a level at a time to ``to_level``, each step because everyone there returned it."""
        at = from_level or self.level
        while LEVELS.index(at) < LEVELS.index(to_level):
            higher = next_level(at)
            assert higher is not None
            self._climb(higher, "every department at this level returned it", "all returned", at)
            at = higher

    def _climb(
        self, to_level: Level, reason: str, noted: str | None = None, from_level: Level | None = None
    ) -> None:
        """``workorder.escalated`` and its line in the history; the dispatching that follows moves it."""
        self._publish(
            "workorder.escalated", from_level=from_level or self.level, to_level=to_level, reason=reason
        )
        self._record("workorder.escalated", {"reason": noted or reason}, level=to_level)

    def _move(self, what: str) -> None:
        self.status = next_status(self.status, what)

    def _publish(self, type: str, **changes: Any) -> None:
        self.events.append(Event(contract.WORKORDER_EVENTS, type, self._data(WorkOrderData, changes)))

    def _data(self, model: type[WorkOrderData], changes: dict[str, Any]) -> WorkOrderData:
        values = {f: getattr(self, f) for f in _LIFECYCLE_FIELDS}
        return model.model_validate(values | {"work_order_id": self.id, "caused_by": self.cause} | changes)

    def _record(self, event: str, detail: dict[str, Any] | None, level: str | None = None) -> None:
        self.history.append(Entry(event, self.status, level or self.level, detail))
