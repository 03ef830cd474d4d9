"""The api's rules. Its read model: each projection idempotent and tolerant of the order its events
arrive in across topics; statuses only move forward; the dispatches' times and the order's rating
for the rates; what Open311 calls open and closed. Its HTTP side: which department step the read
model allows (dispatch's transitions), who may do and see what, which order may be reassigned,
which dead letter refuses what the api sent, and the three rates' arithmetic."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.api.access import (
    MAY,
    STEPS,
    STEPS_FROM,
    may,
    may_see_dispatch,
    reassign_refusal,
    refused_event,
    step_refusal,
    steps_from,
)
from services.api.domain import (
    STATUS_MOVES,
    OrderView,
    decision_row,
    merge_return,
    newer_notification,
    notification_row,
    open311_status,
    return_refusal,
    return_row,
    timeline_entry,
)
from services.api.rates import RateCounts, rate_counts, ratio
from services.api.unit import NO_ORDER, ApiBatch
from services.dispatch.dispatches import TRANSITIONS
from shared import contract
from shared.contract import (
    DeadLetter,
    DeadlineMoved,
    DispatchAssigned,
    DispatchCancelled,
    DispatchReminder,
    NotificationRecord,
    WorkOrderData,
    WorkOrderReassigned,
)

T0 = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
ORDER = "WO-H-1"
NAMES = {"heat": "热力公司", "street_desk": "街道综治中心", "zhujian": "住建局"}
Step = Callable[[OrderView], None]


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def data(status: str, **fields: Any) -> WorkOrderData:
    base = {
        "work_order_id": ORDER,
        "status": status,
        "level": "community",
        "category": "heating",
        "category_name": "供暖",
        "street": "福莱山街道",
        "community": "夹河社区",
        "grid": None,
        "source": "hotline",
        "caused_by": "cause",
    }
    return WorkOrderData.model_validate(base | fields)


def entry(dispatch_id: str, department: str, role: str = "lead", minutes: float = 0) -> dict[str, Any]:
    return {
        "dispatch_id": dispatch_id,
        "department": department,
        "role": role,
        "accept_by": at(minutes + 60).isoformat(),
        "resolve_by": at(minutes + 600).isoformat(),
    }


def life(kind: str, minutes: float, status: str, **fields: Any) -> Step:
    return lambda o: o.lifecycle(f"workorder.{kind}", data(status, **fields), at(minutes), NAMES)


def reassigned(minutes: float, note: str, **fields: Any) -> Step:
    """改派 by the centre: the order's fields as they are after it, who and why."""
    e = WorkOrderReassigned.model_validate(
        data("dispatched", **fields).model_dump() | {"operator": "desk-07", "note": note}
    )
    return lambda o: o.lifecycle("workorder.reassigned", e, at(minutes), NAMES)


def assigned(dispatch_id: str, department: str, minutes: float, role: str = "lead", **extra: Any) -> Step:
    a = DispatchAssigned.model_validate(
        {
            "dispatch_id": dispatch_id,
            "work_order_id": ORDER,
            "department": department,
            "role": role,
            "level": "community",
            "category": "heating",
            "category_name": "供暖",
            "summary": "菁华公寓3号楼暖气不热，电话138****5678",
            "address": "菁华公寓",
            "location": {"lat": 37.5, "lon": 121.4},
            "urgency": "normal",
            "accept_by": at(minutes + 60),
            "resolve_by": at(minutes + 600),
            "contact": {"name": "孙**", "phone": "138****5678"},
            "attempt": 1,
        }
        | extra
    )
    return lambda o: o.assigned(a, at(minutes))


def cancelled(dispatch_id: str, department: str, minutes: float) -> Step:
    c = DispatchCancelled(dispatch_id=dispatch_id, work_order_id=ORDER, department=department, reason="x")
    return lambda o: o.cancelled(c, at(minutes))


def reminder(dispatch_id: str, department: str, overdue: bool = True) -> Step:
    r = DispatchReminder(
        dispatch_id=dispatch_id,
        work_order_id=ORDER,
        department=department,
        deadline="accept",
        due=at(60),
        overdue=overdue,
    )
    return lambda o: o.reminded(r)


def moved(dispatch_id: str, minutes: float, resolve_by: datetime) -> Step:
    m = DeadlineMoved(work_order_id=ORDER, dispatch_id=dispatch_id, resolve_by=resolve_by)
    return lambda o: o.deadline_moved(m, at(minutes))


