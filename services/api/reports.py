"""The monthly report (月度报告): every figure of a month's orders, computed from the rows of the
read model. Pure: ``report_queries`` loads the rows, ``report_pages`` writes CSV and HTML. The
formulas are in docs/reports.md; each is one function or property here.

The cohort is the month's orders: every order first seen in the month (its ``requested_at``, in
the jurisdiction's zone), counted as the month ended (``cutoff``: the month's end, or now for the
current month). What happened after the cutoff is not counted, so a past month's report is the same
whenever it is run."""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from .rates import SATISFIED, ratio

# ---- the month ---------------------------------------------------------------------------------

MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


@dataclass(frozen=True, slots=True)
class Month:
    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        """``YYYY-MM``; a ValueError naming the field otherwise."""
        found = MONTH.match(text)
        if found is None or not 2000 <= int(found[1]) <= 2999:
            raise ValueError("month: expected YYYY-MM, a month from 2000-01 to 2999-12")
        return cls(int(found[1]), int(found[2]))

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def previous(self) -> Month:
        return Month(self.year - 1, 12) if self.month == 1 else Month(self.year, self.month - 1)

    def next(self) -> Month:
        return Month(self.year + 1, 1) if self.month == 12 else Month(self.year, self.month + 1)

    def start(self, zone: ZoneInfo) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=zone)

    def end(self, zone: ZoneInfo) -> datetime:
        return self.next().start(zone)


# ---- the rows it is computed from ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderRow:
    id: str
    status: str
    category: str | None
    category_name: str | None
    street: str | None
    community: str | None
    source: str | None
    urgency: str | None
    requested_at: datetime
    merged_into: str | None = None


@dataclass(frozen=True, slots=True)
class DispatchRow:
    id: str
    work_order_id: str
    department: str | None
    role: str | None
    level: str | None
    status: str  # the read model's: assigned, accepted, ended, resolved, cancelled
    assigned_at: datetime | None
    accept_by: datetime | None
    accepted_at: datetime | None
    resolve_by: datetime | None
    resolved_at: datetime | None


@dataclass(frozen=True, slots=True)
class EventRow:
    """One lifecycle event of the timeline (``workorders.events.v1``), in the order it was written."""

    work_order_id: str
    type: str
    status: str
    at: datetime
    caused_by: str
    detail: Mapping[str, Any]


# ---- what the events say of an order ---------------------------------------------------------------

REQUEST_TYPES = ("inquiry", "help", "complaint", "report", "suggestion")
UNKNOWN = "unknown"
CLOSURES = ("rated", "unrated", "answered_directly", "handled_on_site")
LEVELS = ("property", "grid", "community", "street", "district")
REVIEW_OUTCOMES = ("approved", "approved_automatically", "refused", "not_reviewed")
ESCALATION_REASONS = ("accept_overdue", "resolve_overdue", "dissatisfied_twice", "all_returned", "other")


def request_type(events: Sequence[EventRow]) -> str:
    """The order's 诉求类型: the last one its events name (改派 may re-tag), else unknown."""
    named = [e.detail["request_type"] for e in events if e.detail.get("request_type") in REQUEST_TYPES]
    return str(named[-1]) if named else UNKNOWN


def closure(order: OrderRow, events: Sequence[EventRow], answered: bool) -> str | None:
    """How the order closed, None while open. The event's own ``closure`` wins; where it is absent
    (services that do not publish it yet): closed straight from new is an on-site fix for a grid
    report and a direct answer for a call; from resolved, rated when a resident's answer closed it
    (``answered``), unrated otherwise."""
    previous = "new"
    for e in events:
        if e.type == "workorder.closed":
            given = e.detail.get("closure")
            if given in CLOSURES:
                return str(given)
            if previous == "new":
                return "handled_on_site" if order.source == "grid" else "answered_directly"
            return "rated" if answered else "unrated"
        previous = e.status
    return None


