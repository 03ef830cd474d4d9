"""Intake's rules: tagging, placing, danger, and the work order made from a call or a grid report."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from pydantic import BaseModel

from services.dispatch.routing import OrderFacts, initial_level
from services.intake.domain import (
    OpenOrder,
    OpenOrders,
    Place,
    UnknownReference,
    alert_members,
    cluster_alert,
    cluster_key,
    is_dangerous,
    merge_target,
    order_from_call,
    order_from_report,
    order_status,
    place_order,
    tag_category,
)
from services.intake.unit import IntakeBatch, lifecycle
from shared.contract import (
    GridReport,
    HotlineCall,
    Location,
    OrderOpened,
    WorkOrderData,
)
from shared.events import encode_event
from shared.reference import Jurisdiction

AT = datetime(2026, 11, 21, 8, 15, tzinfo=timezone(timedelta(hours=8)))
JINGHUA = Place("福莱山街道", "夹河社区", "HB-FLS-JH-03", "菁华公寓", "yeda_wuye")


def make_call(**fields: Any) -> HotlineCall:
    body: dict[str, Any] = {"call_id": "12345-20261121-000001", "channel": "phone", "content": "暖气不热"}
    return HotlineCall.model_validate(body | fields)


def make_report(**fields: Any) -> GridReport:
    body: dict[str, Any] = {
        "report_id": "GR-0001",
        "grid_id": "HB-FLS-JH-03",
        "worker_id": "W-17",
        "category": "fire_hazard",
        "description": "3号楼楼道堆物，堵塞消防通道",
    }
    return GridReport.model_validate(body | fields)


# ---- tag_category -----------------------------------------------------------------------------


@pytest.mark.parametrize(("hint", "code"), [("gas", "gas"), ("燃气", "gas"), ("GAS", "gas")])
def test_known_hint_wins_over_keywords(ref: Jurisdiction, hint: str, code: str) -> None:
    tag = tag_category("暖气不热，屋里冷", hint, ref)
    assert tag.category.code == code
    assert tag.confidence == 1.0


def test_unknown_hint_falls_back_to_keywords(ref: Jurisdiction) -> None:
    assert tag_category("暖气不热", "天气", ref).category.code == "heating"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("暖气不热", "heating"),
        ("菁华公寓3号楼暖气片不热，屋里冷", "heating"),
        ("家里停水了，一滴都没有", "water_supply"),
        ("厨房里有燃气味", "gas"),
        ("小区门口乱停车，堵住出口", "illegal_parking"),
        ("楼道堆物，堵塞消防通道", "fire_hazard"),
        ("楼上半夜装修噪音太吵", "noise"),
        ("电梯坏了三天了", "elevator"),
    ],
)
def test_keywords_tag_the_category(ref: Jurisdiction, text: str, code: str) -> None:
    tag = tag_category(text, None, ref)
    assert tag.category.code == code
    assert 0.5 < tag.confidence <= 1.0


def test_mixed_text_has_lower_confidence(ref: Jurisdiction) -> None:
    tag = tag_category("暖气不热，楼上还半夜装修噪音太吵", None, ref)
    assert tag.category.code in {"heating", "noise"}
    assert tag.confidence < 1.0


def test_nothing_matches_gives_other_with_zero_confidence(ref: Jurisdiction) -> None:
    tag = tag_category("今天天气不错", None, ref)
    assert tag.category.code == "other"
    assert tag.confidence == 0.0


# ---- place_order ------------------------------------------------------------------------------


def test_explicit_grid_wins_over_address(ref: Jurisdiction) -> None:
    place = place_order(Location(grid="HB-FLS-MCF-01"), "夹河社区菁华公寓3号楼", "", ref)
    assert place == Place("福莱山街道", "墨翠府社区", "HB-FLS-MCF-01")


def test_unknown_explicit_grid_is_ignored(ref: Jurisdiction) -> None:
    assert place_order(Location(grid="NOPE-01"), "菁华公寓3号楼", "", ref) == JINGHUA


@pytest.mark.parametrize(
    ("address", "text", "expected"),
    [
        ("福莱山街道夹河社区菁华公寓3号楼", "", JINGHUA),
        (None, "我住菁华3号楼，暖气不热", JINGHUA),  # alias, in the text
        ("慧园5号楼", "", Place("福莱山街道", "夹河社区", "HB-FLS-JH-06", "海信慧园", "haixin_wuye")),
        ("夹河新村2号楼", "", Place("福莱山街道", "夹河社区", "HB-FLS-JH-04", "夹河新村", None)),
        ("夹河社区卫生室旁边", "", Place("福莱山街道", "夹河社区")),
        ("古现村东头", "", Place("古现街道", "古现社区")),  # community alias
    ],
)
def test_place_from_address_or_text(
    ref: Jurisdiction, address: str | None, text: str, expected: Place
) -> None:
    assert place_order(None, address, text, ref) == expected


def test_explicit_community(ref: Jurisdiction) -> None:
    place = place_order(Location(street="古现街道", community="河口村"), None, "路灯不亮", ref)
    assert place == Place("古现街道", "河口社区")


def test_unplaced(ref: Jurisdiction) -> None:
    place = place_order(Location(community="不存在社区"), "路边", "路灯不亮", ref)
    assert place == Place()
    assert place.placed is False


def test_community_name_is_not_taken_for_a_compound(ref: Jurisdiction) -> None:
    assert place_order(None, "福莱山街道墨翠府社区长江路12号", "", ref) == Place("福莱山街道", "墨翠府社区")


def test_explicit_community_wins_over_compound_elsewhere(ref: Jurisdiction) -> None:
    place = place_order(Location(community="夹河社区"), None, "暖气不热，和万科城那边一样", ref)
    assert place.community == "夹河社区"


# ---- is_dangerous -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code", "dangerous"),
    [
        ("厨房里有燃气味", "gas", True),
        ("燃气灶打不着火", "gas", False),
        ("电梯困人了", "elevator", True),
        ("楼道冒烟了", "fire_hazard", True),
        ("车停在消防通道，怕着火了没法救", "illegal_parking", False),  # feared, and not its own danger
        ("小区门口乱停车，堵住出口，着火了消防车都进不来", "illegal_parking", False),  # a consequence
        ("厨房里有燃气味", "heating", True),  # a gas smell is an alarm whatever the desk
        ("暖气片漏水了，楼道里湿了一片", "heating", False),
        ("楼上装修砸墙砸了半个月", "noise", False),  # 砸 is the facade's danger, not an alarm
    ],
)
def test_is_dangerous_reads_the_situation(ref: Jurisdiction, text: str, code: str, dangerous: bool) -> None:
    """A category's own danger words count for it; alarms (a person trapped, a gas smell, sparks,
    someone collapsed, a fire) count for any; danger only feared counts for none."""
    assert is_dangerous(text, ref.category_by_code[code], ref) is dangerous


# ---- order_from_call --------------------------------------------------------------------------


def test_order_from_call(ref: Jurisdiction) -> None:
    call = make_call(
        content="菁华公寓3号楼暖气不热",
        address="福莱山街道夹河社区菁华公寓3号楼",
        caller={"name": "孙大爷", "phone": "13800000000"},
        urgency="urgent",
    )
    order = order_from_call(call, "ev-1", AT, ref)
    assert order.work_order_id == "WO-H-12345-20261121-000001"
    assert (order.source, order.source_id, order.event_id, order.received_at) == (
        "hotline",
        "12345-20261121-000001",
        "ev-1",
        AT,
    )
    assert order.category.code == "heating"
    assert order.place == JINGHUA
    assert order.urgency == "urgent"
    assert (order.caller_name, order.caller_phone) == ("孙大爷", "13800000000")
    assert order.closed_on_site is False


def test_gas_smell_in_a_gas_call_is_an_emergency(ref: Jurisdiction) -> None:
    order = order_from_call(make_call(content="厨房里有燃气味，很浓", urgency="normal"), "ev-1", AT, ref)
    assert order.category.code == "gas"
    assert order.urgency == "emergency"


def test_danger_word_of_another_category_does_not_upgrade(ref: Jurisdiction) -> None:
    call = make_call(content="小区门口乱停车，堵住出口，着火了消防车都进不来", category_hint="违停")
    assert order_from_call(call, "ev-1", AT, ref).urgency == "normal"


def test_an_alarm_upgrades_whatever_the_hint(ref: Jurisdiction) -> None:
    call = make_call(content="电梯停在五楼不动了，里面关着一个小孩", category_hint="物业服务")
    order = order_from_call(call, "ev-1", AT, ref)
    assert (order.category.code, order.urgency) == ("property_service", "emergency")


def test_a_person_trapped_in_a_misheard_lift_is_an_emergency_at_the_lift_desk(ref: Jurisdiction) -> None:
    """The issue's worst case: 电梯 misheard, a light mentioned, a person trapped."""
    call = make_call(content="电题停在五楼不动了，里面关着一个小孩，灯也不亮", urgency="normal")
    order = order_from_call(call, "ev-1", AT, ref)
    assert (order.category.code, order.urgency) == ("elevator", "emergency")


