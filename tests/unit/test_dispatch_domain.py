"""The order aggregate: every status transition, allowed and refused, and each rule about an order
(return once, half time when reopened, assist versus lead, the second dissatisfaction, clusters),
run without a database or a broker."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from services.dispatch.dispatches import InvalidTransition, Refusal, Response
from services.dispatch.domain import (
    ORDER_STATUSES,
    ORDER_TRANSITIONS,
    Order,
    next_status,
)
from services.dispatch.routing import Policy
from shared.contract import OrderOpened, ReassignRequested, WorkOrderData, WorkOrderReassigned
from shared.reference import Jurisdiction
from shared.settings import Settings

AT = datetime(2026, 11, 23, 8, 15, tzinfo=timezone(timedelta(hours=8)))  # a Monday
LATER = AT + timedelta(hours=1)
COMMANDS = sorted({what for _, what in ORDER_TRANSITIONS})


@pytest.fixture(scope="module")
def policy(ref: Jurisdiction) -> Policy:
    return Policy.of(ref, Settings())


def opened(category: str = "heating", community: str | None = "夹河社区", **extra: Any) -> OrderOpened:
    return OrderOpened.model_validate(
        {
            "work_order_id": "WO-H-1",
            "source": "hotline",
            "category": category,
            "category_name": category,
            "summary": "暖气不热",
            "address": None,
            "location": None,
            "street": "福新街道" if community else None,
            "community": community,
            "grid": None,
            "property_company": None,
            "urgency": "normal",
            "contact": None,
        }
        | extra
    )


def new_order(policy: Policy, category: str = "heating", clustered: bool = False) -> Order:
    return Order.opened(opened(category), clustered, policy, "ev-open", AT)


def answer(
    order: Order, type: str, department: str | None = None, dispatch_id: str | None = None
) -> Response:
    """A response to the order's dispatch of that department (its latest), or of its lead."""
    dispatch = next(
        d
        for d in reversed(order.dispatches)
        if (d.department == department if department else d.role == "lead")
        and (dispatch_id is None or d.id == dispatch_id)
    )
    return Response(type, dispatch.id, order.id, dispatch.department)


def step(order: Order, cause: str, at: datetime = LATER) -> Order:
    """The next command: what the last one left behind is gone (saved and staged by the handler)."""
    order.events.clear()
    order.history.clear()
    for d in order.dispatches:
        d.new = d.changed = False
    return order.begin(cause, at)


def types(order: Order) -> list[str]:
    return [e.type for e in order.events]


# ---- the status table ------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "what"), sorted(ORDER_TRANSITIONS))
def test_every_allowed_transition(status: str, what: str) -> None:
    assert next_status(status, what) == ORDER_TRANSITIONS[(status, what)]


@pytest.mark.parametrize(
    ("status", "what"),
    [(s, w) for s in ORDER_STATUSES for w in COMMANDS if (s, w) not in ORDER_TRANSITIONS],
)
def test_every_other_transition_is_refused(status: str, what: str) -> None:
    with pytest.raises(InvalidTransition, match=f"cannot {what} a work order that is {status}"):
        next_status(status, what)


# ---- a new order -----------------------------------------------------------------------------


def test_a_new_order_goes_to_the_duty_lists_lead_with_deadlines(policy: Policy) -> None:
    order = new_order(policy)
    assert (order.status, order.level) == ("dispatched", "community")
    [dispatch] = order.dispatches
    assert (dispatch.id, dispatch.department, dispatch.role, dispatch.new) == (
        "WO-H-1-D1",
        "heat",
        "lead",
        True,
    )
    assert dispatch.accept_by == AT + timedelta(hours=24)
    assert types(order) == ["dispatch.assigned", "workorder.dispatched"]
    assert order.events[0].topic == "dispatch.heat.v1"
    assert [(h.event, h.status, h.level) for h in order.history] == [
        ("workorder.dispatched", "dispatched", "community")
    ]


def test_a_new_order_of_an_active_cluster_starts_at_the_street(policy: Policy) -> None:
    assert new_order(policy, clustered=True).level == "street"


