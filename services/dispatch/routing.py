"""Where an order goes and how long it has: its starting tier, who acts at a level (the duty list,
职责清单), the triage desks, time limits and deadlines, and what an extension may add. Pure."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared import reference
from shared.calendar import Calendar
from shared.contract import Level, RequestType, Urgency
from shared.reference import LEVELS, Jurisdiction, TimeLimit, calendars_of, next_level
from shared.settings import Settings

from .dispatches import Refusal

Role = str  # "lead" | "assist"
CALENDAR_TIME = Calendar()
# The 12345 practice's time to resolve a normal order, by its 诉求类型, in working days (counted on
# the jurisdiction's working calendar); REQUEST_TYPE_TIME_LIMITS overrides the types it names.
REQUEST_TYPE_TIME_LIMITS: dict[RequestType, timedelta] = {
    "inquiry": timedelta(days=2),
    "help": timedelta(days=10),
    "suggestion": timedelta(days=10),
    "complaint": timedelta(days=15),
    "report": timedelta(days=15),
}


@dataclass(frozen=True, slots=True)
class OrderFacts:
    """What routing needs to know of an order."""

    category: str
    urgency: Urgency
    community: str | None
    property_company: str | None


def initial_level(order: OrderFacts, ref: Jurisdiction, clustered: bool = False) -> Level:
    """The category's tier where someone at that tier can act; an emergency goes no lower than the
    community (the property company alone does not handle it); a concentrated cluster of complaints
    (工单预警) starts at the street, which coordinates several departments."""
    category = ref.category_by_code.get(order.category)
    tier: Level = category.tier if category else "community"
    level = reference.initial_level(tier, order.community is not None, order.property_company is not None)
    if order.urgency == "emergency" and LEVELS.index(level) < LEVELS.index("community"):
        level = "community"
    if clustered and LEVELS.index(level) < LEVELS.index("street"):
        level = "street"
    return level


def assignees(
    order: OrderFacts, level: Level, ref: Jurisdiction, returned: frozenset[str] = frozenset()
) -> list[tuple[str, Role]]:
    """The lead (first) and the assisting departments for the order at that level, from the duty
    list (职责清单). Departments that returned the order are passed over: the next candidate leads.
    Empty when nobody at this level is left; the order must go up."""
    if level == "property" and order.property_company:
        candidates = [order.property_company]
    elif order.category != "other" and order.community is not None:
        candidates = []
        for at in LEVELS[LEVELS.index(level) :]:
            duty = ref.duty_by_key.get((order.category, at))
            if duty:
                candidates = list(dict.fromkeys([duty.lead, *duty.assist]))
                break
    else:
        candidates = []
    if not candidates:
        candidates = [triage_desk(order, level, ref)]
    remaining = [code for code in candidates if code not in returned]
    return [(code, "lead" if i == 0 else "assist") for i, code in enumerate(remaining)]


def triage_desk(order: OrderFacts, level: Level, ref: Jurisdiction) -> str:
    """Where unplaced, uncategorised or unclear orders go: the community's desk, the street's, or
    at the district the district's (the street's where a jurisdiction names none there)."""
    if level == "district":
        return ref.triage.get("district") or ref.triage["street"]
    return ref.triage["street" if level == "street" or order.community is None else "community"]


def onward(
    order: OrderFacts, level: Level, ref: Jurisdiction, returned: Callable[[str], frozenset[str]]
) -> tuple[Level, list[tuple[str, Role]]] | None:
    """Who takes the order from ``level`` up by the duty list, passing over the departments that
    returned it at each level (``returned(level)``): the first level with someone left. At the top,
    the triage desk, unless it returned the order too; then nobody is left (None): a person decides.
    """
    at = level
    while True:
        who = assignees(order, at, ref, returned(at))
        if who:
            return at, who
        higher = next_level(at)
        if higher is None:
            desk = triage_desk(order, at, ref)
            return None if desk in returned(at) else (at, [(desk, "lead")])
        at = higher


def extension_allowed(
    assigned_at: datetime,
    resolve_by: datetime,
    requested: datetime,
    already_extended: bool,
    max_factor: float,
) -> str | None:
    """延期: granted once per dispatch, to at most ``max_factor`` times the original time allowed
    beyond the current resolve-by. Returns why not, or None when it is granted."""
    if already_extended:
        return "an extension was already granted for this dispatch; only one is allowed"
    asked = requested.isoformat()
    if requested <= resolve_by:
        return f"data.resolve_by: {asked} is not later than the current resolve-by {resolve_by.isoformat()}"
    limit = resolve_by + (resolve_by - assigned_at) * max_factor
    if requested > limit:
        return f"data.resolve_by: {asked} is beyond the longest extension allowed ({limit.isoformat()})"
    return None


def time_limit(
    urgency: Urgency,
    ref: Jurisdiction,
    overrides: dict[Urgency, TimeLimit],
    category: str | None = None,
    by_category: dict[str, dict[Urgency, TimeLimit]] | None = None,
) -> TimeLimit:
    """The limit for an order: a category's own (e.g. 政策咨询 answered in a working day), else the
    configured one for its urgency, else the jurisdiction's."""
    own = (by_category or {}).get(category or "", {}).get(urgency)
    return own or overrides.get(urgency) or ref.time_limits[urgency]