def run(*steps: Step) -> OrderView:
    order = OrderView(ORDER)
    for step in steps:
        step(order)
    return order


def state(o: OrderView) -> dict[str, Any]:
    """What a view answers for, its dispatches included (not what is waiting to be written)."""
    fields = {k: getattr(o, k) for k in OrderView.__dataclass_fields__ if k not in ("dispatches", "changed")}
    return fields | {
        "dispatches": {
            k: (d.status, d.overdue, d.resolve_by, d.assigned_at, d.accepted_at, d.resolved_at)
            for k, d in o.dispatches.items()
        }
    }


# ---- one order's life, as its events come ----------------------------------------------------

# The lifecycle topic keeps one order's events in order; each department's topic too; between the
# topics anything goes. Every interleaving ends in the same view.
LIFECYCLE = [
    life("created", 0, "new"),
    life("dispatched", 0, "dispatched", dispatches=[entry("D1", "heat")]),
    life("accepted", 5, "accepted", department="heat", dispatch_id="D1"),
    life("resolved", 30, "resolved", department="heat", result="已更换阀门"),
    life("closed", 40, "closed", caused_by="feedback-1"),
]
HEAT_TOPIC = [assigned("D1", "heat", 0), reminder("D1", "heat", overdue=False)]


ESCALATED = [
    life("created", 0, "new"),
    life("dispatched", 0, "dispatched", dispatches=[entry("D1", "heat")]),
    life("escalated", 60, "dispatched", from_level="community", to_level="street", reason="accept overdue"),
    life("dispatched", 60, "dispatched", level="street", dispatches=[entry("D2", "street_desk", minutes=60)]),
    life("accepted", 70, "accepted", level="street", department="street_desk", dispatch_id="D2"),
]
ESCALATED_HEAT = [assigned("D1", "heat", 0), reminder("D1", "heat"), cancelled("D1", "heat", 60)]
ESCALATED_STREET = [assigned("D2", "street_desk", 60), reminder("D2", "street_desk", overdue=False)]


def interleavings(*topics: list[Step]) -> list[list[Step]]:
    """Every order of the topics' events that keeps each topic's own order."""
    if sum(map(len, topics)) == 0:
        return [[]]
    found = []
    for i, topic in enumerate(topics):
        if topic:
            rest = [*topics[:i], topic[1:], *topics[i + 1 :]]
            found += [[topic[0], *tail] for tail in interleavings(*rest)]
    return found


def test_every_interleaving_of_two_topics_gives_the_same_order() -> None:
    views = [state(run(*steps)) for steps in interleavings(LIFECYCLE, HEAT_TOPIC)]
    assert len(views) == 21 and all(v == views[0] for v in views)
    final = views[0]
    assert final["status"] == "closed" and final["dispatches"]["D1"][0] == "resolved"
    assert final["lead_department"] == "heat" and final["resolve_by"] == at(600)
    assert final["requested_at"] == at(0) and final["updated_at"] == at(40)
    assert final["summary"] == "菁华公寓3号楼暖气不热，电话138****5678"
    assert (final["lat"], final["lon"]) == (37.5, 121.4)
    # the times the rates count: assigned, signed for, resolved; the resident's answer
    assert final["dispatches"]["D1"][3:] == (at(0), at(5), at(30))
    assert (final["rated_by"], final["rated_at"]) == ("feedback-1", at(40))


def test_every_interleaving_of_an_escalation_on_three_topics_gives_the_same_order() -> None:
    views = [state(run(*s)) for s in interleavings(ESCALATED, ESCALATED_HEAT, ESCALATED_STREET)]
    assert len(views) == 2520 and all(v == views[0] for v in views)
    final = views[0]
    assert final["status"] == "accepted" and final["level"] == "street"
    assert final["lead_department"] == "street_desk" and final["resolve_by"] == at(660)
    assert final["overdue"] is False  # the overdue dispatch was cancelled by the escalation
    assert {k: d[0] for k, d in final["dispatches"].items()} == {"D1": "cancelled", "D2": "accepted"}
    assert final["status_notes"] == "accepted by 街道综治中心"
    assert {k: d[3:5] for k, d in final["dispatches"].items()} == {
        "D1": (at(0), None),
        "D2": (at(60), at(70)),
    }


