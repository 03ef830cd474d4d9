"""The sample month: November 2026 in the sample jurisdiction (and the last week of October, for the
hot spots' change from the month before), as a replayable JSONL log ({"topic", "key", "event"} a
line, in time order): 12345 calls and grid reports, the departments' responses and the residents'
answers to the follow-up call.

Deterministic: a seeded generator, ids and event ids derived from it (uuid5), so the same command
writes the same bytes. Who gets each order, and by when, is not guessed: every call goes through
intake's own pure rules (``order_from_call``, ``order_from_report``) and dispatch's aggregate
(``services.dispatch.domain.Order``), and the departments answer the dispatches that aggregate made,
at times inside (or, for the late ones, past) the deadlines it set. What the log holds therefore
follows the project's rules as they are when it is written: a change to routing or time limits
changes the log (``--check`` says whether two runs agree and match the digest written beside it).

    python -m tools.sample_month [--out FILE] [--check]

Made so that replaying it is safe at speed: each response comes at least ``MIN_GAP`` after what
it answers and at least ``MIN_MARGIN`` before the deadline it keeps; repeats (并单) are made on
purpose only, and no five reports of one category in one community fall within an hour (工单预警
would raise them to the street)."""

from __future__ import annotations

import argparse
import gzip
import hashlib
import random
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from services.dispatch.dispatches import Response
from services.dispatch.domain import Order
from services.dispatch.routing import Policy
from services.intake.domain import NewOrder, order_from_call, order_from_report
from shared import contract
from shared.contract import GridReport, HotlineCall, OrderOpened
from shared.reference import (
    DEFAULT_JURISDICTION,
    Community,
    Compound,
    Jurisdiction,
    Street,
    load_jurisdiction,
    next_level,
)
from tools.stack import settings_from

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "reports" / "sample-month-2026-11.jsonl.gz"
DIGEST = ROOT / "tools" / "samples" / "month-2026-11.sha256"
SEED = 20261101
ZONE = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 10, 25, tzinfo=ZONE)  # the month before: its last week
MONTH = datetime(2026, 11, 1, tzinfo=ZONE)
END = datetime(2026, 12, 1, tzinfo=ZONE)
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "whistle/sample-month/2026-11")

MIN_GAP = timedelta(minutes=20)  # a response after what it answers (a replay's hops take time)
MIN_MARGIN = timedelta(minutes=8)  # a response before the deadline it keeps
PER_DAY = (118, 124, 121, 119, 116, 82, 74)  # Monday .. Sunday, calls and reports together
HOURS = (0, 0, 0, 0, 0, 0, 1, 4, 9, 11, 10, 9, 6, 7, 9, 9, 8, 6, 4, 3, 2, 1, 1, 0)  # by hour of day