# ---- responses ---------------------------------------------------------------------------------


def joint(policy: Policy) -> Order:
    """gas at the street: a lead and two assisting departments (协同处置)."""
    order = Order.opened(opened("gas"), True, policy, "ev-open", AT)
    assert [(d.department, d.role) for d in order.dispatches] == [
        ("gas", "lead"),
        ("street_desk", "assist"),
        ("xiaofang", "assist"),
    ]
    return order


def test_the_leads_acceptance_is_the_orders(policy: Policy) -> None:
    order = new_order(policy)
    step(order, "ev-accept").accept(answer(order, "dispatch.accepted"))
    assert order.status == "accepted"
    assert order.dispatches[0].accepted_at == LATER and order.dispatches[0].changed
    assert types(order) == ["workorder.accepted"]


def test_an_assisting_departments_acceptance_leaves_the_order_as_it_is(policy: Policy) -> None:
    order = joint(policy)
    step(order, "ev-accept").accept(answer(order, "dispatch.accepted", "xiaofang"))
    assert order.status == "dispatched"
    assert [d.status for d in order.dispatches] == ["assigned", "assigned", "accepted"]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"dispatch_id": "WO-H-1-D9"}, "data.dispatch_id: no dispatch 'WO-H-1-D9'"),
        ({"work_order_id": "WO-H-2"}, "data.work_order_id: dispatch WO-H-1-D1 belongs to WO-H-1, not WO-H-2"),
        ({"department": "gas"}, "data.department: dispatch WO-H-1-D1 went to 'heat', not 'gas'"),
    ],
)
def test_a_response_about_someone_elses_dispatch_is_refused(
    policy: Policy, change: dict[str, str], error: str
) -> None:
    order = new_order(policy)
    fields = {"type": "dispatch.accepted", "dispatch_id": "WO-H-1-D1", "work_order_id": "WO-H-1"}
    fields |= {"department": "heat"} | change
    with pytest.raises(Refusal, match=error):
        step(order, "ev").accept(Response(**fields))


def test_a_step_the_dispatch_is_not_in_is_refused(policy: Policy) -> None:
    order = new_order(policy)
    with pytest.raises(InvalidTransition, match="cannot apply resolved to a dispatch that is assigned"):
        step(order, "ev").resolve(answer(order, "dispatch.resolved"), "fixed", policy)


def test_the_leads_result_resolves_the_order_an_assists_is_recorded(policy: Policy) -> None:
    order = joint(policy)
    step(order, "a1").accept(answer(order, "dispatch.accepted", "xiaofang"))
    step(order, "r1").resolve(answer(order, "dispatch.resolved", "xiaofang"), "checked", policy)
    assert (order.status, types(order)) == ("dispatched", [])
    assert [h.event for h in order.history] == ["dispatch.resolved"]
    step(order, "a2").accept(answer(order, "dispatch.accepted"))
    step(order, "r2").resolve(answer(order, "dispatch.resolved"), "fixed", policy)
    assert (order.status, types(order)) == ("resolved", ["workorder.resolved"])


def test_progress_is_recorded_and_changes_nothing(policy: Policy) -> None:
    order = new_order(policy)
    step(order, "a").accept(answer(order, "dispatch.accepted"))
    step(order, "p").progress(answer(order, "dispatch.progress"), "on the way")
    assert (order.status, types(order), order.dispatches[0].changed) == ("accepted", [], False)
    assert [h.detail for h in order.history] == [{"department": "heat", "note": "on the way"}]


def test_an_extension_is_granted_once_and_within_the_policy(policy: Policy) -> None:
    order = new_order(policy)
    step(order, "a").accept(answer(order, "dispatch.accepted"))
    resolve_by = order.dispatches[0].resolve_by
    with pytest.raises(Refusal, match="beyond the longest extension"):  # help: 10 working days
        step(order, "x").extend(
            answer(order, "dispatch.extension_requested"), resolve_by + timedelta(days=15), policy
        )
    step(order, "x").extend(
        answer(order, "dispatch.extension_requested"), resolve_by + timedelta(days=2), policy
    )
    assert order.dispatches[0].resolve_by == resolve_by + timedelta(days=2)
    assert types(order) == ["dispatch.deadline.moved"]
    with pytest.raises(Refusal, match="only one is allowed"):
        step(order, "y").extend(
            answer(order, "dispatch.extension_requested"), resolve_by + timedelta(days=3), policy
        )