def test_each_event_applied_twice_changes_nothing_more() -> None:
    once = run(*LIFECYCLE, *HEAT_TOPIC)
    twice = run(*(s for step in [*LIFECYCLE, *HEAT_TOPIC] for s in (step, step)))
    assert state(once) == state(twice)


# ---- statuses only move forward --------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "status"),
    [
        # intake's created landing after dispatch's first event (two producers) moves nothing back
        (
            [
                life("dispatched", 1, "dispatched", dispatches=[entry("D1", "heat")]),
                life("created", 0, "new"),
            ],
            "dispatched",
        ),
        (
            [life("accepted", 5, "accepted", dispatch_id="D1"), life("dispatched", 1, "dispatched")],
            "dispatched",
        ),
        ([life("resolved", 9, "resolved"), life("accepted", 5, "accepted")], "resolved"),
        ([life("closed", 9, "closed"), life("reopened", 10, "dispatched")], "closed"),  # closed is final
        ([life("merged", 0, "merged", merged_into="WO-H-0"), life("dispatched", 1, "dispatched")], "merged"),
        # the moves dispatch does make that look backwards
        ([life("resolved", 9, "resolved"), life("reopened", 10, "dispatched")], "dispatched"),
        (
            [
                life("accepted", 5, "accepted"),
                life("escalated", 6, "accepted"),
                life("dispatched", 6, "dispatched"),
            ],
            "dispatched",
        ),
        ([life("created", 0, "new"), life("closed", 0, "closed")], "closed"),  # on the spot
    ],
)
def test_an_orders_status_moves_only_along_dispatchs_transitions(steps: list[Step], status: str) -> None:
    assert run(*steps).status == status


def test_every_status_is_in_the_moves_table_and_closed_ones_are_final() -> None:
    statuses = {"new", "dispatched", "accepted", "resolved", "closed", "merged"}
    assert set(STATUS_MOVES) == statuses and all(moves <= statuses for moves in STATUS_MOVES.values())
    assert STATUS_MOVES["closed"] == STATUS_MOVES["merged"] == frozenset()


@pytest.mark.parametrize(
    ("steps", "status"),
    [
        ([cancelled("D1", "heat", 5), assigned("D1", "heat", 0)], "cancelled"),
        (
            [life("accepted", 5, "accepted", dispatch_id="D1", department="heat"), assigned("D1", "heat", 0)],
            "accepted",
        ),
        ([cancelled("D1", "heat", 5), life("accepted", 5, "accepted", dispatch_id="D1")], "cancelled"),
        ([assigned("D1", "heat", 0), life("closed", 9, "closed")], "ended"),  # how: not said (yet)
        ([assigned("D1", "heat", 0), life("closed", 9, "closed"), cancelled("D1", "heat", 9)], "cancelled"),
        ([cancelled("D1", "heat", 9), life("closed", 9, "closed")], "cancelled"),
        ([assigned("D1", "heat", 0), life("accepted", 5, "accepted", dispatch_id="D1")], "accepted"),
    ],
)
def test_a_dispatchs_status_only_moves_forward(steps: list[Step], status: str) -> None:
    assert run(*steps).dispatches["D1"].status == status


def test_a_stale_event_still_fills_what_is_missing_and_counts_for_the_times() -> None:
    o = run(life("closed", 9, "closed", category="heating"), life("created", 0, "new", street="福莱山街道"))
    assert o.status == "closed" and o.street == "福莱山街道"
    assert (o.requested_at, o.updated_at) == (at(0), at(9))


# ---- the lead, its deadline, overdue ---------------------------------------------------------


def test_a_new_round_makes_its_lead_the_orders_and_ends_the_one_it_replaces() -> None:
    o = run(
        life(
            "dispatched", 0, "dispatched", dispatches=[entry("D1", "heat"), entry("D2", "zhujian", "assist")]
        ),
        # the lead returned it (退单): nothing on our topics says so but the next round
        life("dispatched", 20, "dispatched", dispatches=[entry("D3", "street_desk", minutes=20)]),
    )
    assert o.lead_department == "street_desk" and o.resolve_by == at(620)
    assert {k: d.status for k, d in o.dispatches.items()} == {
        "D1": "ended",
        "D2": "assigned",
        "D3": "assigned",
    }
    assert o.status_notes == "dispatched to 街道综治中心"
    cancelled("D1", "heat", 20)(o)  # had it been cancelled, its department's topic says so later
    assert o.dispatches["D1"].status == "cancelled"


