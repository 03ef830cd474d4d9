"""The sample Yantai jurisdiction and a sample morning of events, built from the YAML in ``tools/yantai/``.

Run from the repository root::

    python -m tools.sample_data            # write the files below
    python -m tools.sample_data --check    # write nothing; fail if a committed file is stale

It writes ``shared/data/yantai.json`` (format ``whistle.jurisdiction/1``) from ``places.yaml``,
``departments.yaml``, ``categories.yaml``, ``duties.yaml``, ``speech.yaml``, ``request_types.yaml``
and ``jurisdiction.yaml``, and ``tools/samples/morning.jsonl`` from ``morning.yaml`` (a morning of
12345 calls and grid reports on 2026-11-21, one ``{"topic", "key", "event"}`` object per line, the
event a CloudEvent as in docs/contract.md). The output is deterministic: the same bytes on every
run, no network, no randomness beyond hashes of the content.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import orjson
import typer
import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from shared.reference import FORMAT, Category, DepartmentKind, Jurisdiction, Level, RequestTypeWords, Speech
from tools.sample_morning import Morning, MorningSource

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "tools" / "yantai"
JURISDICTION_PATH = ROOT / "shared" / "data" / "yantai.json"
LOG_PATH = ROOT / "tools" / "samples" / "morning.jsonl"
COMMAND = "python -m tools.sample_data"

JsonObject = dict[str, Any]
T = TypeVar("T")
NUMERALS = ("一", "二", "三", "四", "五", "六", "七", "八", "九", "十", "十一", "十二")


class SourceError(ValueError):
    """A source file cannot be used; the message names the file and the field."""


class _Loader(yaml.SafeLoader):
    """Safe YAML that refuses a key written twice: PyYAML would silently keep the last one."""


def _mapping(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    pairs = loader.construct_pairs(node, deep=True)
    keys = [key for key, _ in pairs]
    for key in keys:
        if keys.count(key) > 1:
            raise yaml.constructor.ConstructorError(None, None, f"key {key!r} written twice", node.start_mark)
    return dict(pairs)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def read(path: Path, shape: type[T]) -> T:
    """A YAML file validated as ``shape``. Strings stay strings: an unquoted 2026-01-01 or 10:06
    (a date, a base-60 number in YAML 1.1) is refused, not converted."""
    try:
        with path.open(encoding="utf-8") as file:
            raw = yaml.load(file, Loader=_Loader)
        return TypeAdapter(shape).validate_python(raw)
    except yaml.YAMLError as exc:
        raise SourceError(f"{path}: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in exc.errors()
        )
        raise SourceError(f"{path}: {problems}") from exc


class _Source(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CompoundSource(_Source):
    name: str
    aliases: tuple[str, ...] = ()
    grid: int = Field(ge=1, description="the number of its grid in the community")
    property_company: str | None = None


class CommunitySource(_Source):
    code: str
    name: str
    abbr: str = Field(description="segment of the grid codes, unique inside the street")
    aliases: tuple[str, ...] = ()
    grids: int = Field(ge=1, le=len(NUMERALS))  # as far as grid names count
    compounds: tuple[CompoundSource, ...]


class StreetSource(_Source):
    code: str
    name: str
    abbr: str
    aliases: tuple[str, ...] = ()
    communities: tuple[CommunitySource, ...]


class DistrictSource(_Source):
    code: str
    name: str
    abbr: str
    streets: tuple[StreetSource, ...]


class DutyLine(_Source):
    lead: str
    assist: tuple[str, ...] = ()


class DutySource(_Source):
    triage: dict[str, str]
    duties: dict[str, dict[Level, DutyLine]]


class CalendarSource(_Source):
    counting: dict[str, str] = {}
    holidays: tuple[str, ...] = ()
    workdays: tuple[str, ...] = ()


class JurisdictionSource(_Source):
    version: str
    name: str
    timezone: str
    time_limits: dict[str, dict[str, str]]
    calendar: CalendarSource


# --------------------------------------------------------------------------------------------------
# The jurisdiction
# --------------------------------------------------------------------------------------------------

DUTY_LEVELS: tuple[Level, ...] = ("grid", "community", "street", "district")


def grid_code(district: DistrictSource, street: StreetSource, community: CommunitySource, n: int) -> str:
    return f"{district.abbr}-{street.abbr}-{community.abbr}-{n:02d}"


def grid_name(number: int) -> str:
    return f"第{NUMERALS[number - 1]}网格"


def build_districts(districts: tuple[DistrictSource, ...]) -> list[JsonObject]:
    built: list[JsonObject] = []
    for district in districts:
        streets: list[JsonObject] = []
        for street in district.streets:
            communities: list[JsonObject] = []
            for community in street.communities:
                grids = [
                    {"code": grid_code(district, street, community, n), "name": grid_name(n)}
                    for n in range(1, community.grids + 1)
                ]
                compounds: list[JsonObject] = []
                for spec in community.compounds:
                    compound: JsonObject = {"name": spec.name}
                    if spec.aliases:
                        compound["aliases"] = list(spec.aliases)
                    compound["grid"] = grid_code(district, street, community, spec.grid)
                    if spec.property_company:
                        compound["property_company"] = spec.property_company
                    compounds.append(compound)
                entry: JsonObject = {"code": community.code, "name": community.name}
                if community.aliases:
                    entry["aliases"] = list(community.aliases)
                entry |= {"grids": grids, "compounds": compounds}
                communities.append(entry)
            street_entry: JsonObject = {"code": street.code, "name": street.name}
            if street.aliases:
                street_entry["aliases"] = list(street.aliases)
            street_entry["communities"] = communities
            streets.append(street_entry)
        built.append({"code": district.code, "name": district.name, "streets": streets})
    return built


def build_duties(
    categories: tuple[Category, ...], duties: dict[str, dict[Level, DutyLine]]
) -> list[JsonObject]:
    """Each category has a line for every level from its tier to the district, in that order;
    property-tier categories from the community, as dispatch sends property-level work to the
    compound's own property company."""
    unknown = duties.keys() - {c.code for c in categories}
    if unknown:
        raise SourceError(f"duties of unknown categories: {', '.join(sorted(unknown))}")
    built: list[JsonObject] = []
    for category in categories:
        lines = duties.get(category.code, {})
        first: Level = "community" if category.tier == "property" else category.tier
        expected = DUTY_LEVELS[DUTY_LEVELS.index(first) :]
        if tuple(lines) != expected:
            raise SourceError(f"duties of {category.code}: levels {tuple(lines)}, expected {expected}")
        for level, line in lines.items():
            duty: JsonObject = {"category": category.code, "level": level, "lead": line.lead}
            if line.assist:
                duty["assist"] = list(line.assist)
            built.append(duty)
    return built


