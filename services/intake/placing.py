"""Intake's placing rules: where the problem a call is about lies. Pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from shared.contract import Location
from shared.reference import Jurisdiction, Locality

# A place is ranked by what surrounds it when a call names several: in the complaint's clause it
# is the problem's; right after 家住 it is the caller's home; right after 单位在, or right before 上班,
# it is where the caller works or was. Places are ranked only among themselves: the first named
# wins a tie, as it did before.
IN_FOCUS, HOME, AWAY = 2, 1, -2
# How far a marker may stand from the place it marks: 在锦绣华庭那边上班 (那边, two characters).
MARKER_GAP = 3


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


def place_order(
    location: Location | None, address: str | None, text: str, ref: Jurisdiction, focus: str = ""
) -> Place:
    """Explicit location fields win when they name a known grid or community. Then the names found
    in the address, then in the text (one pass each, longest name first, so that 墨翠府社区 is the
    community and not the compound 墨翠府): a compound gives the grid, a community or a street what
    it can. When the text names several, the problem's place wins (``rank``: ``focus`` is the
    complaint's clause, from the tagger). What cannot be placed stays unplaced, never guessed."""
    if location and location.grid and location.grid in ref.places_by_grid:
        street, community, grid = ref.places_by_grid[location.grid]
        return Place(street.name, community.name, grid.code)
    named = None
    if location and location.community:
        named = next((c for _, c in ref.communities if location.community in (c.name, *c.aliases)), None)
    found = [loc for _, locs in ref.place_index.find(address or "") for loc in locs]
    if text:
        said = [(name, loc) for name, locs in ref.place_index.find(text) for loc in locs]
        if len({loc.compound or loc.community or loc.street for _, loc in said}) > 1:
            said = rank(said, text, focus, ref)
        found += [loc for _, loc in said]
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


def rank(
    said: list[tuple[str, Locality]], text: str, focus: str, ref: Jurisdiction
) -> list[tuple[str, Locality]]:
    """The places a text names, the problem's first (a stable sort: ties keep the text's order)."""
    speech = ref.speech
    scores: list[int] = []
    for name, _ in said:
        at = text.find(name)
        score = IN_FOCUS if focus and name in focus else 0
        if _marked(text[:at], speech.home, before=True):
            score += HOME
        if _marked(text[:at], speech.away, before=True) or _marked(
            text[at + len(name) :], speech.away_after, before=False
        ):
            score += AWAY
        scores.append(score)
    order = sorted(range(len(said)), key=lambda i: -scores[i])
    return [said[i] for i in order]


_STOPS = "，,。.！!？?；;"


def _marked(side: str, markers: tuple[str, ...], before: bool) -> bool:
    """A marker within MARKER_GAP characters of the place, on that side of it, in its clause."""
    for marker in markers:
        if before:
            near = side[-(MARKER_GAP + len(marker)) :]
            at = near.rfind(marker)
            between = near[at + len(marker) :] if at >= 0 else _STOPS
        else:
            near = side[: MARKER_GAP + len(marker)]
            at = near.find(marker)
            between = near[:at] if at >= 0 else _STOPS
        if not any(stop in between for stop in _STOPS):
            return True
    return False