def test_a_department_topics_assignment_never_makes_a_lead_only_the_lifecycle_does() -> None:
    # Round 2's assignment, on another department's topic, may come before round 1's announcement.
    o = run(
        assigned("D2", "zhujian", 20),
        life("dispatched", 0, "dispatched", dispatches=[entry("D1", "heat")]),
    )
    assert o.lead_department == "heat" and o.dispatches["D2"].status == "assigned"
    o2 = run(
        assigned("D2", "zhujian", 20),
        life("dispatched", 0, "dispatched", dispatches=[entry("D1", "heat")]),
        life("dispatched", 20, "dispatched", dispatches=[entry("D2", "zhujian", minutes=20)]),
    )
    assert o2.lead_department == "zhujian" and o2.dispatches["D2"].status == "assigned"


def test_resolution_resolves_the_lead_and_closing_ends_what_dispatch_left_open() -> None:
    o = run(
        life(
            "dispatched", 0, "dispatched", dispatches=[entry("D1", "heat"), entry("D2", "zhujian", "assist")]
        ),
        life("resolved", 30, "resolved", department="heat", result="已修好"),
        life("closed", 40, "closed"),
    )
    # the assist finished its part (its result, or a return, is not on the topics the api reads)
    assert {k: d.status for k, d in o.dispatches.items()} == {"D1": "resolved", "D2": "ended"}
    assert o.status_notes == "closed; resolved by 热力公司: 已修好"


@pytest.mark.parametrize(
    ("steps", "overdue"),
    [
        ([assigned("D1", "heat", 0), reminder("D1", "heat")], True),
        ([reminder("D1", "heat"), assigned("D1", "heat", 0)], True),
        ([assigned("D1", "heat", 0), reminder("D1", "heat", overdue=False)], False),
        ([reminder("D1", "heat"), cancelled("D1", "heat", 9)], False),  # cleared when it ends
        ([cancelled("D1", "heat", 9), reminder("D1", "heat")], False),  # a late reminder: nothing
        (
            [
                life("dispatched", 0, "dispatched", dispatches=[entry("D1", "heat")]),
                reminder("D1", "heat"),
                life("resolved", 9, "resolved", department="heat", result="好了"),
            ],
            False,
        ),
    ],
)
def test_overdue_from_reminders_until_the_dispatch_ends(steps: list[Step], overdue: bool) -> None:
    o = run(*steps)
    assert o.overdue is overdue and o.dispatches["D1"].overdue is overdue


@pytest.mark.parametrize("moved_first", [True, False])
def test_an_extension_moves_the_expected_date_whichever_comes_first(moved_first: bool) -> None:
    announce = life("dispatched", 0, "dispatched", dispatches=[entry("D1", "heat")])
    extend = moved("D1", 10, at(900))
    o = run(extend, announce) if moved_first else run(announce, extend)
    assert o.resolve_by == at(900) and o.updated_at == at(10)


def test_a_reminder_is_not_a_change_of_the_request() -> None:
    o = run(life("dispatched", 0, "dispatched", dispatches=[entry("D1", "heat")]), reminder("D1", "heat"))
    assert o.updated_at == at(0)


# ---- notes, the timeline, Open311's status ----------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "notes"),
    [
        ([life("merged", 0, "merged", merged_into="WO-H-0")], "merged into WO-H-0"),
        (
            [
                life(
                    "escalated",
                    5,
                    "dispatched",
                    from_level="community",
                    to_level="street",
                    reason="accept overdue",
                )
            ],
            "escalated to street: accept overdue",
        ),
        (
            [life("resolved", 5, "resolved", department="heat", result="已联系13812345678处理")],
            "resolved by 热力公司: 已联系138****5678处理",
        ),
        (
            [life("reopened", 5, "dispatched", reason="resident: dissatisfied")],
            "reopened (resident: dissatisfied)",
        ),
        (
            [life("created", 0, "new", source="grid"), life("closed", 0, "closed")],
            "closed: handled on the spot",
        ),
        (  # an assisting department signing for its part says nothing of the order
            [
                life(
                    "dispatched",
                    0,
                    "dispatched",
                    dispatches=[entry("D1", "heat"), entry("D2", "zhujian", "assist")],
                ),
                life("accepted", 5, "dispatched", department="zhujian", dispatch_id="D2"),
            ],
            "dispatched to 热力公司",
        ),
    ],
)
def test_status_notes_say_the_last_reason_or_result(steps: list[Step], notes: str) -> None:
    assert run(*steps).status_notes == notes


