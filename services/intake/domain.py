"""Intake's pure rules: from a call or a grid report to a tagged, placed work order; the status it
starts in; merging repeats (并单); cluster alerts (工单预警). No I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, NamedTuple

from shared.classifier import CategoryModel
from shared.contract import (
    GridReport,
    HotlineCall,
    Level,
    Location,
    MaskedContact,
    OrderOpened,
    RequestType,
    Urgency,
)
from shared.pii import mask_name, mask_phone, mask_phones_in_text
from shared.reference import Category, Jurisdiction, initial_level

# Tagging and placing have modules of their own (tagging.py, placing.py); their names are intake's
# domain all the same, re-exported here.
from .placing import Place as Place
from .placing import place_order as place_order
from .request_types import request_type_of as request_type_of
from .request_types import tag_request_type as tag_request_type
from .tagging import FALLBACK_THRESHOLD as FALLBACK_THRESHOLD
from .tagging import TAG_THRESHOLD as TAG_THRESHOLD
from .tagging import Classifier
from .tagging import Tag as Tag
from .tagging import is_dangerous as is_dangerous
from .tagging import tag_category as tag_category

SUMMARY_CHARS = 200


# The value objects made for every call (Tag, Place, NewOrder, OpenOrder) are plain slots
# dataclasses, treated as immutable but not frozen: a frozen dataclass sets each field through
# object.__setattr__, four times the cost of its construction, on every call intake takes.
@dataclass(slots=True)
class NewOrder:
    work_order_id: str
    source: str  # "hotline" | "grid"
    source_id: str
    event_id: str
    received_at: datetime
    category: Category
    confidence: float
    place: Place
    urgency: Urgency
    summary: str
    address: str | None
    location: dict[str, object] | None
    caller_name: str | None
    caller_phone: str | None
    request_type: RequestType = "help"
    closed_on_site: bool = False
    answer: str | None = None  # 直接答复 (masked): recorded, and closed by dispatch at once

    @property
    def is_open(self) -> bool:
        """Open to be worked on, and to absorb repeats: not fixed on the spot nor answered on the call."""
        return not self.closed_on_site and self.answer is None

    @property
    def level(self) -> Level:
        return initial_level(self.category.tier, self.place.placed, self.place.property_company is not None)

    def opened(self) -> dict[str, Any]:
        """``intake.order.opened``'s data (OrderOpened)."""
        return OrderOpened.trusted(
            work_order_id=self.work_order_id,
            source=self.source,
            category=self.category.code,
            category_name=self.category.name,
            summary=self.summary,
            address=self.address,
            location=self.location,
            street=self.place.street,
            community=self.place.community,
            grid=self.place.grid,
            property_company=self.place.property_company,
            urgency=self.urgency,
            contact=self.masked_contact(),
            request_type=self.request_type,
            answer=self.answer,
        )

    def masked_contact(self) -> dict[str, Any] | None:
        if not (self.caller_name or self.caller_phone):
            return None
        return MaskedContact.trusted(name=mask_name(self.caller_name), phone=mask_phone(self.caller_phone))


def summarise(text: str) -> str:
    text = mask_phones_in_text(" ".join(text.split()))
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"


class Judgement(NamedTuple):
    """What a call's words decide: its category (a code) and how sure, whether it is an emergency,
    its place, its request type. The part of making an order that reads the text (tagging, placing,
    the classifiers), kept apart so that it can run in another process (tagger.py) and come back as
    a few strings."""

    category: str
    confidence: float
    emergency: bool
    street: str | None
    community: str | None
    grid: str | None
    compound: str | None
    property_company: str | None
    request_type: RequestType


def judge_call(
    content: str,
    hint: str | None,
    address: str | None,
    location: Location | None,
    request_type: RequestType | None,
    ref: Jurisdiction,
    threshold: float | None = None,  # tag_category's default: by whether there is a classifier
    fallback: Classifier | None = None,
    type_model: CategoryModel | None = None,
    alarm: Classifier | None = None,
) -> Judgement:
    tag = tag_category(content, hint, ref, threshold, fallback, alarm=alarm)
    place = place_order(location, address, content, ref, tag.focus)
    return Judgement(
        tag.category.code,
        tag.confidence,
        tag.emergency,
        place.street,
        place.community,
        place.grid,
        place.compound,
        place.property_company,
        request_type_of(request_type, content, tag.category, ref, type_model),
    )