def ratings(events: Sequence[EventRow], feedback: Mapping[str, str]) -> list[str]:
    """The residents' answers dispatch applied, in order: a close or a reopening from resolved. The
    satisfaction is the event's, else the answer's that caused it (``feedback``: event id ->
    satisfaction). A close from resolved with neither is not a rating (unrated)."""
    found, previous = [], "new"
    for e in events:
        if e.type in ("workorder.closed", "workorder.reopened") and previous == "resolved":
            said = e.detail.get("satisfaction") or feedback.get(e.caused_by)
            if said is not None and e.detail.get("closure") in (None, "rated"):
                found.append(str(said))
        previous = e.status
    return found


def escalation_reason(reason: str | None) -> str:
    """The kind of an escalation's reason, from the words dispatch and escalation use."""
    text = reason or ""
    if text.startswith("not signed for"):
        return "accept_overdue"
    if text.startswith("not resolved"):
        return "resolve_overdue"
    if "dissatisfied twice" in text:
        return "dissatisfied_twice"
    if "returned" in text:
        return "all_returned"
    return "other"


@dataclass(frozen=True, slots=True)
class Escalation:
    work_order_id: str
    from_level: str
    to_level: str
    reason: str


@dataclass(frozen=True, slots=True)
class Return:
    """A department's return (退单) of an order it led, and what the review made of it."""

    work_order_id: str
    dispatch_id: str
    department: str | None
    reason: str  # not_our_responsibility, insufficient_info, duplicate, other, or unknown
    outcome: str  # one of REVIEW_OUTCOMES
    at: datetime | None = None  # when it was returned (workorder.return_requested), where known


def returns(order_id: str, events: Sequence[EventRow], dispatches: Sequence[DispatchRow]) -> list[Return]:
    """Returns named by the review's events (requested, then approved, automatically or not, or
    refused), and the lead dispatches that ended without one (returned before reviews existed)."""
    found: dict[str, Return] = {}
    for e in events:
        d_id = str(e.detail.get("dispatch_id") or "")
        if not d_id:
            continue
        if e.type == "workorder.return_requested":
            reason = str(e.detail.get("return_reason") or UNKNOWN)
            found[d_id] = Return(order_id, d_id, e.detail.get("department"), reason, "not_reviewed", e.at)
        elif e.type in ("workorder.return_approved", "workorder.return_refused") and d_id in found:
            if e.type == "workorder.return_refused":
                outcome = "refused"
            else:
                outcome = "approved_automatically" if e.detail.get("automatic") else "approved"
            r = found[d_id]
            found[d_id] = Return(r.work_order_id, r.dispatch_id, r.department, r.reason, outcome, r.at)
    for d in dispatches:
        if d.role == "lead" and d.status == "ended" and d.id not in found:
            found[d.id] = Return(order_id, d.id, d.department, UNKNOWN, "not_reviewed")
    return sorted(found.values(), key=lambda r: r.dispatch_id)


# ---- one order, as the month's end saw it ----------------------------------------------------------


@dataclass(slots=True)
class Case:
    """An order of the cohort with what the report needs of it, everything up to the cutoff."""

    order: OrderRow
    type: str
    dispatches: list[DispatchRow]
    closure: str | None
    rating: str | None  # the last answer applied
    escalations: list[Escalation]
    returns: list[Return]
    resolved_at: datetime | None  # the first 办结
    district: str | None

    @property
    def merged(self) -> bool:
        return self.order.status == "merged" or self.order.merged_into is not None


