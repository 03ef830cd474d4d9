"""Reference data of a jurisdiction: places, departments, categories, duties, time limits.

One versioned JSON format (``whistle.jurisdiction/1``) that every service loads. Validation
happens at load time, and errors name the field path so an operator can fix the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared.calendar import Calendar
from shared.contract import RequestType
from shared.textindex import PhraseIndex

FORMAT = "whistle.jurisdiction/1"
Level = Literal["property", "grid", "community", "street", "district"]
LEVELS: tuple[Level, ...] = ("property", "grid", "community", "street", "district")
Urgency = Literal["emergency", "urgent", "normal"]
# The ladder (群网首调、中心联调、县直帮调): where an order goes when its level cannot solve it.
LADDER: dict[str, Level | None] = {
    "property": "community",
    "grid": "community",
    "community": "street",
    "street": "district",
    "district": None,
}


def next_level(level: Level) -> Level | None:
    return LADDER[level]


def initial_level(tier: Level, placed: bool, has_property_company: bool) -> Level:
    """小问题物业当场办、大问题社区帮忙办、难问题街道协调办: an order starts at its category's tier,
    but higher where nobody at that tier can act. Intake (for workorder.created) and dispatch
    (to route) both ask this one function, so they never disagree."""
    if not placed:
        return tier if tier in ("street", "district") else "street"
    if tier == "property" and not has_property_company:
        return "community"
    if tier == "grid":
        return "community"  # grid workers find and fix; the community is the first to be called
    return tier


CODE_PATTERN = r"^[a-z0-9_]+$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Compound(_Model):
    """A residential compound (小区), the unit residents name in their addresses."""

    name: str = Field(min_length=1)
    aliases: tuple[str, ...] = ()
    grid: str = Field(min_length=1, description="code of the grid the compound lies in")
    property_company: str | None = Field(default=None, description="department code of its 物业")


class Grid(_Model):
    code: str = Field(min_length=1)
    name: str = Field(min_length=1)


class Community(_Model):
    code: str = Field(pattern=CODE_PATTERN)
    name: str = Field(min_length=1)
    aliases: tuple[str, ...] = ()
    grids: tuple[Grid, ...] = Field(min_length=1)
    compounds: tuple[Compound, ...] = ()


class Street(_Model):
    code: str = Field(pattern=CODE_PATTERN)
    name: str = Field(min_length=1)
    aliases: tuple[str, ...] = ()
    communities: tuple[Community, ...] = Field(min_length=1)


class District(_Model):
    code: str = Field(pattern=CODE_PATTERN)
    name: str = Field(min_length=1)
    streets: tuple[Street, ...] = Field(min_length=1)


DepartmentKind = Literal["department", "property", "utility", "desk"]


class Department(_Model):
    """Anyone who can receive a dispatch; its code names its topic ``dispatch.<code>.v1``."""

    code: str = Field(pattern=CODE_PATTERN, max_length=60)
    name: str = Field(min_length=1)
    kind: DepartmentKind = "department"


class Category(_Model):
    code: str = Field(pattern=CODE_PATTERN)
    name: str = Field(min_length=1)
    tier: Level = Field(description="the level a plain order of this category starts at")
    keywords: tuple[str, ...] = ()
    danger_keywords: tuple[str, ...] = Field(
        default=(), description="words that make an order of this category an emergency"
    )
    symptoms: tuple[str, ...] = Field(
        default=(), description="the problem told without its official words (嗡嗡, 片子冰凉)"
    )
    alarms: tuple[str, ...] = Field(
        default=(),
        description="danger that makes an order an emergency whatever its category (被困, 煤气味, 冒火星)",
    )
    situations: tuple[tuple[tuple[str, ...], ...], ...] = Field(
        default=(),
        description="alarms told in parts, each part one of its words, anywhere in the call: "
        "[[配电房, 配电室], [进水, 淹]] is water in the power room",
    )
    request_type: RequestType = Field(
        default="help", description="the 诉求类型 of a call of this category that says nothing more"
    )


class Speech(_Model):
    """How the jurisdiction's residents talk, for intake's tagger and placer: the words it reads as
    standard ones, and the markers that tell the complaint from what is only mentioned around it.
    Each marker list is read from the marker to the end of its clause, unless said otherwise."""

    dialect: dict[str, str] = Field(
        default={}, description="dialect or colloquial word -> the standard word (俺 -> 我, 梯子 -> 电梯)"
    )
    neutral: tuple[str, ...] = Field(
        default=(), description="phrases that hold a keyword but mean nothing to tag (打着火 of an engine)"
    )
    context: tuple[str, ...] = Field(
        default=(), description="what follows is a mention, not the complaint: 物业说, 上次, 冒充, 交了"
    )
    fee: tuple[str, ...] = Field(default=(), description="a keyword right before these names a fee: 费")
    request: tuple[str, ...] = Field(default=(), description="the clause asks for something: 麻烦, 赶紧")
    not_now: tuple[str, ...] = Field(
        default=(), description="danger after these is feared or past, not happening: 怕, 万一, 上周"
    )
    not_now_clause: tuple[str, ...] = Field(
        default=(), description="the whole clause is a feared consequence: 进不来"
    )
    alarms: tuple[str, ...] = Field(
        default=(),
        description="danger whatever the problem, tagging no category: a person lying still, bleeding",
    )
    home: tuple[str, ...] = Field(default=(), description="a place right after these is the caller's home")
    away: tuple[str, ...] = Field(
        default=(), description="a place right after these is not the problem's: 单位在, 公司在"
    )
    away_after: tuple[str, ...] = Field(
        default=(), description="a place right before these is not the problem's: 上班, 工作"
    )
    sound_alike: dict[str, str] = Field(
        default={}, description="pinyin the speech-to-text confuses (zh -> z), for sound matching"
    )
    no_sound: tuple[str, ...] = Field(
        default=(), description="phrases never matched by sound: their sound is also a common word's"
    )
    function_chars: str = Field(
        default="", description="characters that anchor no sound match: 了, 的 (在了 is no 栽了)"
    )


class RequestTypeWords(_Model):
    """What tells a call's 诉求类型 (咨询, 求助, 投诉, 举报, 建议) beside its category: the words that
    name a type outright, and the cues of each type. Read by intake (services/intake/request_types.py)."""

    said: dict[str, RequestType] = Field(
        default={}, description="words that name the type outright: 投诉 -> complaint, 举报 -> report"
    )
    cues: dict[RequestType, tuple[str, ...]] = Field(
        default={}, description="phrases that lean to a type: 怎么办理 (inquiry), 扰民 (complaint)"
    )


class Duty(_Model):
    """One line of the duty list (职责清单): who leads, who assists, for a category at a level."""

    category: str
    level: Level
    lead: str
    assist: tuple[str, ...] = ()


class TimeLimit(_Model):
    accept: timedelta
    resolve: timedelta


Counting = Literal["calendar", "working"]


class CalendarPolicy(_Model):
    """How time limits are counted, per urgency: in calendar time, or in working days (with the
    holidays and the make-up working days 调休). Typical: emergencies on the clock, complaints in
    working days."""

    counting: dict[Urgency, Counting] = {}
    holidays: tuple[date, ...] = ()
    workdays: tuple[date, ...] = ()


class Jurisdiction(_Model):
    format: Literal["whistle.jurisdiction/1"]
    version: str = Field(min_length=1)
    name: str = Field(min_length=1)
    timezone: str = "Asia/Shanghai"
    districts: tuple[District, ...] = Field(min_length=1)
    departments: tuple[Department, ...] = Field(min_length=1)
    categories: tuple[Category, ...] = Field(min_length=1)
    duties: tuple[Duty, ...] = ()
    time_limits: dict[Urgency, TimeLimit]
    calendar: CalendarPolicy = CalendarPolicy()
    triage: dict[Literal["community", "street", "district"], str] = Field(
        description="department code of the triage desk for unplaced or uncategorised orders"
    )
    speech: Speech = Speech()
    request_types: RequestTypeWords = RequestTypeWords()

    @model_validator(mode="after")
    def _check_references(self) -> Jurisdiction:
        errors: list[str] = []
        departments = {d.code for d in self.departments}
        categories = {c.code for c in self.categories}
        grids: set[str] = set()
        for d_i, district in enumerate(self.districts):
            for s_i, street in enumerate(district.streets):
                for c_i, community in enumerate(street.communities):
                    here = f"districts[{d_i}].streets[{s_i}].communities[{c_i}]"
                    own = {g.code for g in community.grids}
                    for g in community.grids:
                        if g.code in grids:
                            errors.append(f"{here}.grids: grid code {g.code!r} is used twice")
                        grids.add(g.code)
                    for k_i, compound in enumerate(community.compounds):
                        if compound.grid not in own:
                            errors.append(
                                f"{here}.compounds[{k_i}].grid: {compound.grid!r} is not a grid "
                                f"of {community.name}"
                            )
                        if compound.property_company and compound.property_company not in departments:
                            errors.append(
                                f"{here}.compounds[{k_i}].property_company: unknown department "
                                f"{compound.property_company!r}"
                            )
        for i, duty in enumerate(self.duties):
            if duty.category not in categories:
                errors.append(f"duties[{i}].category: unknown category {duty.category!r}")
            for code in (duty.lead, *duty.assist):
                if code not in departments:
                    errors.append(f"duties[{i}]: unknown department {code!r}")
        for level, code in self.triage.items():
            if code not in departments:
                errors.append(f"triage.{level}: unknown department {code!r}")
        if "other" not in categories:
            errors.append("categories: the fallback category 'other' is missing")
        for urgency in ("emergency", "urgent", "normal"):
            if urgency not in self.time_limits:
                errors.append(f"time_limits.{urgency}: missing")
        if errors:
            raise ValueError("; ".join(errors))
        return self

    # Look-ups, built once per loaded file.
    @cached_property
    def category_by_code(self) -> dict[str, Category]:
        return {c.code: c for c in self.categories}

    @cached_property
    def category_by_name(self) -> dict[str, Category]:
        return {c.name: c for c in self.categories}

    def find_category(self, code_or_name: str) -> Category | None:
        key = code_or_name.strip()
        return self.category_by_code.get(key.lower()) or self.category_by_name.get(key)

    @cached_property
    def department_by_code(self) -> dict[str, Department]:
        return {d.code: d for d in self.departments}

    @cached_property
    def places_by_grid(self) -> dict[str, tuple[Street, Community, Grid]]:
        return {
            g.code: (s, c, g)
            for d in self.districts
            for s in d.streets
            for c in s.communities
            for g in c.grids
        }

    @cached_property
    def communities(self) -> list[tuple[Street, Community]]:
        return [(s, c) for d in self.districts for s in d.streets for c in s.communities]

    @cached_property
    def community_by_name(self) -> dict[str, tuple[Street, Community]]:
        return {c.name: (s, c) for s, c in self.communities}

    @cached_property
    def compounds(self) -> list[tuple[Street, Community, Compound]]:
        return [(s, c, k) for s, c in self.communities for k in c.compounds]

    @cached_property
    def keyword_index(self) -> PhraseIndex[str]:
        """Category keywords (and the display names themselves) -> category codes."""
        # 其他 competes too: its keywords (表扬, 感谢 …) keep praise from landing at a department.
        # Each category once per phrase (a name may be a keyword too), in the file's order.
        return PhraseIndex(dict.fromkeys((p, c.code) for c in self.categories for p in (c.name, *c.keywords)))

    @cached_property
    def place_index(self) -> PhraseIndex[Locality]:
        """Compound, community and street names with their aliases -> where they are."""
        entries: list[tuple[str, Locality]] = []
        for d in self.districts:
            for s in d.streets:
                entries += [(n, Locality(s, None, None)) for n in (s.name, *s.aliases)]
                for c in s.communities:
                    entries += [(n, Locality(s, c, None)) for n in (c.name, *c.aliases)]
                    entries += [(n, Locality(s, c, k)) for k in c.compounds for n in (k.name, *k.aliases)]
        return PhraseIndex(entries)

    @cached_property
    def duty_by_key(self) -> dict[tuple[str, str], Duty]:
        return {(d.category, d.level): d for d in self.duties}


@dataclass(frozen=True, slots=True)
class Locality:
    """What a place name refers to: a street, a community in it, or a compound in that community."""

    street: Street
    community: Community | None
    compound: Compound | None


class ReferenceDataError(ValueError):
    """The reference-data file cannot be used; the message names the file and the field."""


def load_jurisdiction(path: Path) -> Jurisdiction:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ReferenceDataError(f"{path}: no such reference-data file") from exc
    except json.JSONDecodeError as exc:
        raise ReferenceDataError(f"{path}: line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    try:
        return Jurisdiction.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in exc.errors()
        )
        raise ReferenceDataError(f"{path}: {problems}") from exc


DEFAULT_JURISDICTION = Path(__file__).parent / "data" / "yantai.json"


def calendars_of(
    ref: Jurisdiction, overrides: dict[Urgency, Counting] | None = None
) -> dict[Urgency, Calendar]:
    """The calendar each urgency's limits are counted in; settings override the jurisdiction."""
    counting = ref.calendar.counting | (overrides or {})
    return {
        urgency: Calendar(
            counting=counting.get(urgency, "calendar"),
            timezone=ref.timezone,
            holidays=frozenset(ref.calendar.holidays),
            workdays=frozenset(ref.calendar.workdays),
        )
        for urgency in ("emergency", "urgent", "normal")
    }