def order_from_call(
    call: HotlineCall,
    event_id: str,
    time: datetime,
    ref: Jurisdiction,
    threshold: float | None = None,
    fallback: Classifier | None = None,
    type_model: CategoryModel | None = None,
    alarm: Classifier | None = None,
) -> NewOrder:
    judged = judge_call(
        call.content,
        call.category_hint,
        call.address,
        call.location,
        call.request_type,
        ref,
        threshold,
        fallback,
        type_model,
        alarm,
    )
    return order_as_judged(call, event_id, time, ref, judged)


def order_as_judged(
    call: HotlineCall, event_id: str, time: datetime, ref: Jurisdiction, judged: Judgement
) -> NewOrder:
    """The order a call makes, its text read already (``judge_call``)."""
    urgency: Urgency = "emergency" if judged.emergency else call.urgency
    return NewOrder(
        work_order_id=f"WO-H-{call.call_id}",
        source="hotline",
        source_id=call.call_id,
        event_id=event_id,
        received_at=time,
        category=ref.category_by_code[judged.category],
        confidence=judged.confidence,
        place=Place(judged.street, judged.community, judged.grid, judged.compound, judged.property_company),
        urgency=urgency,
        summary=summarise(call.content),
        address=mask_phones_in_text(call.address) if call.address else None,
        location=call.location.model_dump(exclude_none=True) if call.location else None,
        caller_name=call.caller.name if call.caller else None,
        caller_phone=call.caller.phone if call.caller else None,
        request_type=judged.request_type,
        # Masked here, where it leaves intake, as the summary is: it is published as the result.
        answer=mask_phones_in_text(call.answer) if call.answered_directly and call.answer else None,
    )


class UnknownReference(ValueError):
    """A grid report names a grid or category the jurisdiction does not have."""


def order_from_report(report: GridReport, event_id: str, time: datetime, ref: Jurisdiction) -> NewOrder:
    if report.grid_id not in ref.places_by_grid:
        raise UnknownReference(f"data.grid_id: unknown grid {report.grid_id!r} in {ref.name}")
    category = ref.find_category(report.category)
    if category is None:
        raise UnknownReference(f"data.category: unknown category {report.category!r} (use a code or a name)")
    street, community, grid = ref.places_by_grid[report.grid_id]
    found = place_order(None, report.address, report.description, ref)
    compound = found if found.grid == grid.code else Place()
    place = Place(street.name, community.name, grid.code, compound.compound, compound.property_company)
    urgency: Urgency = "emergency" if is_dangerous(report.description, category, ref) else report.urgency
    return NewOrder(
        work_order_id=f"WO-G-{report.report_id}",
        source="grid",
        source_id=report.report_id,
        event_id=event_id,
        received_at=time,
        category=category,
        confidence=1.0,
        place=place,
        urgency=urgency,
        summary=summarise(report.description),
        address=mask_phones_in_text(report.address) if report.address else None,
        location={"street": street.name, "community": community.name, "grid": grid.code},
        caller_name=None,
        caller_phone=None,
        request_type=grid_request_type(category),
        closed_on_site=report.handled_on_site,
    )


def grid_request_type(category: Category) -> RequestType:
    """A grid worker's finding: a report (举报) where its category is a breach of rules (违建, 违停,
    a fire hazard), help otherwise: a problem someone must fix. Never a complaint, inquiry or
    suggestion: the worker speaks for nobody harmed and asks nothing."""
    return "report" if category.request_type == "report" else "help"


# ---- 并单: repeat reports of one open problem -------------------------------------------------

# open: may absorb repeats; merged: joined another order; done: resolved or closed.
OrderStatus = Literal["open", "merged", "done"]
# The lifecycle events intake follows, and the status each leaves an order in: a resolved or
# closed order absorbs no more repeats, a reopened one does again.
STATUS_AFTER: dict[str, OrderStatus] = {
    "workorder.resolved": "done",
    "workorder.closed": "done",
    "workorder.reopened": "open",
}


def order_status(order: NewOrder, merged_into: str | None) -> OrderStatus:
    """A new order is merged when it joins an open one (merge_target); done at once when the grid
    worker closed it on site or the operator answered it on the call (so it absorbs no repeats);
    open otherwise."""
    if merged_into:
        return "merged"
    return "open" if order.is_open else "done"


@dataclass(slots=True)
class OpenOrder:
    """What merging needs to know of an order that is still open."""

    id: str
    category: str
    community: str | None
    compound: str | None
    grid: str | None
    caller_phone: str | None
    received_at: datetime