def case(
    order: OrderRow,
    events: Sequence[EventRow],
    dispatches: Sequence[DispatchRow],
    feedback: Mapping[str, str],
    cutoff: datetime,
    districts: Mapping[str, str],
) -> Case:
    seen = [e for e in events if e.at < cutoff]
    mine = [
        _until(d, cutoff, _ended_at(d, seen))
        for d in dispatches
        if d.assigned_at is None or d.assigned_at < cutoff
    ]
    answers = ratings(seen, feedback)
    escalations = [
        Escalation(
            order.id,
            str(e.detail.get("from_level") or UNKNOWN),
            str(e.detail.get("to_level") or e.detail.get("level") or UNKNOWN),
            escalation_reason(e.detail.get("reason")),
        )
        for e in seen
        if e.type == "workorder.escalated"
    ]
    resolved = next((e.at for e in seen if e.type == "workorder.resolved"), None)
    return Case(
        order=order,
        type=request_type(seen) if seen else request_type(events),
        dispatches=mine,
        closure=closure(order, seen, bool(answers)),
        rating=answers[-1] if answers else None,
        escalations=escalations,
        returns=returns(order.id, seen, mine),
        resolved_at=resolved,
        district=districts.get(order.street or ""),
    )


# Lifecycle events that end the dispatches of the round before them: a return's successor, a step
# up the ladder, a 改派, a close. A workorder.dispatched that names the dispatch is its own start.
ENDING = frozenset(
    {
        "workorder.dispatched",
        "workorder.escalated",
        "workorder.reassigned",
        "workorder.closed",
        "workorder.merged",
        "workorder.return_approved",
    }
)


def _ended_at(d: DispatchRow, events: Sequence[EventRow]) -> datetime | None:
    """When the order's events show the dispatch's round over (the dispatch rows keep no time for a
    return or a cancellation): the first ending event after its assignment, None if none."""
    start = d.assigned_at
    for e in events:
        if (start is not None and e.at <= start) or e.type not in ENDING:
            continue
        named = [x.get("dispatch_id") for x in e.detail.get("dispatches", []) if isinstance(x, dict)]
        if e.type == "workorder.dispatched" and d.id in named:
            continue
        return e.at
    return None


def _until(d: DispatchRow, cutoff: datetime, ended_at: datetime | None) -> DispatchRow:
    """The dispatch as it stood at the cutoff: what came later is taken off. One returned (ended) or
    cancelled after the cutoff (``ended_at``, from the events before it) was still open then."""
    accepted = d.accepted_at if d.accepted_at and d.accepted_at < cutoff else None
    resolved = d.resolved_at if d.resolved_at and d.resolved_at < cutoff else None
    status = d.status
    unresolved = status == "resolved" and resolved is None
    if unresolved or (status in ("ended", "cancelled") and ended_at is None):
        status = "accepted" if accepted else "assigned"
    return DispatchRow(
        d.id,
        d.work_order_id,
        d.department,
        d.role,
        d.level,
        status,
        d.assigned_at,
        d.accept_by,
        accepted,
        d.resolve_by,
        resolved,
    )


# ---- the three rates and the rest, for any set of orders and dispatches ---------------------------


def responded(d: DispatchRow, returned: Mapping[str, datetime | None]) -> bool:
    """响应: signed for (签收) by the accept-by, or returned (退单) by it, which is an answer too.
    A return's time is its workorder.return_requested's; one without (returned before reviews
    were published) counts as in time."""
    if d.accepted_at is not None and d.accept_by is not None:
        return d.accepted_at <= d.accept_by
    if d.id not in returned:
        return False
    at = returned[d.id]
    return at is None or d.accept_by is None or at <= d.accept_by


def response_due(d: DispatchRow, returned: Mapping[str, datetime | None], cutoff: datetime) -> bool:
    """In the response rate's denominator: answered (signed for or returned), or past its accept-by
    unanswered at the cutoff, whether still open or since cancelled by the escalation it caused.
    One cancelled before its accept-by without an answer (the order moved on) is not counted."""
    if d.accepted_at is not None or d.id in returned:
        return True
    return d.accept_by is not None and d.accept_by <= cutoff