def test_the_problem_is_placed_where_the_complaint_is(ref: Jurisdiction) -> None:
    call = make_call(content="我家住初家小区，今天在东城国际门口看见一个井盖没了，黑乎乎一个洞")
    order = order_from_call(call, "ev-1", AT, ref)
    assert (order.category.code, order.place.compound, order.urgency) == ("road", "东城国际", "emergency")


def test_phone_numbers_are_masked_in_summary_and_address(ref: Jurisdiction) -> None:
    call = make_call(content="暖气不热，回电13812345678或0535-6881234", address="菁华公寓3号楼 13812345678")
    order = order_from_call(call, "ev-1", AT, ref)
    assert "13812345678" not in order.summary and "138****5678" in order.summary
    assert "6881234" not in order.summary
    assert order.address == "菁华公寓3号楼 138****5678"


def test_summary_is_short_and_on_one_line(ref: Jurisdiction) -> None:
    order = order_from_call(make_call(content="暖气不热\n\n" + "冷" * 500), "ev-1", AT, ref)
    assert len(order.summary) == 200
    assert order.summary.endswith("…")
    assert "\n" not in order.summary


def test_opened_event_carries_the_contact_masked(ref: Jurisdiction) -> None:
    call = make_call(address="菁华公寓3号楼", caller={"name": "孙大爷", "phone": "13800000000"})
    opened = OrderOpened.model_validate(order_from_call(call, "ev-1", AT, ref).opened())
    assert opened.contact is not None
    assert (opened.contact.name, opened.contact.phone) == ("孙**", "138****0000")
    assert opened.property_company == "yeda_wuye"
    assert "13800000000" not in opened.model_dump_json()