# ---- returns (退单) ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def at_once(policy: Policy) -> Policy:
    """RETURN_REVIEW off: a return moves the order at once."""
    return replace(policy, return_review=False)


def test_not_ours_passes_the_lead_to_the_next_candidate_and_a_department_returns_once(
    at_once: Policy,
) -> None:
    order = Order.opened(opened("elevator"), False, at_once, "ev-open", AT)
    assert [(d.department, d.role) for d in order.dispatches] == [
        ("community_desk", "lead"),
        ("shichang_jianguan", "assist"),
    ]
    step(order, "ret").reject(answer(order, "dispatch.rejected"), "not_our_responsibility", None, at_once)
    assert [(d.department, d.role, d.status) for d in order.dispatches] == [
        ("community_desk", "lead", "rejected"),
        ("shichang_jianguan", "assist", "cancelled"),
        ("shichang_jianguan", "lead", "assigned"),
    ]
    assert types(order) == ["dispatch.cancelled", "dispatch.assigned", "workorder.dispatched"]
    assert order.dispatches[2].attempt == 2  # its second dispatch of this order
    with pytest.raises(Refusal, match="community_desk has already returned this order once at the community"):
        step(order, "again").reject(
            answer(order, "dispatch.rejected", "community_desk"), "not_our_responsibility", None, at_once
        )


def test_not_enough_to_act_on_goes_to_the_triage_desk(at_once: Policy) -> None:
    order = new_order(at_once)
    step(order, "ret").reject(answer(order, "dispatch.rejected"), "insufficient_info", "no address", at_once)
    assert [(d.department, d.status) for d in order.dispatches] == [
        ("heat", "rejected"),
        ("community_desk", "assigned"),
    ]


def test_a_triage_desk_that_returns_it_is_not_given_it_back(at_once: Policy) -> None:
    order = new_order(at_once)
    step(order, "r1").reject(answer(order, "dispatch.rejected"), "insufficient_info", "no address", at_once)
    step(order, "r2").reject(answer(order, "dispatch.rejected"), "insufficient_info", "none", at_once)
    # heat and the community's desk said no at the community: the street's duty list, heat again.
    assert (order.level, [(d.department, d.role) for d in order.dispatches[2:]]) == (
        "street",
        [("heat", "lead"), ("street_desk", "assist")],
    )


def test_an_assisting_department_that_returns_its_part_drops_out(policy: Policy) -> None:
    order = joint(policy)  # with the review on too: only a lead's return is reviewed
    step(order, "ret").reject(
        answer(order, "dispatch.rejected", "xiaofang"), "not_our_responsibility", None, policy
    )
    assert types(order) == []
    assert [d.status for d in order.dispatches] == ["assigned", "assigned", "rejected"]


def test_when_everyone_at_a_level_returned_it_the_order_climbs(at_once: Policy) -> None:
    order = new_order(at_once)  # heat alone at the community
    step(order, "ret").reject(answer(order, "dispatch.rejected"), "not_our_responsibility", None, at_once)
    escalated = next(e.data for e in order.events if e.type == "workorder.escalated")
    assert (escalated.from_level, escalated.to_level) == ("community", "street")  # type: ignore[attr-defined]
    assert order.level == "street" and order.status == "dispatched"
    assert [h.event for h in order.history] == [
        "dispatch.rejected",
        "workorder.escalated",
        "workorder.dispatched",
    ]
    # A return at the community does not pass heat over at the street, where it leads again.
    assert [(d.department, d.role) for d in order.dispatches[1:]] == [
        ("heat", "lead"),
        ("street_desk", "assist"),
    ]