def resolution_due(d: DispatchRow, cutoff: datetime) -> bool:
    """In the resolution rate's denominator (lead dispatches): resolved, or past its resolve-by at
    the cutoff while still open (assigned or accepted), or taken away after it was signed for
    (escalated for being late). Those cancelled or returned before they were signed for are the
    response rate's."""
    if d.role != "lead":
        return False
    if d.status == "resolved":
        return True
    late = d.resolve_by is not None and d.resolve_by <= cutoff
    return late and (d.status in ("assigned", "accepted") or d.accepted_at is not None)


def resolved_in_time(d: DispatchRow) -> bool:
    return (
        d.status == "resolved"
        and d.resolved_at is not None
        and (d.resolve_by is None or d.resolved_at <= d.resolve_by)
    )


def median_hours(values: Iterable[timedelta]) -> float | None:
    hours = [v.total_seconds() / 3600 for v in values]
    return round(statistics.median(hours), 2) if hours else None


@dataclass(slots=True)
class Figures:
    """Every figure of one scope (the whole, a district, a street, a community, a department)."""

    reports: int = 0  # every report first seen in the month, merged repeats (并单) included
    merged: int = 0
    orders: int = 0  # reports less the merged ones
    by_type: dict[str, int] = field(default_factory=dict)
    by_category: dict[str, int] = field(default_factory=dict)
    by_category_type: dict[str, dict[str, int]] = field(default_factory=dict)  # category -> type -> n
    by_closure: dict[str, int] = field(default_factory=dict)  # and "open"
    answered_directly: int = 0
    dispatches: int = 0
    response_due: int = 0
    responded_in_time: int = 0
    resolution_due: int = 0
    resolved_in_time: int = 0
    open_past_deadline: int = 0  # lead dispatches still open past their resolve-by at the cutoff
    rated: int = 0
    satisfied: int = 0
    unrated: int = 0
    returns: int = 0
    returns_by_outcome: dict[str, int] = field(default_factory=dict)
    returns_by_reason: dict[str, int] = field(default_factory=dict)
    escalations: int = 0
    escalations_by_rung: dict[str, int] = field(default_factory=dict)  # the level climbed to
    escalations_by_reason: dict[str, int] = field(default_factory=dict)
    median_hours_to_accept: float | None = None
    median_hours_to_resolve: float | None = None

    @property
    def direct_answer_rate(self) -> float | None:
        """直接答复率: orders answered on the call, over the month's orders."""
        return ratio(self.answered_directly, self.orders)

    @property
    def response_rate(self) -> float | None:
        return ratio(self.responded_in_time, self.response_due)

    @property
    def resolution_rate(self) -> float | None:
        return ratio(self.resolved_in_time, self.resolution_due)

    @property
    def satisfaction_rate(self) -> float | None:
        return ratio(self.satisfied, self.rated)

    def as_dict(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in self.__slots__}
        return out | {
            "direct_answer_rate": self.direct_answer_rate,
            "response_rate": self.response_rate,
            "resolution_rate": self.resolution_rate,
            "satisfaction_rate": self.satisfaction_rate,
        }


