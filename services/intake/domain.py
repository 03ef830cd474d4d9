"""Intake's pure rules: from a call or a grid report to a tagged, placed work order. No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.contract import GridReport, HotlineCall, Level, Location, MaskedContact, OrderOpened, Urgency
from shared.pii import mask_name, mask_phone, mask_phones_in_text
from shared.reference import Category, Jurisdiction, initial_level

SUMMARY_CHARS = 200


@dataclass(frozen=True, slots=True)
class Tag:
    category: Category
    confidence: float


@dataclass(frozen=True, slots=True)
class Place:
    street: str | None = None
    community: str | None = None
    grid: str | None = None
    compound: str | None = None
    property_company: str | None = None

    @property
    def placed(self) -> bool:
        return self.community is not None


@dataclass(frozen=True, slots=True)
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

    def opened(self) -> OrderOpened:
        return OrderOpened(
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

    def masked_contact(self) -> MaskedContact | None:
        if not (self.caller_name or self.caller_phone):
            return None
        return MaskedContact(name=mask_name(self.caller_name), phone=mask_phone(self.caller_phone))


def tag_category(text: str, hint: str | None, ref: Jurisdiction) -> Tag:
    """The operator's hint wins when it names a known category; otherwise keywords in the text.

    The score of a category is the number of its keywords found, longer phrases weighing more.
    """
    if hint:
        hinted = ref.find_category(hint)
        if hinted is not None:
            return Tag(hinted, 1.0)
    best: Category | None = None
    best_score = 0.0
    total = 0.0
    for category in ref.categories:
        score = sum(len(k) for k in category.keywords if k in text)
        total += score
        if score > best_score:
            best, best_score = category, score
    if best is None:
        return Tag(ref.category_by_code["other"], 0.0)
    return Tag(best, best_score / total)


def is_dangerous(text: str, category: Category) -> bool:
    """Danger words of the problem at hand (a gas smell in a gas call); the same word in another
    kind of complaint ("怕着火" in a parking call) is colour, not an emergency."""
    return any(word in text for word in category.danger_keywords)


def place_order(location: Location | None, address: str | None, text: str, ref: Jurisdiction) -> Place:
    """Explicit location fields win when they name a known grid or community; then compound names in
    the address and the text (within the explicit community, if one was named); then community
    names. What cannot be placed stays unplaced (never guessed)."""
    if location and location.grid and location.grid in ref.places_by_grid:
        street, community, grid = ref.places_by_grid[location.grid]
        return Place(street.name, community.name, grid.code)
    named = None
    if location and location.community:
        named = next(((s, c) for s, c in ref.communities if location.community in (c.name, *c.aliases)), None)
    haystack = " ".join(part for part in (address, text) if part)
    # Street and community names are blanked first, so that 墨翠府社区 does not read as 墨翠府 (a compound).
    bare = haystack
    for name in ref.area_names:
        bare = bare.replace(name, "|")
    for street, community, compound in ref.compounds:
        if named and community is not named[1]:
            continue
        if any(name in bare for name in (compound.name, *compound.aliases)):
            return Place(street.name, community.name, compound.grid, compound.name, compound.property_company)
    if named:
        return Place(named[0].name, named[1].name)
    for street, community in ref.communities:
        if any(name in haystack for name in (community.name, *community.aliases)):
            return Place(street.name, community.name)
    return Place()


def summarise(text: str) -> str:
    text = mask_phones_in_text(" ".join(text.split()))
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"


def order_from_call(call: HotlineCall, event_id: str, time: datetime, ref: Jurisdiction) -> NewOrder:
    tag = tag_category(call.content, call.category_hint, ref)
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