def test_when_every_district_department_returned_it_the_districts_desk_has_it(at_once: Policy) -> None:
    order = Order.opened(opened("water_supply"), False, at_once, "ev-open", AT)
    for i in range(5):  # water (community), water, street_desk (street), zhujian, water (district)
        step(order, f"r{i}").reject(
            answer(order, "dispatch.rejected"), "not_our_responsibility", None, at_once
        )
    assert (order.level, order.dispatches[-1].department) == ("district", "district_desk")


# ---- the centre's review of a return (派单异议审核) ----------------------------------------------


def returned(policy: Policy, reason: str = "not_our_responsibility") -> Order:
    order = new_order(policy)
    step(order, "ret").reject(answer(order, "dispatch.rejected"), reason, "not ours", policy)
    return order


def test_a_leads_return_waits_for_the_centres_review(policy: Policy) -> None:
    order = returned(policy)
    [dispatch] = order.dispatches
    assert (order.status, dispatch.status, dispatch.returned_at) == ("dispatched", "returned", LATER)
    assert dispatch.review_by == LATER + timedelta(hours=2)  # a Monday morning: working hours
    assert types(order) == ["workorder.return_requested"]
    data = order.events[0].data
    assert (data.department, data.dispatch_id, data.return_reason, data.note, data.review_by) == (  # type: ignore[attr-defined]
        "heat",
        "WO-H-1-D1",
        "not_our_responsibility",
        "not ours",
        dispatch.review_by,
    )
    with pytest.raises(InvalidTransition, match="cannot apply accepted to a dispatch that is returned"):
        step(order, "acc").accept(answer(order, "dispatch.accepted"))


def test_an_approved_return_goes_on_as_a_return_does(policy: Policy) -> None:
    order = returned(policy)
    step(order, "ok", LATER + timedelta(minutes=30)).approve_return("WO-H-1-D1", "centre-1", "agreed", policy)
    assert types(order) == [
        "workorder.return_approved",
        "workorder.escalated",
        "dispatch.assigned",
        "dispatch.assigned",
        "workorder.dispatched",
    ]
    approved = order.events[0].data
    assert (approved.operator, approved.note, approved.automatic) == ("centre-1", "agreed", False)  # type: ignore[attr-defined]
    assert [(d.department, d.status, d.level) for d in order.dispatches] == [
        ("heat", "rejected", "community"),
        ("heat", "assigned", "street"),
        ("street_desk", "assigned", "street"),
    ]


def test_an_approval_may_name_the_departments(policy: Policy) -> None:
    order = returned(policy, "insufficient_info")
    step(order, "ok").approve_return("WO-H-1-D1", "centre-1", None, policy, lead="zhujian", assist=["water"])
    assert [(d.department, d.role, d.level) for d in order.dispatches[1:]] == [
        ("zhujian", "lead", "community"),
        ("water", "assist", "community"),
    ]


def test_a_refused_return_is_the_departments_again_with_a_new_time_to_sign(policy: Policy) -> None:
    order = returned(policy)
    resolve_by = order.dispatches[0].resolve_by
    refused_at = LATER + timedelta(hours=1)
    step(order, "no", refused_at).refuse_return("WO-H-1-D1", "centre-1", "it is yours", policy)
    [dispatch] = order.dispatches
    assert (dispatch.status, dispatch.accept_by) == ("assigned", refused_at + timedelta(hours=24))
    assert dispatch.resolve_by == resolve_by + timedelta(hours=1)  # the hour the review took
    assert [(e.topic, e.type) for e in order.events] == [
        ("dispatch.heat.v1", "dispatch.return_refused"),
        ("workorders.events.v1", "workorder.return_refused"),
    ]
    assert order.events[0].data.note == "it is yours"  # type: ignore[attr-defined]
    assert order.events[1].data.accept_by == dispatch.accept_by  # type: ignore[attr-defined]
    with pytest.raises(Refusal, match="heat has already returned this order once"):
        step(order, "again").reject(answer(order, "dispatch.rejected"), "other", "still not", policy)
    step(order, "acc").accept(answer(order, "dispatch.accepted"))
    assert order.status == "accepted"


