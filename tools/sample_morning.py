"""The sample morning: 12345 calls and grid reports on 2026-11-21, from ``tools/yantai/morning.yaml``
to the events of ``tools/samples/morning.jsonl`` (``python -m tools.sample_data`` writes both).

Each call and report is checked against the jurisdiction (the compound it names, the category it
gives); ids, phone numbers and the seconds of each time are derived from hashes of the text, so the
log is the same bytes on every run.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.contract import GRID_REPORTS, HOTLINE_CALLS, Channel, Urgency
from shared.reference import Jurisdiction

JsonObject = dict[str, Any]
CALL_TYPE, REPORT_TYPE = "hotline.call.received", "grid.issue.reported"


class _Source(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


At = Annotated[str, Field(pattern=r"^\d\d:\d\d$")]
Text = Annotated[str, Field(min_length=20, max_length=120)]


class CallSource(_Source):
    at: At
    channel: Channel
    caller: str | None = None  # surname and title; the phone number is derived
    place: str | None = None  # the compound the call names
    street: str | None = None
    community: str | None = None
    address: str | None = None
    hint: str | None = None
    locate: Literal["names", "codes"] | None = None
    urgency: Urgency = "normal"
    content: Text


class ReportSource(_Source):
    at: At
    worker: str
    place: str  # the compound whose grid the worker walks
    category: str
    address: str
    urgency: Urgency = "normal"
    handled_on_site: bool = False
    photos: int = Field(default=0, ge=0)
    description: Text


class MorningSource(_Source):
    date: str = Field(pattern=r"^\d{4}-\d\d-\d\d$")
    utc_offset: str = Field(pattern=r"^[+-]\d\d:\d\d$")
    hotline_source: str
    gridapp_source: str
    photo_base: str
    id_namespace: str
    phone_prefixes: tuple[str, ...] = Field(min_length=1)
    calls_before: int
    reports_before: int
    calls: tuple[CallSource, ...]
    reports: tuple[ReportSource, ...]


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


class Morning:
    """Turns the calls and reports of ``morning.yaml`` into events, checking each against the
    jurisdiction: the place it names, the category it gives."""

    def __init__(self, j: Jurisdiction, source: MorningSource) -> None:
        self.j, self.source = j, source
        self.compounds = {k.name: (s, c, k) for s, c, k in j.compounds}
        self.communities = {(s.name, c.name): (s, c) for s, c in j.communities}
        self.namespace = uuid.uuid5(uuid.NAMESPACE_URL, source.id_namespace)
        self.day = source.date.replace("-", "")

    def time(self, at: str, seed: str) -> datetime:
        second = _digest("second:" + seed) % 60
        return datetime.fromisoformat(f"{self.source.date}T{at}:{second:02d}{self.source.utc_offset}")

    def phone(self, seed: str) -> str:
        prefixes, n = self.source.phone_prefixes, _digest("phone:" + seed)
        return prefixes[n % len(prefixes)] + f"{(n // 97) % 10**8:08d}"

    def events(self) -> list[JsonObject]:
        items: list[tuple[datetime, str, CallSource | ReportSource]] = []
        items += [(self.time(c.at, c.content), HOTLINE_CALLS, c) for c in self.source.calls]
        items += [(self.time(r.at, r.description), GRID_REPORTS, r) for r in self.source.reports]
        items.sort(key=lambda item: item[0])
        events: list[JsonObject] = []
        call_no, report_no = self.source.calls_before, self.source.reports_before
        for time, topic, item in items:
            if isinstance(item, CallSource):
                call_no += 1 + _digest("gap:" + item.content) % 7  # calls answered elsewhere leave gaps
                key = f"12345-{self.day}-{call_no:06d}"
                source, type_, data = self.source.hotline_source, CALL_TYPE, self.call(key, item)
            else:
                report_no += 1 + _digest("gap:" + item.description) % 3
                key = f"GR-{self.day}-{report_no:04d}"
                source, type_, data = self.source.gridapp_source, REPORT_TYPE, self.report(key, item)
            event = {
                "specversion": "1.0",
                "id": str(uuid.uuid5(self.namespace, f"{topic}/{key}")),
                "source": source,
                "type": type_,
                "time": time.isoformat(),
                "subject": key,
                "datacontenttype": "application/json",
                "data": data,
            }
            events.append({"topic": topic, "key": key, "event": event})
        return events

    def call(self, call_id: str, call: CallSource) -> JsonObject:
        if call.place:
            self.check_place(call.at, call.place, call.content, call.address)
        if call.hint and self.j.find_category(call.hint) is None:
            raise ValueError(f"call at {call.at}: unknown category hint {call.hint!r}")
        data: JsonObject = {"call_id": call_id, "channel": call.channel, "content": call.content}
        if call.caller:
            data["caller"] = {"name": call.caller, "phone": self.phone(call_id)}
        if call.hint:
            data["category_hint"] = call.hint
        if call.address:
            data["address"] = call.address
        if call.locate:
            data["location"] = self.location(call)
        data["urgency"] = call.urgency
        return data

    def report(self, report_id: str, report: ReportSource) -> JsonObject:
        self.check_place(report.at, report.place, report.description, report.address)
        if self.j.find_category(report.category) is None:
            raise ValueError(f"report at {report.at}: unknown category {report.category!r}")
        data: JsonObject = {
            "report_id": report_id,
            "grid_id": self.compounds[report.place][2].grid,
            "worker_id": report.worker,
            "category": report.category,
            "description": report.description,
            "address": report.address,
            "urgency": report.urgency,
            "handled_on_site": report.handled_on_site,
        }
        if report.photos:
            data["photos"] = [
                f"{self.source.photo_base}/{report_id}-{n}.jpg" for n in range(1, report.photos + 1)
            ]
        return data

    def location(self, call: CallSource) -> JsonObject:
        if call.place:
            street, community, compound = self.compounds[call.place]
            grid: str | None = compound.grid
        elif call.street and call.community and (call.street, call.community) in self.communities:
            street, community = self.communities[(call.street, call.community)]
            grid = None
        else:
            raise ValueError(f"call at {call.at}: locate needs a place or a known street and community")
        names = call.locate == "names"
        location: JsonObject = {
            "street": street.name if names else street.code,
            "community": community.name if names else community.code,
        }
        if grid:
            location["grid"] = grid
        return location

    def check_place(self, at: str, place: str, text: str, address: str | None) -> None:
        """The text or address names the compound, and what it says of a 物业 fits the compound."""
        if place not in self.compounds:
            raise ValueError(f"{at}: no compound {place!r} in the jurisdiction")
        _, _, compound = self.compounds[place]
        if not any(n in t for t in (text, address or "") for n in (compound.name, *compound.aliases)):
            raise ValueError(f"{at}: neither the text nor the address names {place}")
        without = any(w in text for w in ("没有物业", "无物业"))
        if without and compound.property_company:
            raise ValueError(f"{at}: the text says {place} has no 物业, the gazetteer gives it one")
        if "物业" in text and not without and not compound.property_company:
            raise ValueError(f"{at}: the text speaks of the 物业 of {place}, which has none")