def deadlines(
    at: datetime, limit: TimeLimit, calendar: Calendar = CALENDAR_TIME
) -> tuple[datetime, datetime]:
    """Accept-by and resolve-by, counted in calendar or working time."""
    return calendar.add(at, limit.accept), calendar.add(at, limit.resolve)


@dataclass(frozen=True)
class Policy:
    """The jurisdiction and the configured limits: everything routing needs, held once."""

    ref: Jurisdiction
    limits: dict[Urgency, TimeLimit]
    limits_by_category: dict[str, dict[Urgency, TimeLimit]]
    extension_max_factor: float
    calendars: dict[Urgency, Calendar]
    limits_by_request_type: dict[RequestType, timedelta]  # normal orders' time to resolve
    working: Calendar  # the jurisdiction's working days, which request types' limits count
    feedback_within: timedelta = timedelta(days=3)
    centre_calendar: Calendar = field(default_factory=Calendar)  # the centre's and the resident's windows
    # 派单异议审核: whether a lead's return waits for the centre, and for how long.
    return_review: bool = True
    review_within: timedelta = timedelta(hours=2)

    @classmethod
    def of(cls, ref: Jurisdiction, settings: Settings) -> Policy:
        return cls(
            ref,
            settings.time_limits,
            settings.category_time_limits,
            settings.extension_max_factor,
            calendars_of(ref, settings.time_counting),
            REQUEST_TYPE_TIME_LIMITS | settings.request_type_time_limits,
            calendars_of(ref, {"normal": "working"})["normal"],
            feedback_within=settings.feedback_within,
            centre_calendar=Calendar(
                counting=settings.centre_counting,
                timezone=ref.timezone,
                holidays=frozenset(ref.calendar.holidays),
                workdays=frozenset(ref.calendar.workdays),
            ),
            return_review=settings.return_review,
            review_within=settings.return_review_within,
        )

    def feedback_by(self, resolved_at: datetime) -> datetime:
        """回访: unrated by then, a resolved order closes as unrated."""
        return self.centre_calendar.add(resolved_at, self.feedback_within)

    def review_by(self, returned_at: datetime) -> datetime:
        """派单异议审核: not reviewed by then, a return is approved automatically."""
        return self.centre_calendar.add(returned_at, self.review_within)

    def deadlines(
        self,
        at: datetime,
        urgency: Urgency,
        category: str,
        shorter: bool,
        request_type: RequestType | None = None,
    ) -> tuple[datetime, datetime]:
        """Accept-by and resolve-by from ``at``; ``shorter``: half the time (重办, a reopened order).

        A normal order's time to resolve is its request type's, in working days, unless its
        category has a normal limit of its own (CATEGORY_TIME_LIMITS: the operator's exception
        wins); its time to accept, and every limit of an emergency or an urgent order, are the
        urgency's (TIME_LIMITS, counted as TIME_COUNTING says). An order without a type (opened
        before types) keeps the urgency's limits."""
        limit = time_limit(urgency, self.ref, self.limits, category, self.limits_by_category)
        resolve_in = self.calendars[urgency]
        by_type = self.limits_by_request_type.get(request_type) if request_type else None
        own = self.limits_by_category.get(category, {}).get(urgency)
        if urgency == "normal" and by_type is not None and own is None:
            limit, resolve_in = TimeLimit(accept=limit.accept, resolve=by_type), self.working
        if shorter:
            limit = TimeLimit(accept=limit.accept / 2, resolve=limit.resolve / 2)
        return self.calendars[urgency].add(at, limit.accept), resolve_in.add(at, limit.resolve)


def placed_at(
    ref: Jurisdiction, community: str | None, grid: str | None
) -> tuple[str, str, str | None] | None:
    """The (street, community, grid) names an order is re-placed at: a grid's, else a community's."""
    if grid is not None:
        found = ref.places_by_grid.get(grid)
        if found is None:
            raise Refusal(f"data.grid: unknown grid {grid!r}")
        street, place, g = found
        return street.name, place.name, g.code
    if community is not None:
        at = ref.community_by_name.get(community)
        if at is None:
            raise Refusal(f"data.community: unknown community {community!r}")
        return at[0].name, at[1].name, None
    return None


def named_departments(ref: Jurisdiction, lead: str | None, assist: list[str]) -> list[tuple[str, Role]]:
    """The departments the centre names for an order, lead first; empty when it names none."""
    if assist and not lead:
        raise Refusal("data.lead: assisting departments are named with a lead")
    named = list(dict.fromkeys(code for code in (lead, *assist) if code))
    for code in named:
        if code not in ref.department_by_code:
            field = "lead" if code == lead else "assist"
            raise Refusal(f"data.{field}: unknown department {code!r}")
    return [(code, "lead" if i == 0 else "assist") for i, code in enumerate(named)]