@pytest.mark.parametrize("decide", ["approve", "refuse"])
def test_a_return_is_decided_once(policy: Policy, decide: str) -> None:
    order = returned(policy)
    step(order, "ok").approve_return("WO-H-1-D1", "centre-1", None, policy)
    error = "data.dispatch_id: dispatch WO-H-1-D1 has no return waiting for review (the dispatch is rejected)"
    with pytest.raises(Refusal, match=re.escape(error)):
        if decide == "approve":
            step(order, "ok2").approve_return("WO-H-1-D1", "centre-1", None, policy)
        else:
            step(order, "no").refuse_return("WO-H-1-D1", "centre-1", "yours", policy)


@pytest.mark.parametrize(
    ("dispatch_id", "error"),
    [
        ("WO-H-9-D1", "data.dispatch_id: no dispatch 'WO-H-9-D1' of work order WO-H-1"),
        ("WO-H-1-D2", "data.dispatch_id: no dispatch 'WO-H-1-D2' of work order WO-H-1"),
    ],
)
def test_a_review_of_another_dispatch_is_refused(policy: Policy, dispatch_id: str, error: str) -> None:
    order = returned(policy)
    with pytest.raises(Refusal, match=error):
        step(order, "ok").approve_return(dispatch_id, "centre-1", None, policy)


def test_an_unreviewed_return_is_approved_automatically(policy: Policy) -> None:
    order = returned(policy)
    review_by = order.dispatches[0].review_by
    assert review_by is not None
    assert step(order, "exp", review_by).review_expired("WO-H-1-D1", review_by, policy)
    approved = order.events[0].data
    assert (approved.operator, approved.automatic) == ("system", True)  # type: ignore[attr-defined]
    assert order.dispatches[0].status == "rejected" and order.level == "street"
    # The timer again (redelivered under another id, or late): stale, recorded, nothing changes.
    assert not step(order, "exp2", review_by).review_expired("WO-H-1-D1", review_by, policy)
    assert (types(order), [h.event for h in order.history]) == ([], ["return.review_stale"])


def nobody_left(policy: Policy) -> Order:
    """Everyone at every level returned it; the district's desk returns it last."""
    order = Order.opened(opened("other"), False, policy, "ev-open", AT)  # community_desk
    for i in range(3):  # community_desk, street_desk, district_desk
        step(order, f"r{i}").reject(answer(order, "dispatch.rejected"), "other", "not ours", policy)
        if i < 2:
            step(order, f"ok{i}").approve_return(order.dispatches[-1].id, "centre-1", None, policy)
    assert [(d.department, d.level) for d in order.dispatches] == [
        ("community_desk", "community"),
        ("street_desk", "street"),
        ("district_desk", "district"),
    ]
    return order


def test_where_nobody_is_left_the_centre_names_the_departments(policy: Policy) -> None:
    order = nobody_left(policy)
    with pytest.raises(Refusal, match=r"data.lead: nobody is left .* name the departments"):
        step(order, "ok").approve_return("WO-H-1-D3", "centre-1", None, policy)
    review_by = order.dispatches[2].review_by
    assert review_by is not None
    assert not step(order, "exp", review_by).review_expired("WO-H-1-D3", review_by, policy)
    assert order.dispatches[2].status == "returned" and types(order) == []
    assert [h.event for h in order.history] == ["return.review_waiting"]
    step(order, "ok").approve_return("WO-H-1-D3", "centre-1", None, policy, lead="zhujian")
    assert order.dispatches[-1].department == "zhujian"


def test_a_return_under_review_is_cancelled_when_the_order_moves_on(policy: Policy) -> None:
    order = returned(policy)
    step(order, "esc").escalation_requested("community", "street", "accept overdue", policy)
    assert order.dispatches[0].status == "cancelled"
    with pytest.raises(Refusal, match="no return waiting for review"):
        step(order, "ok").approve_return("WO-H-1-D1", "centre-1", None, policy)


# ---- the resident's answer (回访) ----------------------------------------------------------------


def resolved(policy: Policy) -> Order:
    order = joint(policy)
    step(order, "a").accept(answer(order, "dispatch.accepted"))
    step(order, "r").resolve(answer(order, "dispatch.resolved"), "fixed", policy)
    return order


