"""Intake's pure rules: from a call or a grid report to a tagged, placed work order. No I/O."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.classifier import CategoryModel
from shared.contract import GridReport, HotlineCall, Level, Location, MaskedContact, OrderOpened, Urgency
from shared.pii import mask_name, mask_phone, mask_phones_in_text
from shared.reference import Category, Jurisdiction, Locality, initial_level

SUMMARY_CHARS = 200
TAG_THRESHOLD = 0.4
# The classifier's own bar (its tempered posterior), set by cross-validation on the labelled set:
# lower sends more calls to a wrong desk than it saves from triage.
FALLBACK_THRESHOLD = 0.5


# The value objects made for every call (Tag, Place, NewOrder, OpenOrder) are plain slots
# dataclasses, treated as immutable but not frozen: a frozen dataclass sets each field through
# object.__setattr__, four times the cost of its construction, on every call intake takes.
@dataclass(slots=True)
class Tag:
    category: Category
    confidence: float


@dataclass(slots=True)
class Place:
    street: str | None = None
    community: str | None = None
    grid: str | None = None
    compound: str | None = None
    property_company: str | None = None

    @property
    def placed(self) -> bool:
        return self.community is not None


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
    closed_on_site: bool = False

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
        )

    def masked_contact(self) -> dict[str, Any] | None:
        if not (self.caller_name or self.caller_phone):
            return None
        return MaskedContact.trusted(name=mask_name(self.caller_name), phone=mask_phone(self.caller_phone))


def tag_category(
    text: str,
    hint: str | None,
    ref: Jurisdiction,
    threshold: float = TAG_THRESHOLD,
    fallback: CategoryModel | None = None,
) -> Tag:
    """The operator's hint wins when it names a known category; otherwise the keywords in the text.

    One pass over the text finds every keyword (leftmost-longest); a category scores the length of
    its phrases found, so 暖气不热 outweighs a passing 楼道. The confidence is the winner's share of
    all scores; below ``threshold`` the order is 其他 and goes to triage rather than a wrong desk.
    Only then is the ``fallback`` classifier asked (the confident path never pays for it); its
    answer counts at ``FALLBACK_THRESHOLD`` or above, with its posterior as the confidence.
    """
    if hint:
        hinted = ref.find_category(hint)
        if hinted is not None:
            return Tag(hinted, 1.0)
    scores: dict[str, int] = {}
    for phrase, codes in ref.keyword_index.find(text):
        for code in codes:  # each once (keyword_index)
            scores[code] = scores.get(code, 0) + len(phrase)
    best = max(scores, key=scores.__getitem__) if scores else "other"  # ties: the one mentioned first
    confidence = scores[best] / sum(scores.values()) if scores else 0.0
    if confidence >= threshold:
        return Tag(ref.category_by_code[best], confidence)
    if fallback is not None:
        code, probability = fallback.classify(text)
        guessed = ref.category_by_code.get(code)
        if guessed is not None and probability >= FALLBACK_THRESHOLD:
            return Tag(guessed, probability)
    return Tag(ref.category_by_code["other"], confidence)


def is_dangerous(text: str, category: Category) -> bool:
    """Danger words of the problem at hand (a gas smell in a gas call); the same word in another
    kind of complaint ("怕着火" in a parking call) is colour, not an emergency."""
    return any(word in text for word in category.danger_keywords)


def place_order(location: Location | None, address: str | None, text: str, ref: Jurisdiction) -> Place:
    """Explicit location fields win when they name a known grid or community. Then the names found
    in the address, then in the text (one pass each, longest name first, so that 墨翠府社区 is the
    community and not the compound 墨翠府): a compound gives the grid, a community or a street what
    it can. What cannot be placed stays unplaced, never guessed."""
    if location and location.grid and location.grid in ref.places_by_grid:
        street, community, grid = ref.places_by_grid[location.grid]
        return Place(street.name, community.name, grid.code)
    named = None
    if location and location.community:
        named = next((c for _, c in ref.communities if location.community in (c.name, *c.aliases)), None)
    found: list[Locality] = []
    for part in (address, text):
        found += [loc for _, locs in ref.place_index.find(part or "") for loc in locs]
    if named is not None:
        found = [loc for loc in found if loc.community is named] or [
            Locality(next(s for s, c in ref.communities if c is named), named, None)
        ]
    for loc in found:
        if loc.compound is not None and loc.community is not None:
            k = loc.compound
            return Place(loc.street.name, loc.community.name, k.grid, k.name, k.property_company)
    for loc in found:
        if loc.community is not None:
            return Place(loc.street.name, loc.community.name)
    for loc in found:
        return Place(street=loc.street.name)
    return Place()


def summarise(text: str) -> str:
    text = mask_phones_in_text(" ".join(text.split()))
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"


def order_from_call(
    call: HotlineCall,
    event_id: str,
    time: datetime,
    ref: Jurisdiction,
    threshold: float = TAG_THRESHOLD,
    fallback: CategoryModel | None = None,
) -> NewOrder:
    tag = tag_category(call.content, call.category_hint, ref, threshold, fallback)
    place = place_order(call.location, call.address, call.content, ref)
    urgency: Urgency = "emergency" if is_dangerous(call.content, tag.category) else call.urgency
    return NewOrder(
        work_order_id=f"WO-H-{call.call_id}",
        source="hotline",
        source_id=call.call_id,
        event_id=event_id,
        received_at=time,
        category=tag.category,
        confidence=tag.confidence,
        place=place,
        urgency=urgency,
        summary=summarise(call.content),
        address=mask_phones_in_text(call.address) if call.address else None,
        location=call.location.model_dump(exclude_none=True) if call.location else None,
        caller_name=call.caller.name if call.caller else None,
        caller_phone=call.caller.phone if call.caller else None,
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
    urgency: Urgency = "emergency" if is_dangerous(report.description, category) else report.urgency
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
        closed_on_site=report.handled_on_site,
    )


# ---- 并单: repeat reports of one open problem -------------------------------------------------


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
    across categories or places: a phone match in another community is another problem."""
    if order.closed_on_site:
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


def cluster_step(count: int, threshold: int) -> int:
    """The alert step a count has reached: the threshold, then each doubling of it (5, 10, 20 ...);
    0 below the threshold."""
    if count < threshold:
        return 0
    step = threshold
    while step * 2 <= count:
        step *= 2
    return step