# Category -> (weight, request types with weights): what residents call about, and how.
CATEGORIES: dict[str, tuple[int, dict[str, int]]] = {
    "heating": (16, {"help": 6, "complaint": 4}),
    "water_supply": (6, {"help": 6, "inquiry": 1}),
    "power_supply": (4, {"help": 5, "inquiry": 1}),
    "property_service": (12, {"complaint": 6, "help": 2, "suggestion": 1}),
    "elevator": (5, {"help": 3, "complaint": 3}),
    "illegal_building": (3, {"report": 5, "complaint": 1}),
    "illegal_parking": (8, {"complaint": 5, "report": 2}),
    "noise": (9, {"complaint": 7, "report": 1}),
    "sanitation": (6, {"complaint": 4, "suggestion": 1}),
    "waste_sorting": (3, {"suggestion": 2, "inquiry": 2, "complaint": 1}),
    "road": (4, {"help": 2, "suggestion": 2, "complaint": 1}),
    "streetlight": (4, {"help": 3, "suggestion": 1}),
    "drainage": (4, {"help": 4}),
    "ev_charging": (3, {"suggestion": 3, "inquiry": 2}),
    "dog_control": (3, {"complaint": 4, "report": 1}),
    "neighbour_dispute": (2, {"help": 3, "complaint": 2}),
    "greenery": (2, {"suggestion": 3, "complaint": 1}),
    "food_safety": (1, {"report": 4, "complaint": 1}),
    "elderly_care": (2, {"inquiry": 3, "help": 2}),
    "policy_inquiry": (9, {"inquiry": 10}),
}
# What a resident says about each category; {place} is the compound. No danger words, so that
# intake keeps the urgency the call gives.
TEXTS: dict[str, tuple[str, ...]] = {
    "heating": ("{place}暖气不热，屋里只有十六度", "{place}家里暖气片温度很低，老人受不了"),
    "water_supply": ("{place}从上午开始停水了，没有通知", "{place}自来水发黄，水压也小"),
    "power_supply": ("{place}楼道里一直停电，晚上很黑", "{place}家里电压不稳，灯一直闪"),
    "property_service": ("{place}物业不作为，楼道卫生没人管", "{place}物业费收了但门禁坏了一个月没修"),
    "elevator": ("{place}电梯又停了，住高层的老人下不了楼", "{place}电梯运行时有异响，希望检修"),
    "illegal_building": ("{place}一楼住户私自扩建院子", "{place}楼顶有人私搭违建"),
    "illegal_parking": ("{place}门口车辆乱停，消防通道被占", "{place}小区外路边长期停放僵尸车"),
    "noise": ("{place}附近工地夜间施工，吵得没法睡", "{place}楼下商铺音响声音太大"),
    "sanitation": ("{place}垃圾桶满了好几天没人清运", "{place}楼道里堆放杂物，气味很大"),
    "waste_sorting": ("{place}垃圾分类投放点设置不合理", "想咨询{place}垃圾分类投放时间"),
    "road": ("{place}门口路面坑洼，雨天积水", "{place}附近人行道地砖松动"),
    "streetlight": ("{place}门前路灯坏了好几盏", "{place}附近路灯晚上不亮"),
    "drainage": ("{place}下水道堵塞，污水往外冒", "{place}雨水井盖下面排水不畅"),
    "ev_charging": ("{place}能不能加装电动车充电桩", "想咨询{place}充电桩怎么申请"),
    "dog_control": ("{place}有人遛狗不牵绳", "{place}小区里流浪狗很多"),
    "neighbour_dispute": ("{place}楼上漏水到我家，协商不成", "{place}邻居在公共区域堆放杂物引发矛盾"),
    "greenery": ("{place}绿化带树木遮挡采光，希望修剪", "{place}草坪被占用种菜"),
    "food_safety": ("{place}附近小餐馆卫生条件差", "{place}门口早餐摊卫生堪忧"),
    "elderly_care": ("想咨询{place}附近的老年食堂", "{place}独居老人需要上门服务"),
    "policy_inquiry": ("想咨询{place}所在社区的居住证办理流程", "咨询{place}供暖费补贴政策"),
}
# Problems that recur (每月一题 candidates): (category, community) -> extra weight in November and in
# October. Rising, falling and steady ones, so that the change from the month before shows.
RECURRING: dict[tuple[str, str], tuple[int, int]] = {
    ("heating", "夹河社区"): (150, 20),
    ("illegal_parking", "富祥社区"): (40, 30),
    ("noise", "长江路社区"): (32, 4),
    ("property_service", "墨翠府社区"): (16, 60),
    ("elevator", "夹河社区"): (18, 2),
}
ANSWERS = "已在电话中答复：告知办理地点、所需材料和办理时间"
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"


@dataclass
class Made:
    """What the log holds, for tests and the docs: counts by kind."""

    counts: Counter[str] = field(default_factory=Counter)
    orders_by_category: Counter[str] = field(default_factory=Counter)  # November, not merged
    pairs: Counter[tuple[str, str]] = field(default_factory=Counter)  # November, not merged