def test_opened_event_without_caller_has_no_contact(ref: Jurisdiction) -> None:
    assert order_from_call(make_call(), "ev-1", AT, ref).opened()["contact"] is None


@pytest.mark.parametrize(
    "call",
    [
        make_call(),
        make_call(
            address="菁华公寓3号楼",
            caller={"name": "孙大爷", "phone": "13800000000"},
            location={"street": "福莱山街道", "lat": 37.5, "lon": 121.3},
            urgency="urgent",
        ),
    ],
)
def test_intake_event_data_is_what_its_model_would_send(ref: Jurisdiction, call: HotlineCall) -> None:
    """opened() and the lifecycle events skip the models' validation (a hot path): the JSON they
    make must be the model's own, field for field, and valid."""
    order = order_from_call(call, "ev-1", AT, ref)
    made: list[tuple[type[BaseModel], dict[str, Any]]] = [
        (OrderOpened, order.opened()),
        (WorkOrderData, lifecycle(order, "new", "ev-1")),
        (WorkOrderData, lifecycle(order, "merged", "ev-1", merged_into="WO-H-1")),
        (WorkOrderData, lifecycle(order, "closed", "ev-1", closure="handled_on_site", reason="on the spot")),
    ]
    for model, data in made:
        sent = encode_event(type="t", source="s", subject="k", time=AT, data=data, id="i")
        assert orjson.loads(sent)["data"] == orjson.loads(model.model_validate(data).model_dump_json())


# ---- order_from_report ------------------------------------------------------------------------


def test_order_from_report(ref: Jurisdiction) -> None:
    order = order_from_report(make_report(address="菁华公寓3号楼"), "ev-2", AT, ref)
    assert order.work_order_id == "WO-G-GR-0001"
    assert order.source == "grid"
    assert order.category.code == "fire_hazard"
    assert order.confidence == 1.0
    assert order.place == JINGHUA
    assert order.location == {"street": "福莱山街道", "community": "夹河社区", "grid": "HB-FLS-JH-03"}
    assert order.closed_on_site is False


def test_report_category_by_name(ref: Jurisdiction) -> None:
    assert order_from_report(make_report(category="消防隐患"), "ev-2", AT, ref).category.code == "fire_hazard"