def test_a_reassignment_retags_replaces_and_reroutes_the_order() -> None:
    o = run(
        life("dispatched", 0, "dispatched", level="street", dispatches=[entry("D1", "street_desk")]),
        life("accepted", 5, "accepted", level="street", department="street_desk", dispatch_id="D1"),
        reassigned(
            10,
            "回电13812345678确认是暖气",
            category="heating",
            category_name="供暖",
            community="夹河社区",
            level="community",
            from_level="street",
            to_level="community",
        ),
        life("dispatched", 10, "dispatched", dispatches=[entry("D2", "heat", minutes=10)]),
    )
    assert (o.status, o.level, o.category, o.community) == ("dispatched", "community", "heating", "夹河社区")
    assert o.lead_department == "heat" and o.dispatches["D1"].status == "ended"  # its cancel yet to come
    assert o.status_notes == "dispatched to 热力公司"
    assert run(reassigned(10, "改派给热力 13812345678")).status_notes == "reassigned: 改派给热力 138****5678"
    e = WorkOrderReassigned.model_validate(
        data("dispatched").model_dump() | {"operator": "desk-07", "note": "改派"}
    )
    assert timeline_entry("workorder.reassigned", e, "ev", at(0))["detail"] == {
        "operator": "desk-07",
        "note": "改派",
    }


def test_an_escalation_takes_the_order_to_its_new_level() -> None:
    o = run(life("escalated", 5, "dispatched", from_level="community", to_level="street", reason="r"))
    assert o.level == "street"


def test_the_timeline_keeps_the_notable_fields_masked_and_nothing_empty() -> None:
    e = data("resolved", department="heat", result="电话13812345678", dispatch_id=None)
    row = timeline_entry("workorder.resolved", e, "ev-1", at(3))
    assert row == {
        "event_id": "ev-1",
        "work_order_id": ORDER,
        "type": "workorder.resolved",
        "status": "resolved",
        "level": "community",
        "at": at(3),
        "caused_by": "cause",
        "detail": {"department": "heat", "result": "电话138****5678"},
    }
    dispatched = data("dispatched", dispatches=[entry("D1", "heat")])
    detail = timeline_entry("workorder.dispatched", dispatched, "ev-2", at(0))["detail"]
    assert detail == {"dispatches": [{"dispatch_id": "D1", "department": "heat", "role": "lead"}]}
    assert timeline_entry("workorder.created", data("new"), "ev-3", at(0))["detail"] is None


@pytest.mark.parametrize(
    ("status", "open311"),
    [
        ("new", "open"),
        ("dispatched", "open"),
        ("accepted", "open"),
        ("resolved", "open"),  # until the resident has said it is fixed
        ("closed", "closed"),
        ("merged", "closed"),  # it lives on in the order it joined
    ],
)
def test_open311_status(status: str, open311: str) -> None:
    assert open311_status(status) == open311


# ---- notifications: the newest event of each wins ---------------------------------------------

Notified = tuple[str, float, int]  # type (sent, failed), minutes, attempts


def notified(kind: str, minutes: float, attempts: int, error: str | None = None) -> dict[str, Any]:
    n = NotificationRecord(
        notification_id="N-1",
        work_order_id=ORDER,
        audience="department",
        channel="webhook",
        template="new_work@v1",
        attempts=attempts,
        error=error,
    )
    return notification_row(f"notification.{kind}", n, at(minutes))