class Month:
    def __init__(self, ref: Jurisdiction, seed: int = SEED) -> None:
        self.ref = ref
        self.rng = random.Random(seed)
        self.policy = Policy.of(ref, settings_from({}))  # the default limits, not this shell's
        self.compounds = [(s, c, k) for s, c, k in ref.compounds if self._known(c)]
        self.by_community: dict[str, list[tuple[Street, Community, Compound]]] = {}
        for s, c, k in self.compounds:
            self.by_community.setdefault(c.name, []).append((s, c, k))
        self.records: list[tuple[datetime, int, dict[str, Any]]] = []
        # Orders a repeat may join: (category, type, street, community, compound, opened, resolved).
        self.live: list[tuple[str, str, Street, Community, Compound, datetime, datetime]] = []
        self.open_until: dict[tuple[str, str], datetime] = {}  # (category, grid) -> no repeat before
        self.recent: dict[tuple[str, str], list[datetime]] = {}  # (category, community) -> times
        self.made = Made()
        self.serial = 0
        self.call_no = 0

    @staticmethod
    def _known(c: Community) -> bool:
        return bool(c.compounds)

    # ---- the whole log ---------------------------------------------------------------------

    def build(self) -> list[dict[str, Any]]:
        day = START
        while day < END:
            n = PER_DAY[day.weekday()] if day >= MONTH else PER_DAY[day.weekday()] * 9 // 10
            minutes = sorted(self._minute_of_day() for _ in range(n))
            for minute in minutes:
                self.one(day + timedelta(minutes=minute, seconds=self.rng.randrange(60)))
            day += timedelta(days=1)
        self.records.sort(key=lambda r: (r[0], r[1]))
        return [r[2] for r in self.records]

    def _minute_of_day(self) -> int:
        hour = self.rng.choices(range(24), weights=HOURS)[0]
        return hour * 60 + self.rng.randrange(60)

    # ---- one report or call, and everything that follows it ---------------------------------

    def one(self, at: datetime) -> None:
        if self.live and self.rng.random() < 0.03 and self._repeat(at):
            return
        category, place = self._what_and_where(at >= MONTH)
        if place is None:
            return
        street, community, compound = place
        types = CATEGORIES[category][1]
        kind = self.rng.choices(list(types), weights=list(types.values()))[0]
        if self.rng.random() < 0.12:
            self._grid_report(at, category, street, community, compound)
        else:
            self._call(at, category, kind, street, community, compound)

    def _what_and_where(self, november: bool) -> tuple[str, tuple[Street, Community, Compound] | None]:
        weights = {(c, ""): w * 10 for c, (w, _) in CATEGORIES.items()}
        extra = {(c, com): (new if november else old) for (c, com), (new, old) in RECURRING.items()}
        choices = list(weights) + list(extra)
        category, community = self.rng.choices(
            choices, weights=list(weights.values()) + list(extra.values())
        )[0]
        pool = self.by_community.get(community, []) if community else self.compounds
        return category, self.rng.choice(pool) if pool else None

    def _repeat(self, at: datetime) -> bool:
        """A second call about a problem still open at the same compound (并单): intake merges it."""
        for category, kind, street, community, compound, opened, open_until in reversed(self.live[-60:]):
            if opened + MIN_GAP < at < min(opened + timedelta(hours=20), open_until - timedelta(hours=1)):
                self._call(at, category, kind, street, community, compound, repeat=True)
                return True
        return False

    def _clusters(self, category: str, community: str, at: datetime) -> bool:
        """Whether one more report here now could make five within the hour (an early warning)."""
        times = [t for t in self.recent.get((category, community), []) if at - t < timedelta(minutes=75)]
        self.recent[(category, community)] = times
        return len(times) >= 3

    # ---- calls and grid reports --------------------------------------------------------------

    def _call(
        self,
        at: datetime,
        category: str,
        kind: str,
        street: Street,
        community: Community,
        compound: Compound,
        repeat: bool = False,
    ) -> None:
        if self._clusters(category, community.name, at):
            return
        if not repeat and not self._open_free(category, compound, at):
            return  # it would be merged into an open order by accident
        self.call_no += 1
        call_id = f"12345-{at:%Y%m%d}-{self.call_no:06d}"
        text = self.rng.choice(TEXTS[category]).format(place=compound.name)
        urgency = self.rng.choices(("normal", "urgent", "emergency"), weights=(92, 7, 1))[0]
        direct = kind == "inquiry" and self.rng.random() < 0.45
        data: dict[str, Any] = {
            "call_id": call_id,
            "channel": self.rng.choices(("phone", "wechat", "app", "web"), weights=(80, 10, 6, 4))[0],
            "content": text,
            "caller": {
                "name": self.rng.choice(SURNAMES) + self.rng.choice(("先生", "女士")),
                "phone": self._phone(),
            },
            "category_hint": category,
            "address": f"{street.name}{community.name}{compound.name}",
            "location": {"street": street.name, "community": community.name},
            "urgency": urgency,
            "request_type": kind,
        }
        if direct:
            data |= {"answered_directly": True, "answer": ANSWERS}
        call = HotlineCall.model_validate(data)
        event = self._event(
            contract.HOTLINE_CALLS, call_id, "hotline.call.received", at, data, "hotline/yantai-12345"
        )
        new = order_from_call(call, event["event"]["id"], at, self.ref)
        self._emit(at, event)
        self._count(at, new, repeat)
        if repeat:
            self.made.counts["repeats"] += 1
            return  # merged into the open order (并单): never dispatched
        if direct and (getattr(new, "answered_directly", False) or new.closed_on_site):
            return  # intake closes it on the call: nothing to dispatch
        self._follow(new, at, event["event"]["id"], kind)

    def _grid_report(
        self, at: datetime, category: str, street: Street, community: Community, compound: Compound
    ) -> None:
        if self._clusters(category, community.name, at) or not self._open_free(category, compound, at):
            return
        self.serial += 1
        report_id = f"GR-{at:%Y%m%d}-{self.serial:05d}"
        on_site = self.rng.random() < 0.4
        data = {
            "report_id": report_id,
            "grid_id": compound.grid,
            "worker_id": f"W-{compound.grid}",
            "category": category,
            "description": self.rng.choice(TEXTS[category]).format(place=compound.name),
            "address": f"{community.name}{compound.name}",
            "urgency": "normal",
            "handled_on_site": on_site,
        }
        report = GridReport.model_validate(data)
        event = self._event(
            contract.GRID_REPORTS, report_id, "grid.issue.reported", at, data, "gridapp/yantai"
        )
        new = order_from_report(report, event["event"]["id"], at, self.ref)
        self._emit(at, event)
        self._count(at, new, False)
        if not new.closed_on_site:
            self._follow(new, at, event["event"]["id"], "report")

    def _open_free(self, category: str, compound: Compound, at: datetime) -> bool:
        until = self.open_until.get((category, compound.grid))
        return until is None or until < at

    def _count(self, at: datetime, new: NewOrder, repeat: bool) -> None:
        self.recent.setdefault((new.category.code, new.place.community or ""), []).append(at)
        self.made.counts["calls" if new.source == "hotline" else "grid reports"] += 1
        if at >= MONTH and not repeat:
            self.made.orders_by_category[new.category.code] += 1
            if new.place.community and new.category.code != "other":
                self.made.pairs[(new.category.code, new.place.community)] += 1

    # ---- the departments and the resident ----------------------------------------------------

    def _follow(self, new: NewOrder, at: datetime, cause: str, kind: str) -> None:
        """Dispatch's aggregate takes the order; the departments answer what it sends, the resident
        answers when it is resolved, until it is closed or left open."""
        opened = OrderOpened.model_validate(new.opened())
        order = Order.opened(opened, False, self.policy, cause, at)
        opened_at, first_resolved = at, END
        rounds = 0
        closed_at: datetime | None = None
        while rounds < 6:
            rounds += 1
            current = [d for d in order.dispatches if d.status == "assigned" and d.new]
            for d in order.dispatches:
                d.new = False
            lead = next((d for d in current if d.role == "lead"), None)
            if lead is None:
                break
            for d in current:
                if d.role == "assist":
                    self._respond(order, d, "dispatch.accepted", self._between(at, d.accept_by, 0.1, 0.6))
            fate = self.rng.random()
            if fate < 0.05 and lead.level != "district":  # never signed for: the ladder
                self.made.counts["left unanswered"] += 1
                at = lead.accept_by
                self._escalate(order, lead, "signed for", at)
                continue
            if fate < 0.09 and rounds == 1:  # returned (退单)
                reason = self.rng.choice(
                    ("not_our_responsibility", "not_our_responsibility", "insufficient_info")
                )
                at = self._between(at, lead.accept_by, 0.05, 0.4)
                self._respond(
                    order, lead, "dispatch.rejected", at, reason=reason, note="经核实不属于本单位职责范围"
                )
                self.made.counts["returned"] += 1
                at = self._review(order, lead, at)
                # The next lead answers a while after the centre approved the return.
                at += timedelta(hours=2)
                continue
            accepted = self._between(at, lead.accept_by, 0.05, 0.5)
            self._respond(order, lead, "dispatch.accepted", accepted, note="已签收，安排人员处理")
            if fate < 0.12 and lead.level != "district":  # signed for, never resolved in time
                self.made.counts["resolved late"] += 1
                at = lead.resolve_by
                self._escalate(order, lead, "resolved", at)
                continue
            resolved = self._between(accepted, lead.resolve_by, 0.02, 0.35, skew=True)
            self._respond(order, lead, "dispatch.resolved", resolved, result="已上门处理，问题已解决")
            at, first_resolved = resolved, min(first_resolved, resolved)
            if self.rng.random() < 0.1:  # nobody answers the follow-up call: unrated
                self.made.counts["unrated"] += 1
                closed_at = resolved
                break
            answered = resolved + timedelta(minutes=30 + self.rng.randrange(20 * 60))
            said = self.rng.choices(
                ("satisfied", "basically_satisfied", "dissatisfied"), weights=(80, 12, 8)
            )[0]
            self._feedback(order, answered, said)
            at = answered
            if order.status == "closed":
                closed_at = answered
                break
        self.open_until[(order.category, order.grid or "")] = (closed_at or END) + timedelta(hours=1)
        place = self._place_of(new)
        if place is not None and new.source == "hotline":
            self.live.append((order.category, kind, *place, opened_at, first_resolved))

    def _place_of(self, new: NewOrder) -> tuple[Street, Community, Compound] | None:
        return next(
            (
                p
                for p in self.by_community.get(new.place.community or "", [])
                if p[2].name == new.place.compound
            ),
            None,
        )

    def _escalate(self, order: Order, lead: Any, verb: str, at: datetime) -> None:
        higher = next_level(order.level)
        if higher is None:
            return
        reason = f"not {verb} by {lead.department} in time"
        order.begin(f"sample-escalation-{lead.id}-{verb}", at).escalation_requested(
            order.level, higher, reason, self.policy
        )
        self.made.counts["escalated"] += 1

    def _respond(self, order: Order, d: Any, type: str, at: datetime, **extra: str) -> None:
        data = {"dispatch_id": d.id, "work_order_id": order.id, "department": d.department, **extra}
        event = self._event(
            contract.DISPATCH_RESPONSES, order.id, type, at, data, f"department/{d.department}"
        )
        self._emit(at, event)
        r = Response(type, d.id, order.id, d.department)
        order.begin(event["event"]["id"], at)
        if type == "dispatch.accepted":
            order.accept(r)
        elif type == "dispatch.resolved":
            order.resolve(r, extra["result"], self.policy)
        else:
            order.reject(r, extra["reason"], extra.get("note"), self.policy)
        self.made.counts[type] += 1

    def _feedback(self, order: Order, at: datetime, said: str) -> None:
        data = {
            "work_order_id": order.id,
            "satisfaction": said,
            "resolved": said != "dissatisfied",
            "comment": "处理及时" if said != "dissatisfied" else "问题还在",
        }
        event = self._event(
            contract.FEEDBACK, order.id, "resident.feedback.received", at, data, "hotline/callback"
        )
        self._emit(at, event)
        order.begin(event["event"]["id"], at).feedback(said, said != "dissatisfied", self.policy)
        self.made.counts["feedback " + said] += 1

    def _between(
        self, start: datetime, deadline: datetime, low: float, high: float, skew: bool = False
    ) -> datetime:
        """A time inside (start + MIN_GAP, deadline - MIN_MARGIN), at a share of the span."""
        first, last = start + MIN_GAP, deadline - MIN_MARGIN
        if last <= first:
            return first
        u = self.rng.random()
        share = low + (high - low) * (u * u if skew else u)
        return first + (last - first) * share

    # ---- events ---------------------------------------------------------------------------------

    def _phone(self) -> str:
        return self.rng.choice(("138", "139", "150", "186", "177")) + f"{self.rng.randrange(10**8):08d}"

    def _review(self, order: Order, d: Any, returned_at: datetime) -> datetime:
        """派单异议审核: the centre's desk approves the return within its two working hours."""
        at = returned_at + timedelta(minutes=self.rng.randint(10, 90))
        data = {
            "work_order_id": order.id,
            "dispatch_id": d.id,
            "operator": "centre-duty",
            "note": "核实属实，同意退回",
        }
        event = self._event(
            contract.ORDER_COMMANDS, order.id, "order.return.approve", at, data, "whistle/api"
        )
        self._emit(at, event)
        order.begin(event["event"]["id"], at)
        order.approve_return(d.id, "centre-duty", data["note"], self.policy)
        return at

    def _event(
        self, topic: str, key: str, type: str, at: datetime, data: dict[str, Any], source: str
    ) -> dict[str, Any]:
        self.serial += 1
        event = {
            "specversion": "1.0",
            "id": str(uuid.uuid5(NAMESPACE, f"{topic}/{key}/{type}/{self.serial}")),
            "source": source,
            "type": type,
            "time": at.isoformat(timespec="seconds"),
            "subject": key,
            "datacontenttype": "application/json",
            "data": data,
        }
        return {"topic": topic, "key": key, "event": event}

    def _emit(self, at: datetime, record: dict[str, Any]) -> None:
        self.records.append((at.replace(microsecond=0), len(self.records), record))