class OpenOrders:
    """Open orders indexed by category and compound, grid or phone: the few a new report may join,
    found without scanning them all."""

    def __init__(self, orders: Iterable[OpenOrder] = ()) -> None:
        self._by_key: dict[tuple[str, str, str], list[OpenOrder]] = {}
        self._closed: set[str] = set()  # resolved or closed since they were loaded
        for order in orders:
            self.add(order)

    @staticmethod
    def _keys(
        category: str, compound: str | None, grid: str | None, phone: str | None
    ) -> list[tuple[str, str, str]]:
        pairs = (("compound", compound), ("grid", grid), ("phone", phone))
        return [(category, kind, value) for kind, value in pairs if value]

    def add(self, order: OpenOrder) -> None:
        for key in self._keys(order.category, order.compound, order.grid, order.caller_phone):
            self._by_key.setdefault(key, []).append(order)

    def follow(self, order_id: str, is_open: bool) -> None:
        """An order was resolved or closed (it absorbs no more repeats), or reopened."""
        if is_open:
            self._closed.discard(order_id)
        else:
            self._closed.add(order_id)

    def candidates(self, order: NewOrder) -> list[OpenOrder]:
        place = order.place
        keys = self._keys(order.category.code, place.compound, place.grid, order.caller_phone)
        found = {o.id: o for key in keys for o in self._by_key.get(key, ()) if o.id not in self._closed}
        return sorted(found.values(), key=lambda o: (o.received_at, o.id))  # ties: one order always


def merge_target(order: NewOrder, open_orders: list[OpenOrder], window: timedelta) -> str | None:
    """The open order a new report joins: same category, received within the window, and either at
    the same compound (the same grid where no compound is known) or from the same phone. Never
    across categories or places: a phone match in another community is another problem. An order
    closed as it is made (fixed on the spot, answered on the call) joins none: it is its own record."""
    if not order.is_open:
        return None
    place = order.place
    for earlier in open_orders:  # oldest first: repeats join the original
        if earlier.category != order.category.code or earlier.id == order.work_order_id:
            continue
        if not timedelta(0) <= order.received_at - earlier.received_at <= window:
            continue
        if place.compound:
            same_place = earlier.compound == place.compound
        else:
            same_place = place.grid is not None and earlier.compound is None and earlier.grid == place.grid
        same_phone = order.caller_phone is not None and earlier.caller_phone == order.caller_phone
        if same_place or (same_phone and not _elsewhere(place, earlier)):
            return earlier.id
    return None


def _elsewhere(place: Place, earlier: OpenOrder) -> bool:
    """Two reports are of different places when, at the finest level both know, the places differ."""
    for mine, theirs in (
        (place.compound, earlier.compound),
        (place.grid, earlier.grid),
        (place.community, earlier.community),
    ):
        if mine is not None and theirs is not None:
            return mine != theirs
    return False


# ---- 工单预警: concentrated complaints -----------------------------------------------------------


def cluster_key(order: NewOrder) -> tuple[str, str] | None:
    """The (community, category) whose cluster an order counts in; None for 其他 (other), which is
    no one problem, and for an unplaced order."""
    community, category = order.place.community, order.category.code
    if community is None or category == "other":
        return None
    return community, category


def reports_in_window(per_minute: Mapping[int, int], minute: int, window_minutes: int) -> int:
    """The reports of the window ending at this minute: its minutes after the start, up to this one."""
    since = minute - window_minutes
    return sum(n for m, n in per_minute.items() if since < m <= minute)


def cluster_step(count: int, threshold: int) -> int:
    """The alert step a count has reached: the threshold, then each doubling of it (5, 10, 20 ...);
    0 below the threshold."""
    if count < threshold:
        return 0
    step = threshold
    while step * 2 <= count:
        step *= 2
    return step


def cluster_alert(
    count: int, threshold: int, last: tuple[int, datetime] | None, at: datetime, window: timedelta
) -> int | None:
    """The step to alert at when the window ending ``at`` holds ``count`` reports, or None: once at
    the threshold, again at each doubling. ``last`` is the cluster's last alert (step, at); one from
    before the window belongs to a cluster that is over, and a new one alerts afresh."""
    step = cluster_step(count, threshold)
    last_step = last[0] if last is not None and last[1] >= at - window else 0
    return step if step > last_step else None


def alert_members(members: Iterable[tuple[str, datetime]], at: datetime, window: timedelta) -> list[str]:
    """The ids an alert at ``at`` lists: its cluster's orders received after the window's start. No
    upper bound at ``at``: calls on other partitions may be applied out of business-time order."""
    start = at - window
    return [order_id for order_id, received_at in members if received_at > start]