@pytest.mark.parametrize(
    ("events", "kept"),
    [
        ([("sent", 0, 1)], ("sent", 0, 1)),
        ([("sent", 0, 1), ("sent", 0, 1)], ("sent", 0, 1)),  # repeated: a replay
        ([("sent", 0, 1), ("failed", 10, 2)], ("failed", 10, 2)),  # sent then failed: the later wins
        ([("failed", 10, 2), ("sent", 0, 1)], ("failed", 10, 2)),  # the same, out of order
        ([("failed", 0, 3), ("sent", 5, 1)], ("sent", 5, 1)),
        ([("failed", 0, 1), ("sent", 0, 2)], ("sent", 0, 2)),  # one time (the cause's): more tries
        ([("sent", 0, 2), ("failed", 0, 2)], ("sent", 0, 2)),  # and a send, being final
        ([("failed", 0, 2), ("sent", 0, 2), ("failed", 0, 2)], ("sent", 0, 2)),
    ],
)
def test_a_notification_is_kept_as_its_newest_event_has_it(events: list[Notified], kept: Notified) -> None:
    rows = [notified(*e) for e in events]
    # In any order, and folded as a batch does it: what the upsert's WHERE asks of the database.
    for order in (rows, rows[::-1]):
        current: dict[str, Any] | None = None
        for row in order:
            current = row if newer_notification(row, current) else current
        batch = ApiBatch({})
        for row in order:
            batch.notified(row)
        assert current is not None and batch.notifications == {"N-1": current}
        assert (current["type"], current["at"], current["attempts"]) == (kept[0], at(kept[1]), kept[2])


def test_a_notification_keeps_no_number_and_makes_no_order() -> None:
    row = notified("failed", 0, 3, error="gateway: 13812345678 unreachable")
    assert row["error"] == "gateway: 138****5678 unreachable" and row["type"] == "failed"
    assert notified("sent", 0, 1)["error"] is None
    # cluster alerts' are ``cluster:<community>:<category>``: the batch opens no order for any
    assert contract.NOTIFICATIONS in NO_ORDER


# ---- the rating the rates count ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "rated_by"),
    [
        (  # satisfied: closed from resolved, by the resident's answer (the lifecycle event's cause)
            [life("resolved", 9, "resolved"), life("closed", 10, "closed", caused_by="fb-1")],
            "fb-1",
        ),
        ([life("resolved", 9, "resolved"), life("reopened", 10, "dispatched", caused_by="fb-2")], "fb-2"),
        (  # the answer of the last round counts
            [
                life("resolved", 9, "resolved"),
                life("reopened", 10, "dispatched", caused_by="fb-2"),
                life("resolved", 20, "resolved"),
                life("closed", 30, "closed", caused_by="fb-3"),
            ],
            "fb-3",
        ),
        ([life("created", 0, "new"), life("closed", 0, "closed", caused_by="grid-1")], None),  # on the spot
        ([life("merged", 0, "merged", merged_into="WO-H-0", caused_by="call-1")], None),
    ],
)
def test_an_order_is_rated_by_the_answer_that_closed_or_reopened_it(
    steps: list[Step], rated_by: str | None
) -> None:
    assert run(*steps).rated_by == rated_by


# ---- what the department API allows ------------------------------------------------------------


def test_the_steps_mirror_dispatchs_transitions() -> None:
    """What the read model allows is what dispatch would apply: refused here, refused there."""
    for status in ("assigned", "accepted"):
        applies = {step for step, kind in STEPS.items() if (status, kind) in TRANSITIONS}
        assert STEPS_FROM[status] == applies, status
    # A return under review takes the centre's decision only, never a department's step.
    answered = {status for status, kind in TRANSITIONS if kind.startswith("dispatch.")}
    assert answered == {"assigned", "accepted"}
    assert STEPS_FROM["ended"] == STEPS_FROM["resolved"] == STEPS_FROM["cancelled"] == frozenset()


@pytest.mark.parametrize(
    ("status", "step", "refusal"),
    [
        ("assigned", "accept", None),
        ("assigned", "reject", None),
        ("assigned", "resolve", "status: cannot apply resolve to a dispatch that is assigned"),
        ("assigned", "progress", "status: cannot apply progress to a dispatch that is assigned"),
        ("assigned", "extend", "status: cannot apply extend to a dispatch that is assigned"),
        ("accepted", "accept", "status: cannot apply accept to a dispatch that is accepted"),
        ("accepted", "reject", None),
        ("accepted", "progress", None),
        ("accepted", "extend", None),
        ("accepted", "resolve", None),
        ("resolved", "accept", "status: cannot apply accept to a dispatch that is resolved"),
        ("cancelled", "resolve", "status: cannot apply resolve to a dispatch that is cancelled"),
        ("ended", "progress", "status: cannot apply progress to a dispatch that is ended"),
    ],
)
def test_a_step_the_read_model_knows_cannot_apply_is_refused(
    status: str, step: str, refusal: str | None
) -> None:
    assert step_refusal(status, step) == refusal