def test_a_satisfied_resident_closes_the_order_and_what_is_open_is_cancelled(policy: Policy) -> None:
    order = resolved(policy)
    step(order, "f").feedback("satisfied", True, policy)
    assert order.status == "closed" and order.satisfaction == "satisfied"
    assert types(order) == ["dispatch.cancelled", "dispatch.cancelled", "workorder.closed"]


def test_a_dissatisfied_resident_reopens_it_to_the_same_level_with_half_the_time(policy: Policy) -> None:
    order = resolved(policy)
    step(order, "f").feedback("dissatisfied", False, policy)
    assert (order.status, order.level, order.reopen_count) == ("dispatched", "street", 1)
    again = order.dispatches[-3]
    assert (again.department, again.role, again.attempt) == ("gas", "lead", 2)
    limit = policy.ref.time_limits["normal"]
    assert again.accept_by == LATER + limit.accept / 2
    assert "workorder.reopened" in types(order)


def test_the_second_dissatisfaction_climbs_a_level(policy: Policy) -> None:
    order = resolved(policy)
    step(order, "f1").feedback("dissatisfied", False, policy)
    step(order, "a").accept(answer(order, "dispatch.accepted"))
    step(order, "r").resolve(answer(order, "dispatch.resolved"), "fixed again", policy)
    step(order, "f2").feedback("dissatisfied", False, policy)
    assert (order.level, order.reopen_count) == ("district", 2)
    escalated = next(e.data for e in order.events if e.type == "workorder.escalated")
    assert escalated.reason == "resident dissatisfied twice"  # type: ignore[attr-defined]


def test_a_resolved_order_waits_for_its_rating_for_the_policys_time(policy: Policy) -> None:
    order = resolved(policy)
    resolved_event = next(e.data for e in order.events if e.type == "workorder.resolved")
    assert order.feedback_by == policy.feedback_by(LATER) == resolved_event.feedback_by  # type: ignore[attr-defined]
    assert order.feedback_by == LATER + timedelta(days=3)  # Monday: three working days on


def test_a_rating_closes_it_as_rated(policy: Policy) -> None:
    order = resolved(policy)
    step(order, "f").feedback("basically_satisfied", True, policy)
    closed = next(e.data for e in order.events if e.type == "workorder.closed")
    assert (closed.closure, closed.satisfaction) == ("rated", "basically_satisfied")  # type: ignore[attr-defined]
    assert order.feedback_by is None


def test_an_order_nobody_rated_in_time_closes_as_unrated(policy: Policy) -> None:
    order = resolved(policy)
    assert order.feedback_by is not None
    step(order, "expired").feedback_expired(order.feedback_by)
    assert order.status == "closed" and order.satisfaction is None
    closed = next(e.data for e in order.events if e.type == "workorder.closed")
    assert (closed.closure, closed.satisfaction) == ("unrated", None)  # type: ignore[attr-defined]
    with pytest.raises(Refusal, match="is closed; feedback applies to a resolved order"):
        step(order, "late").feedback("satisfied", True, policy)


def test_an_expiry_for_an_earlier_resolution_is_stale(policy: Policy) -> None:
    order = resolved(policy)
    first = order.feedback_by
    assert first is not None
    step(order, "f").feedback("dissatisfied", False, policy)  # 重办
    step(order, "stale").feedback_expired(first)
    assert order.status == "dispatched" and not order.events
    step(order, "a").accept(answer(order, "dispatch.accepted"))
    step(order, "r", LATER + timedelta(hours=2)).resolve(answer(order, "dispatch.resolved"), "again", policy)
    step(order, "stale again").feedback_expired(first)
    assert order.status == "resolved"
    assert [h.event for h in order.history] == ["feedback.expiry_stale"]


def test_feedback_applies_to_a_resolved_order_only(policy: Policy) -> None:
    with pytest.raises(
        Refusal, match="work order WO-H-1 is dispatched; feedback applies to a resolved order"
    ):
        step(new_order(policy), "f").feedback("satisfied", True, policy)


# ---- the ladder and clusters -------------------------------------------------------------------