def figures(cases: Iterable[Case], cutoff: datetime, department: str | None = None) -> Figures:
    """The figures of these orders; for a department, of its own dispatches (and the orders it led:
    their type, category, closure, rating, returns and escalations)."""
    f = Figures()
    types, categories, closures = Counter[str](), Counter[str](), Counter[str]()
    pairs: Counter[tuple[str, str]] = Counter()
    outcomes, reasons, rungs, why = Counter[str](), Counter[str](), Counter[str](), Counter[str]()
    to_accept: list[timedelta] = []
    to_resolve: list[timedelta] = []
    for c in cases:
        dispatches = [d for d in c.dispatches if department is None or d.department == department]
        f.reports += 1
        if c.merged:
            f.merged += 1
            continue
        f.orders += 1
        types[c.type] += 1
        categories[c.order.category or UNKNOWN] += 1
        pairs[(c.order.category or UNKNOWN, c.type)] += 1
        closures[c.closure or "open"] += 1
        f.answered_directly += c.closure == "answered_directly"
        f.unrated += c.closure == "unrated"
        if c.rating is not None:
            f.rated += 1
            f.satisfied += c.rating in SATISFIED
        own_returns = [r for r in c.returns if department is None or r.department == department]
        for r in own_returns:
            outcomes[r.outcome] += 1
            reasons[r.reason] += 1
        returned = {r.dispatch_id: r.at for r in own_returns}
        for e in c.escalations:
            rungs[e.to_level] += 1
            why[e.reason] += 1
        for d in dispatches:
            f.dispatches += 1
            if response_due(d, returned, cutoff):
                f.response_due += 1
                f.responded_in_time += responded(d, returned)
            if resolution_due(d, cutoff):
                f.resolution_due += 1
                f.resolved_in_time += resolved_in_time(d)
                f.open_past_deadline += d.status in ("assigned", "accepted")
            if d.role == "lead" and d.accepted_at and d.assigned_at:
                to_accept.append(d.accepted_at - d.assigned_at)
        if c.resolved_at is not None and (department is None or _led(c, department)):
            to_resolve.append(c.resolved_at - c.order.requested_at)
    f.by_type, f.by_category, f.by_closure = _sorted(types), _sorted(categories), _sorted(closures)
    for category in f.by_category:
        f.by_category_type[category] = {
            kind: pairs[(category, kind)] for kind in (*REQUEST_TYPES, UNKNOWN) if pairs[(category, kind)]
        }
    f.returns = sum(outcomes.values())
    f.returns_by_outcome, f.returns_by_reason = _sorted(outcomes), _sorted(reasons)
    f.escalations = sum(rungs.values())
    f.escalations_by_rung = {level: rungs[level] for level in (*LEVELS, UNKNOWN) if rungs[level]}
    f.escalations_by_reason = _sorted(why)
    f.median_hours_to_accept = median_hours(to_accept)
    f.median_hours_to_resolve = median_hours(to_resolve)
    return f


def _led(c: Case, department: str) -> bool:
    return any(d.department == department and d.role == "lead" for d in c.dispatches)


def _sorted(counts: Counter[str]) -> dict[str, int]:
    """Most first, then by name: the same order every time."""
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


# ---- hot spots: the (category, community) pairs that recur most ---------------------------------


@dataclass(frozen=True, slots=True)
class HotSpot:
    category: str
    category_name: str
    street: str
    community: str
    orders: int
    previous: int  # the month before

    @property
    def change(self) -> int:
        return self.orders - self.previous

    @property
    def change_rate(self) -> float | None:
        """The change over the month before's count; None where it had none (new)."""
        return round(self.change / self.previous, 4) if self.previous else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "category_name": self.category_name,
            "street": self.street,
            "community": self.community,
            "orders": self.orders,
            "previous": self.previous,
            "change": self.change,
            "change_rate": self.change_rate,
        }


HOT_SPOTS = 10
HOT_SPOT_MINIMUM = 3  # a pair with fewer orders in the month is no 每月一题 candidate


def hot_spot_key(o: OrderRow) -> tuple[str, str] | None:
    """An order's (category, community), or None where it is no hot spot's: uncategorised (other)
    or unplaced, or a merged repeat (one problem reported twice)."""
    if o.status == "merged" or o.merged_into or not o.category or o.category == "other" or not o.community:
        return None
    return (o.category, o.community)


def pair_counts(orders: Iterable[OrderRow]) -> Counter[tuple[str, str]]:
    return Counter(key for o in orders if (key := hot_spot_key(o)) is not None)