def test_the_steps_a_department_may_take_now() -> None:
    assert steps_from("assigned") == ["accept", "reject"]
    assert steps_from("accepted") == ["reject", "progress", "extend", "resolve"]
    assert steps_from("cancelled") == [] == steps_from("unknown")


@pytest.mark.parametrize(
    ("status", "open"),
    [
        ("new", True),  # dispatch dispatches as it opens: the read model is behind
        ("dispatched", True),
        ("accepted", True),
        ("resolved", False),
        ("closed", False),
        ("merged", False),
    ],
)
def test_only_an_open_order_is_reassigned(status: str, open: bool) -> None:
    assert (reassign_refusal(status) is None) is open
    if not open:
        assert reassign_refusal(status) == f"status: the order is {status}, not open"


# ---- who may do and see what -------------------------------------------------------------------

ACTIONS = ("post requests", "answer dispatches", "use the centre's desk", "read the monthly report")


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        ("channel", {"post requests"}),
        ("centre", {"use the centre's desk", "read the monthly report"}),
        ("department:heat", {"answer dispatches"}),
        ("department:water", {"answer dispatches"}),
        ("mayor", set()),
    ],
)
def test_each_role_may_do_its_own(role: str, allowed: set[str]) -> None:
    assert {a for a in ACTIONS if may(role, a)} == allowed
    assert set().union(*MAY.values()) == set(ACTIONS)


@pytest.mark.parametrize(
    ("role", "department", "sees"),
    [
        ("department:heat", "heat", True),
        ("department:heat", "water", False),
        ("department:heat", "heat_x", False),
        ("department:heat", None, False),
        ("centre", "heat", False),  # the desk reads orders, not the department API
        ("channel", "heat", False),
    ],
)
def test_a_department_sees_only_its_own_dispatches(role: str, department: str | None, sees: bool) -> None:
    assert may_see_dispatch(role, department) is sees


# ---- refusals of what the api sent -------------------------------------------------------------


def letter(topic: str, raw: str, encoding: str = "utf-8") -> DeadLetter:
    return DeadLetter(
        original_topic=topic,
        original_partition=0,
        original_offset=1,
        original_key="WO-1",
        error="cannot apply resolve to a dispatch that is cancelled",
        raw=raw,
        raw_encoding=encoding,
    )


@pytest.mark.parametrize(
    ("dead", "refused"),
    [
        (letter("dispatch.responses.v1", '{"id": "ev-1", "type": "dispatch.resolved"}'), "ev-1"),
        (letter("internal.dispatch.commands.v1", '{"id": "ev-2"}'), "ev-2"),
        (letter("feedback.v1", '{"id": "ev-3"}'), None),  # not something the api sends
        (letter("dispatch.responses.v1", "not json"), None),
        (letter("dispatch.responses.v1", "eyJpZCI6ICJldi0xIn0=", "base64"), None),
        (letter("dispatch.responses.v1", '["ev-1"]'), None),
        (letter("dispatch.responses.v1", '{"id": 7}'), None),
    ],
)
def test_a_dead_letter_names_the_event_it_refuses(dead: DeadLetter, refused: str | None) -> None:
    assert refused_event(dead) == refused


# ---- the three rates' arithmetic ---------------------------------------------------------------


def test_the_rates_are_counts_over_counts_and_none_where_nothing_counts() -> None:
    counts = rate_counts(
        [("heat", 4, 3, 2, 1), ("water", 2, 2, 0, 0)],
        [("heat", 3, 2), ("zhujian", 1, 0)],  # rated, with no dispatch in the window
    )
    assert list(counts) == ["heat", "water", "zhujian"]
    assert counts["heat"] == RateCounts(4, 3, 2, 1, 3, 2)
    assert counts["heat"].rates() == (0.75, 0.5, 0.6667)
    assert counts["water"].rates() == (1.0, None, None)
    assert counts["zhujian"].rates() == (None, None, 0.0)
    assert ratio(0, 0) is None and ratio(1, 3) == 0.3333


# ---- the review queue (派单异议审核) --------------------------------------------------------------