def test_a_missed_deadline_escalates_an_order_still_where_it_was(policy: Policy) -> None:
    order = new_order(policy)
    step(order, "esc").escalation_requested("community", "street", "not signed for in time", policy)
    assert order.level == "street"
    assert types(order)[:2] == ["dispatch.cancelled", "workorder.escalated"]


def test_an_escalation_for_an_order_that_moved_on_is_recorded_as_stale(policy: Policy) -> None:
    order = new_order(policy)
    step(order, "esc").escalation_requested("property", "community", "late", policy)
    assert types(order) == []
    assert [(h.event, h.detail) for h in order.history] == [("escalation.stale", {"reason": "late"})]


@pytest.mark.parametrize(("clustered", "raised"), [(False, True), (True, False)])
def test_a_cluster_raises_its_open_orders_below_the_street(
    policy: Policy, clustered: bool, raised: bool
) -> None:
    order = new_order(policy, clustered=clustered)
    step(order, "cl").raise_for_cluster("cluster: 5 reports", policy)
    assert order.level == "street"
    assert ("workorder.escalated" in types(order)) is raised


def test_a_closed_order_is_not_raised_by_a_cluster(policy: Policy) -> None:
    order = new_order(policy)  # at the community, below the street
    step(order, "a").accept(answer(order, "dispatch.accepted"))
    step(order, "r").resolve(answer(order, "dispatch.resolved"), "fixed", policy)
    step(order, "f").feedback("satisfied", True, policy)
    step(order, "cl").raise_for_cluster("cluster", policy)
    assert (order.status, order.level, types(order), order.history) == ("closed", "community", [], [])


# ---- 改派: the centre reassigns ------------------------------------------------------------------


def reassign(**fields: Any) -> ReassignRequested:
    return ReassignRequested.model_validate(
        {"work_order_id": "WO-H-1", "operator": "centre", "note": "heating at 菁华公寓"} | fields
    )


def unplaced(policy: Policy) -> Order:
    """An uncategorised, unplaced order: the street's triage desk has it."""
    order = Order.opened(opened("other", community=None), False, policy, "ev-open", AT)
    assert [(d.department, d.level) for d in order.dispatches] == [("street_desk", "street")]
    return order


def test_a_reassigned_order_is_re_tagged_re_placed_and_routed_by_the_duty_list(policy: Policy) -> None:
    order = unplaced(policy)
    step(order, "re").reassign(reassign(category="供暖", community="夹河社区"), policy)
    assert (order.category, order.community, order.street, order.level) == (
        "heating",
        "夹河社区",
        "福莱山街道",
        "community",
    )
    assert [(d.department, d.status) for d in order.dispatches] == [
        ("street_desk", "cancelled"),
        ("heat", "assigned"),
    ]
    assert types(order) == [
        "dispatch.cancelled",
        "workorder.reassigned",
        "dispatch.assigned",
        "workorder.dispatched",
    ]
    reassigned = order.events[1].data
    assert isinstance(reassigned, WorkOrderReassigned)
    assert (reassigned.operator, reassigned.note, reassigned.from_level) == (
        "centre",
        "heating at 菁华公寓",
        "street",
    )
    assert order.dispatches[1].accept_by == LATER + timedelta(hours=24)  # counted from the reassignment


def test_a_reassignment_may_name_the_lead_and_the_assisting_departments(policy: Policy) -> None:
    order = new_order(policy)
    step(order, "a").accept(answer(order, "dispatch.accepted"))
    step(order, "re").reassign(reassign(lead="water", assist=["heat"]), policy)
    assert order.status == "dispatched" and order.category == "heating"
    assert [(d.department, d.role, d.status) for d in order.dispatches] == [
        ("heat", "lead", "cancelled"),
        ("water", "lead", "assigned"),
        ("heat", "assist", "assigned"),
    ]