def test_compound_in_another_grid_is_not_taken(ref: Jurisdiction) -> None:
    order = order_from_report(make_report(address="海信慧园5号楼"), "ev-2", AT, ref)  # lies in JH-06
    assert order.place == Place("福莱山街道", "夹河社区", "HB-FLS-JH-03")


def test_handled_on_site_is_closed_on_site(ref: Jurisdiction) -> None:
    assert order_from_report(make_report(handled_on_site=True), "ev-2", AT, ref).closed_on_site is True


def test_report_danger_upgrades(ref: Jurisdiction) -> None:
    order = order_from_report(make_report(description="3号楼楼道冒烟了"), "ev-2", AT, ref)
    assert order.urgency == "emergency"


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"grid_id": "HB-FLS-JH-99"}, "data.grid_id"), ({"category": "weather"}, "data.category")],
)
def test_unknown_reference(ref: Jurisdiction, fields: dict[str, str], field: str) -> None:
    with pytest.raises(UnknownReference) as info:
        order_from_report(make_report(**fields), "ev-2", AT, ref)
    assert str(info.value).startswith(f"{field}: unknown")


# ---- the level intake announces agrees with the level dispatch starts at ----------------------


@pytest.mark.parametrize(
    ("content", "address"),
    [
        ("暖气不热", "菁华公寓3号楼"),  # community tier, placed
        ("暖气不热", None),  # community tier, unplaced
        ("物业不管，楼道灯坏了", "菁华公寓3号楼"),  # property tier with a property company
        ("物业不管，楼道灯坏了", "夹河新村2号楼"),  # property tier, compound without one
        ("顶楼加盖彩钢房", "菁华公寓3号楼"),  # street tier
        ("物业不管，楼道灯坏了", None),  # property tier, unplaced
    ],
)
def test_intake_level_matches_dispatch_initial_level(
    ref: Jurisdiction, content: str, address: str | None
) -> None:
    order = order_from_call(make_call(content=content, address=address), "ev-1", AT, ref)
    facts = OrderFacts(
        order.category.code, order.urgency, order.place.community, order.place.property_company
    )
    assert order.level == initial_level(facts, ref)


def test_the_cluster_window_counts_the_minutes_after_its_start_up_to_now() -> None:
    batch = IntakeBatch({}, set(), OpenOrders(), {}, {})
    nine = datetime(2026, 11, 21, 9, 0, tzinfo=timezone(timedelta(hours=8)))
    counts = [
        batch.count("夹河社区", "heating", nine + timedelta(minutes=m), window_minutes=60)
        for m in (-60, -30, 0, 0.99, 30, 59.5)
    ]
    # At 09:00 the window is (08:00, 09:00]: the report at 08:00 has left it; at 09:30, the one
    # at 08:30 has too; other categories and communities are counted apart.
    assert counts == [1, 2, 2, 3, 3, 4]
    assert batch.count("夹河社区", "water", nine, window_minutes=60) == 1


def test_a_repeat_joins_the_same_one_of_two_open_orders_received_at_the_same_moment(
    ref: Jurisdiction,
) -> None:
    """Ties in time are broken by id, so that the database's row order never picks the target."""
    call = make_call(content="菁华公寓3号楼暖气不热")
    order = order_from_call(call, "ev-9", AT + timedelta(minutes=5), ref)
    twins = [
        OpenOrder(f"WO-H-{n}", order.category.code, "夹河社区", "菁华公寓", "HB-FLS-JH-03", None, AT)
        for n in ("2", "1")
    ]
    for arrival in (twins, twins[::-1]):
        window = timedelta(hours=24)
        assert merge_target(order, OpenOrders(arrival).candidates(order), window) == "WO-H-1"


def test_an_order_resolved_in_the_batch_absorbs_no_later_repeat_until_it_is_reopened(
    ref: Jurisdiction,
) -> None:
    call = make_call(content="菁华公寓3号楼暖气不热")
    order = order_from_call(call, "ev-9", AT + timedelta(minutes=5), ref)
    earlier = OpenOrder("WO-H-1", order.category.code, "夹河社区", "菁华公寓", "HB-FLS-JH-03", None, AT)
    open_orders = OpenOrders([earlier])
    window = timedelta(hours=24)
    open_orders.follow("WO-H-1", is_open=False)
    assert merge_target(order, open_orders.candidates(order), window) is None
    open_orders.follow("WO-H-1", is_open=True)
    assert merge_target(order, open_orders.candidates(order), window) == "WO-H-1"