def review(kind: str, minutes: float, **fields: Any) -> dict[str, Any]:
    e = data("dispatched", dispatch_id="WO-H-1-D1", department="heat", **fields)
    row = return_row(f"workorder.return_{kind}", e, at(minutes))
    assert row is not None
    return row


REQUESTED = {"return_reason": "other", "note": "call 13812345678", "review_by": at(120)}


def test_a_return_requested_is_pending_with_its_note_masked() -> None:
    row = review("requested", 0, **REQUESTED)
    assert (row["status"], row["reason"], row["review_by"], row["decided_at"]) == (
        "pending",
        "other",
        at(120),
        None,
    )
    assert "13812345678" not in row["note"]
    assert return_row("workorder.accepted", data("accepted", dispatch_id="D"), at(0)) is None


@pytest.mark.parametrize(
    ("rows", "status", "decided_at"),
    [
        (["requested"], "pending", None),
        (["requested", "approved"], "approved", 5),
        (["requested", "refused"], "refused", 5),
        (["requested", "cancelled"], "cancelled", 9),
        (["requested", "approved", "requested"], "approved", 5),  # a replayed request: decided stays
        (["requested", "refused", "cancelled"], "refused", 5),  # refused, then the order moved on
        (["approved", "requested"], "approved", 5),  # a decision before its request (another batch)
        (["approved"], "approved", 5),
    ],
)
def test_a_batch_keeps_one_row_per_return_and_a_decision_once(
    rows: list[str], status: str, decided_at: float | None
) -> None:
    merged: dict[str, dict[str, Any]] = {}
    for kind in rows:
        if kind == "requested":
            row = review("requested", 0, **REQUESTED)
        elif kind == "cancelled":
            row = decision_row("WO-H-1-D1", "cancelled", at(9))
        else:
            row = review(kind, 5, operator="centre", note="ok", automatic=False)
        merge_return(merged, row)
    [row] = merged.values()
    assert (row["status"], row["decided_at"]) == (status, at(decided_at) if decided_at is not None else None)


@pytest.mark.parametrize(
    ("status", "refusal"),
    [
        ("pending", None),
        ("approved", "status: the return is approved, no longer pending"),
        ("refused", "status: the return is refused, no longer pending"),
        ("cancelled", "status: the return is cancelled, no longer pending"),
    ],
)
def test_only_a_pending_return_is_decided(status: str, refusal: str | None) -> None:
    assert return_refusal(status) == refusal


def dispatched_to_heat(minutes: float = 0) -> Step:
    return life("dispatched", minutes, "dispatched", dispatches=[entry("D1", "heat")])


RETURNED = {"dispatch_id": "D1", "department": "heat", "return_reason": "other", "review_by": at(120)}


@pytest.mark.parametrize(
    ("steps", "status", "accept_by", "notes"),
    [
        (
            [life("return_requested", 5, "dispatched", **RETURNED)],
            "returned",
            at(60),
            "waiting for the centre",
        ),
        (
            [
                life("return_requested", 5, "dispatched", **RETURNED),
                life(
                    "return_refused",
                    9,
                    "dispatched",
                    **RETURNED,
                    note="yours",
                    accept_by=at(70),
                    resolve_by=at(400),
                ),
            ],
            "assigned",
            at(70),
            "return by 热力公司 refused: yours",
        ),
        (
            [
                life("return_requested", 5, "dispatched", **RETURNED),
                life("return_approved", 9, "dispatched", **RETURNED, automatic=True),
            ],
            "ended",
            at(60),
            "return by 热力公司 approved (not reviewed in time)",
        ),
        # Cancelled (the order moved on) while under review; a refusal after it changes nothing.
        (
            [
                life("return_requested", 5, "dispatched", **RETURNED),
                cancelled("D1", "heat", 6),
                life("return_refused", 9, "dispatched", **RETURNED, note="yours", accept_by=at(70)),
            ],
            "cancelled",
            at(60),
            "return by 热力公司 refused: yours",
        ),
    ],
)
def test_a_return_under_review_in_the_read_model(
    steps: list[Step], status: str, accept_by: datetime, notes: str
) -> None:
    order = run(dispatched_to_heat(), *steps)
    d = order.dispatches["D1"]
    assert (d.status, d.accept_by) == (status, accept_by)
    assert notes in (order.status_notes or "")
    assert steps_from(d.status) == ([] if status != "assigned" else ["accept", "reject"])