def test_a_reassignment_by_grid_places_the_order_in_its_community(policy: Policy) -> None:
    grid, (street, community, _) = next(iter(policy.ref.places_by_grid.items()))
    order = unplaced(policy)
    step(order, "re").reassign(reassign(category="heating", grid=grid), policy)
    assert (order.street, order.community, order.grid) == (street.name, community.name, grid)


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"category": "no such"}, "data.category: unknown category 'no such'"),
        ({"community": "无名社区"}, "data.community: unknown community '无名社区'"),
        ({"grid": "G-none"}, "data.grid: unknown grid 'G-none'"),
        ({"lead": "nobody"}, "data.lead: unknown department 'nobody'"),
        ({"lead": "heat", "assist": ["nobody"]}, "data.assist: unknown department 'nobody'"),
        ({"assist": ["heat"]}, "data.lead: assisting departments are named with a lead"),
    ],
)
def test_a_reassignment_naming_what_does_not_exist_is_refused_and_changes_nothing(
    policy: Policy, fields: dict[str, Any], error: str
) -> None:
    order = unplaced(policy)
    with pytest.raises(Refusal, match=error):
        step(order, "re").reassign(reassign(**fields), policy)
    assert (order.status, order.category, types(order)) == ("dispatched", "other", [])
    assert [d.status for d in order.dispatches] == ["assigned"]


def test_a_resolved_order_is_not_reassigned(policy: Policy) -> None:
    order = resolved(policy)
    with pytest.raises(InvalidTransition, match="cannot reassign a work order that is resolved"):
        step(order, "re").reassign(reassign(lead="heat"), policy)


# ---- 诉求类型 and 直接答复 -----------------------------------------------------------------------


def test_the_request_type_is_on_the_dispatch_and_every_lifecycle_event(policy: Policy) -> None:
    order = Order.opened(opened(request_type="complaint"), False, policy, "ev-open", AT)
    assert order.request_type == "complaint"
    assert all(e.data.request_type == "complaint" for e in order.events)  # type: ignore[attr-defined]
    [dispatch] = order.dispatches
    assert dispatch.resolve_by == datetime(2026, 12, 14, 8, 15, tzinfo=AT.tzinfo)  # 15 working days


def test_a_call_answered_directly_is_closed_at_once_and_never_dispatched(policy: Policy) -> None:
    order = Order.opened(
        opened(request_type="inquiry", answer="请到社区服务中心办理，电话13812345678"),
        False,
        policy,
        "ev",
        AT,
    )
    assert (order.status, order.dispatches, order.closure) == ("closed", [], "answered_directly")
    [closed] = order.events
    assert closed.type == "workorder.closed"
    data = WorkOrderData.model_validate(closed.data.model_dump())
    assert (data.closure, data.result, data.status) == (
        "answered_directly",
        "请到社区服务中心办理，电话138****5678",
        "closed",
    )
    assert data.reason and data.request_type == "inquiry"
    assert [(h.event, h.status) for h in order.history] == [("workorder.closed", "closed")]


def test_feedback_on_an_answered_order_is_recorded_and_reopens_nothing(policy: Policy) -> None:
    order = Order.opened(opened(answer="已答复"), False, policy, "ev", AT)
    step(order, "f").feedback("dissatisfied", False, policy)
    assert (order.status, order.events, order.reopen_count) == ("closed", [], 0)
    assert [(h.event, h.detail) for h in order.history] == [
        ("feedback.recorded", {"satisfaction": "dissatisfied", "resolved": False})
    ]
    # An order closed by its resident is still refused more feedback.
    rated = resolved(policy)
    step(rated, "f").feedback("satisfied", True, policy)
    with pytest.raises(Refusal, match="feedback applies to a resolved order"):
        step(rated, "f2").feedback("satisfied", True, policy)


def test_the_residents_rating_is_the_closure(policy: Policy) -> None:
    order = resolved(policy)
    step(order, "f").feedback("basically_satisfied", True, policy)
    closed = next(e.data for e in order.events if e.type == "workorder.closed")
    assert isinstance(closed, WorkOrderData)
    assert (closed.closure, closed.satisfaction, order.closure) == ("rated", "basically_satisfied", "rated")
    reopened = resolved(policy)
    step(reopened, "f").feedback("dissatisfied", False, policy)
    event = next(e.data for e in reopened.events if e.type == "workorder.reopened")
    assert isinstance(event, WorkOrderData) and event.satisfaction == "dissatisfied"