# A category's word lists that may be empty, and are left out of the file when they are.
OPTIONAL_WORDS = ("danger_keywords", "symptoms", "alarms", "situations")


def build_jurisdiction(source: Path = SOURCE) -> JsonObject:
    head = read(source / "jurisdiction.yaml", JurisdictionSource)
    districts = read(source / "places.yaml", tuple[DistrictSource, ...])
    departments = read(source / "departments.yaml", dict[DepartmentKind, dict[str, str]])
    categories = read(source / "categories.yaml", tuple[Category, ...])
    duties = read(source / "duties.yaml", DutySource)
    return {
        "format": FORMAT,
        "version": head.version,
        "name": head.name,
        "timezone": head.timezone,
        "districts": build_districts(districts),
        "departments": [
            {"code": code, "name": name, "kind": kind}
            for kind, named in departments.items()
            for code, name in named.items()
        ],
        "categories": [
            c.model_dump(exclude={k for k in OPTIONAL_WORDS if not getattr(c, k)}) for c in categories
        ],
        "duties": build_duties(categories, duties.duties),
        "time_limits": head.time_limits,
        "calendar": head.calendar.model_dump(),
        "triage": duties.triage,
        "speech": read(source / "speech.yaml", Speech).model_dump(),
        "request_types": read(source / "request_types.yaml", RequestTypeWords).model_dump(),
    }