def hot_spots(
    cases: Sequence[Case],
    previous: Mapping[tuple[str, str], int],
    names: Mapping[str, str],
    top: int = HOT_SPOTS,
) -> list[HotSpot]:
    """The (category, community) pairs with the most orders in the month (at least
    ``HOT_SPOT_MINIMUM``), with the month before's count (``pair_counts`` of its orders)."""
    counts = pair_counts(c.order for c in cases)
    streets = {c.order.community: c.order.street or "" for c in cases if c.order.community}
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [
        HotSpot(cat, names.get(cat, cat), streets[com], com, n, previous.get((cat, com), 0))
        for (cat, com), n in ranked[:top]
        if n >= HOT_SPOT_MINIMUM
    ]


# ---- the report ------------------------------------------------------------------------------------

Scope = Literal["district", "street", "community", "department"]
SCOPES: tuple[Scope, ...] = ("district", "street", "community", "department")


@dataclass(frozen=True, slots=True)
class Report:
    month: str
    cutoff: datetime
    total: Figures
    scopes: dict[str, dict[str, Figures]]  # scope kind -> name -> figures
    hot_spots: list[HotSpot]
    categories: dict[str, str]  # code -> name, for what the report shows
    departments: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "month": self.month,
            "cutoff": self.cutoff.isoformat(),
            "total": self.total.as_dict(),
            **{
                kind + "s": {name: f.as_dict() for name, f in by_name.items()}
                for kind, by_name in self.scopes.items()
            },
            "hot_spots": [h.as_dict() for h in self.hot_spots],
            "category_names": self.categories,
            "department_names": self.departments,
        }


UNPLACED = "(unplaced)"


def report(
    month: Month,
    zone: ZoneInfo,
    now: datetime,
    orders: Sequence[OrderRow],
    events: Sequence[EventRow],
    dispatches: Sequence[DispatchRow],
    feedback: Mapping[str, str],
    previous: Sequence[OrderRow],
    districts: Mapping[str, str],
    categories: Mapping[str, str],
    departments: Mapping[str, str],
) -> Report:
    """The month's report from its orders (those first seen in it), their timeline, dispatches and
    the residents' answers; ``previous``: the month before's orders (for the hot spots' change);
    ``districts``: a street's district."""
    start, end = month.start(zone), month.end(zone)
    cutoff = min(end, now)
    by_order_events: dict[str, list[EventRow]] = {}
    for e in events:
        by_order_events.setdefault(e.work_order_id, []).append(e)
    by_order_dispatches: dict[str, list[DispatchRow]] = {}
    for d in dispatches:
        by_order_dispatches.setdefault(d.work_order_id, []).append(d)
    cases = [
        case(
            o,
            by_order_events.get(o.id, []),
            sorted(by_order_dispatches.get(o.id, []), key=_dispatch_order),
            feedback,
            cutoff,
            districts,
        )
        for o in sorted(orders, key=lambda o: o.id)
        if start <= o.requested_at < cutoff
    ]
    groups: dict[str, dict[str, list[Case]]] = {kind: {} for kind in SCOPES}
    for c in cases:
        o = c.order
        groups["district"].setdefault(c.district or UNPLACED, []).append(c)
        groups["street"].setdefault(o.street or UNPLACED, []).append(c)
        groups["community"].setdefault(o.community or UNPLACED, []).append(c)
        for code in sorted({d.department for d in c.dispatches if d.department}):
            groups["department"].setdefault(code, []).append(c)
    scopes = {
        kind: {
            name: figures(members, cutoff, name if kind == "department" else None)
            for name, members in sorted(by_name.items())
        }
        for kind, by_name in groups.items()
    }
    return Report(
        month=str(month),
        cutoff=cutoff.astimezone(zone),
        total=figures(cases, cutoff),
        scopes=scopes,
        hot_spots=hot_spots(cases, pair_counts(previous), categories),
        categories=dict(sorted(categories.items())),
        departments=dict(sorted(departments.items())),
    )


def _dispatch_order(d: DispatchRow) -> tuple[int, str]:
    """D1, D2, … D10 in the order dispatch made them (the number after -D)."""
    number = d.id.rsplit("-D", 1)[-1]
    return (int(number) if number.isdigit() else 0, d.id)