def generate(ref: Jurisdiction | None = None, seed: int = SEED) -> tuple[bytes, Made]:
    """The log's bytes (JSONL, gzip with no timestamp, so the same bytes every time) and its counts."""
    month = Month(ref or load_jurisdiction(DEFAULT_JURISDICTION), seed)
    lines = b"".join(orjson.dumps(r) + b"\n" for r in month.build())
    return gzip.compress(lines, compresslevel=9, mtime=0), month.made


def lines_of(blob: bytes) -> Iterator[bytes]:
    yield from gzip.decompress(blob).splitlines()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.sample_month", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--out", type=Path, default=OUT, help=f"where to write it (default {OUT})")
    parser.add_argument("--check", action="store_true", help="generate twice, compare with the digest")
    args = parser.parse_args(argv)
    blob, made = generate()
    digest = hashlib.sha256(blob).hexdigest()
    if args.check:
        again, _ = generate()
        recorded = DIGEST.read_text().split()[0] if DIGEST.exists() else ""
        same = again == blob and recorded == digest
        print(f"sample month: {digest} {'matches' if same else f'differs from {DIGEST} ({recorded})'}")
        return 0 if same else 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(blob)
    DIGEST.write_text(f"{digest}  {OUT.name}\n")
    print(f"wrote {args.out} ({len(blob):,} bytes): {dict(sorted(made.counts.items()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