def check_jurisdiction(j: Jurisdiction) -> None:
    """Checks the pydantic model does not make but intake's matching relies on."""
    problems: list[str] = []
    names: dict[str, str] = {}
    for _, _, compound in j.compounds:
        for text in (compound.name, *compound.aliases):
            if text in names:
                problems.append(f"{text!r} names both {names[text]} and {compound.name}")
            names[text] = compound.name
    for text, owner in names.items():
        for other, other_owner in names.items():
            if other_owner != owner and text in other:
                problems.append(f"{text!r} ({owner}) is part of {other!r} ({other_owner})")
    for street, community, compound in j.compounds:
        for alias in compound.aliases:
            for s, c in j.communities:
                if c is not community and alias in c.name:
                    problems.append(f"alias {alias!r} of {compound.name} is part of {c.name} in {s.name}")
            if len(alias) < 2:
                problems.append(f"alias {alias!r} of {compound.name} in {street.name} is too short")
    codes = [c.code for _, c in j.communities]
    if len(codes) != len(set(codes)):
        problems.append("community codes are not unique")
    for category in j.categories:
        if not 8 <= len(category.keywords) <= 60:
            problems.append(f"category {category.code}: {len(category.keywords)} keywords")
        if category.tier == "property" and (category.code, "property") in j.duty_by_key:
            problems.append(f"category {category.code}: a duty at level property")
    if len(j.categories) != len({c.name for c in j.categories}):
        problems.append("category names are not unique")
    if problems:
        raise SourceError("; ".join(problems))


# --------------------------------------------------------------------------------------------------


def build(source: Path = SOURCE) -> dict[Path, str]:
    """Every file this module writes, with its text, from the YAML in ``source``; checked."""
    text = orjson.dumps(build_jurisdiction(source), option=orjson.OPT_INDENT_2).decode() + "\n"
    jurisdiction = Jurisdiction.model_validate_json(text)
    check_jurisdiction(jurisdiction)
    events = Morning(jurisdiction, read(source / "morning.yaml", MorningSource)).events()
    log = "".join(orjson.dumps(e).decode() + "\n" for e in events)
    return {JURISDICTION_PATH: text, LOG_PATH: log}


def summary(outputs: dict[Path, str]) -> list[str]:
    j = Jurisdiction.model_validate_json(outputs[JURISDICTION_PATH])
    topics: dict[str, int] = {}
    for line in outputs[LOG_PATH].splitlines():
        topic = orjson.loads(line)["topic"]
        topics[topic] = topics.get(topic, 0) + 1
    streets = [s for d in j.districts for s in d.streets]
    return [
        f"{JURISDICTION_PATH.relative_to(ROOT)}: {len(j.districts)} districts, {len(streets)} streets, "
        f"{len(j.communities)} communities, {len(j.places_by_grid)} grids, {len(j.compounds)} compounds, "
        f"{len(j.departments)} departments, {len(j.categories)} categories, {len(j.duties)} duties",
        f"{LOG_PATH.relative_to(ROOT)}: {sum(topics.values())} events, "
        + ", ".join(f"{topic} {count}" for topic, count in sorted(topics.items())),
    ]


app = typer.Typer(add_completion=False)


@app.command()
def main(
    check: bool = typer.Option(False, "--check", help="write nothing; fail if a committed file is stale"),
) -> None:
    """Build shared/data/yantai.json and tools/samples/morning.jsonl from tools/yantai/*.yaml."""
    try:
        outputs = build()
    except ValueError as exc:  # a source file's problem, named with its file or place
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    if check:
        stale = [p for p, text in outputs.items() if not p.is_file() or p.read_bytes() != text.encode()]
        for path in stale:
            typer.secho(f"{path.relative_to(ROOT)} is stale; run {COMMAND}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1 if stale else 0)
    for path, text in outputs.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
    for line in summary(outputs):
        typer.echo(line)


if __name__ == "__main__":
    app()