@pytest.mark.parametrize(
    ("closed_on_site", "target", "status"),
    [(False, "WO-H-1", "merged"), (False, None, "open"), (True, None, "done")],
)
def test_the_status_a_new_order_starts_in(
    ref: Jurisdiction, closed_on_site: bool, target: str | None, status: str
) -> None:
    order = order_from_report(make_report(handled_on_site=closed_on_site), "ev-2", AT, ref)
    assert order_status(order, target) == status


# ---- 工单预警: cluster alerts -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "address", "key"),
    [
        ("暖气不热", "菁华公寓3号楼", ("夹河社区", "heating")),
        ("暖气不热", None, None),  # unplaced
        ("今天天气不错", "菁华公寓3号楼", None),  # 其他 (other)
    ],
)
def test_other_and_unplaced_orders_are_in_no_cluster(
    ref: Jurisdiction, content: str, address: str | None, key: tuple[str, str] | None
) -> None:
    assert cluster_key(order_from_call(make_call(content=content, address=address), "ev-1", AT, ref)) == key


WINDOW = timedelta(minutes=60)


@pytest.mark.parametrize(
    ("count", "last", "step"),
    [
        (4, None, None),  # below the threshold
        (5, None, 5),  # the first alert, at the threshold
        (12, None, 10),  # no previous alert: the step reached
        (6, (5, AT - timedelta(minutes=10)), None),  # the same step again
        (10, (5, AT - timedelta(minutes=10)), 10),  # a doubling
        (19, (10, AT - timedelta(minutes=1)), None),
        (20, (10, AT - timedelta(minutes=1)), 20),
        (5, (5, AT - WINDOW), None),  # an alert at the window's start is of this cluster still
        (5, (10, AT - WINDOW - timedelta(seconds=1)), 5),  # that cluster is over: a new one
    ],
)
def test_cluster_alert(count: int, last: tuple[int, datetime] | None, step: int | None) -> None:
    assert cluster_alert(count, 5, last, AT, WINDOW) == step


def test_an_alert_lists_its_cluster_from_the_window_start_on_even_after_the_report() -> None:
    members = [(f"WO-H-{n}", AT + timedelta(minutes=m)) for n, m in enumerate((-60, -59, 0, 5))]
    assert alert_members(members, AT, WINDOW) == ["WO-H-1", "WO-H-2", "WO-H-3"]


# ---- 诉求类型 and 直接答复 -----------------------------------------------------------------------


def test_the_order_carries_its_request_type_on_every_event(ref: Jurisdiction) -> None:
    order = order_from_call(make_call(content="建议小区增设充电桩"), "ev-1", AT, ref)
    assert order.request_type == "suggestion"
    assert order.opened()["request_type"] == "suggestion"
    assert lifecycle(order, "new", "ev-1")["request_type"] == "suggestion"
    given = order_from_call(
        make_call(content="建议小区增设充电桩", request_type="complaint"), "ev-1", AT, ref
    )
    assert given.request_type == "complaint"


def test_a_grid_report_is_a_report_or_help(ref: Jurisdiction) -> None:
    assert order_from_report(make_report(), "ev-2", AT, ref).request_type == "report"  # fire hazard
    heating = make_report(category="heating", description="3号楼暖气管漏水")
    assert order_from_report(heating, "ev-2", AT, ref).request_type == "help"


def test_a_call_answered_directly_is_closed_as_made_and_absorbs_nothing(ref: Jurisdiction) -> None:
    call = make_call(
        content="请问居住证怎么办理",
        answered_directly=True,
        answer="带身份证和租房合同到社区服务中心办理，咨询电话13812345678",
    )
    order = order_from_call(call, "ev-1", AT, ref)
    assert order.answer == "带身份证和租房合同到社区服务中心办理，咨询电话138****5678"
    assert order.opened()["answer"] == order.answer
    assert not order.is_open and order_status(order, None) == "done"
    earlier = OpenOrder("WO-H-0", order.category.code, None, None, None, None, AT - timedelta(minutes=5))
    assert merge_target(order, [earlier], timedelta(days=1)) is None
    # An answer without answered_directly is not one: the order is worked on as any other.
    plain = order_from_call(make_call(answer="稍后回复"), "ev-1", AT, ref)
    assert plain.answer is None and plain.is_open
