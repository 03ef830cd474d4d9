"""The monthly report's rules as tables (``services/api/reports.py``) and its pages
(``report_pages.py``): what each figure counts, the cohort and the cutoff, hot spots and their
change, CSV and a self-contained HTML page with no personal data."""

from __future__ import annotations

import csv
import io
import random
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.api.report_pages import to_csv, to_html
from services.api.reports import (
    DispatchRow,
    EventRow,
    Month,
    OrderRow,
    case,
    closure,
    escalation_reason,
    figures,
    hot_spots,
    pair_counts,
    ratings,
    report,
    request_type,
    resolution_due,
    resolved_in_time,
    responded,
    response_due,
    returns,
)

Z = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 10, 9, 0, tzinfo=Z)
CUTOFF = datetime(2026, 12, 1, tzinfo=Z)


def h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def order(id: str = "WO-1", **kw: Any) -> OrderRow:
    values: dict[str, Any] = {
        "id": id,
        "status": "closed",
        "category": "heating",
        "category_name": "供暖",
        "street": "福莱山街道",
        "community": "夹河社区",
        "source": "hotline",
        "urgency": "normal",
        "requested_at": T0,
    }
    return OrderRow(**(values | kw))


def event(
    type: str, status: str, at: float, order_id: str = "WO-1", cause: str = "", **detail: Any
) -> EventRow:
    return EventRow(order_id, type, status, h(at), cause or f"cause-{type}-{at}", detail)


def dispatch(id: str = "WO-1-D1", **kw: Any) -> DispatchRow:
    values: dict[str, Any] = {
        "id": id,
        "work_order_id": id.rsplit("-D", 1)[0],
        "department": "heat",
        "role": "lead",
        "level": "community",
        "status": "resolved",
        "assigned_at": h(0),
        "accept_by": h(24),
        "accepted_at": h(2),
        "resolve_by": h(24 * 7),
        "resolved_at": h(30),
    }
    return DispatchRow(**(values | kw))


# ---- the month --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("2026-11", True),
        ("2026-01", True),
        ("2026-12", True),
        ("2026-13", False),
        ("2026-00", False),
        ("2026-1", False),
        ("26-11", False),
        ("2026/11", False),
        ("1999-12", False),
        ("", False),
        ("2026-11-01", False),
    ],
)
def test_a_month_is_yyyy_mm(text: str, ok: bool) -> None:
    if ok:
        assert str(Month.parse(text)) == text
    else:
        with pytest.raises(ValueError, match=r"^month: "):
            Month.parse(text)


def test_a_months_bounds_are_in_the_jurisdictions_zone() -> None:
    m = Month.parse("2026-12")
    assert m.start(Z) == datetime(2026, 12, 1, tzinfo=Z)
    assert m.end(Z) == datetime(2027, 1, 1, tzinfo=Z)
    assert str(m.previous()) == "2026-11" and str(Month.parse("2026-01").previous()) == "2025-12"


# ---- what the events say of an order -------------------------------------------------------------


@pytest.mark.parametrize(
    ("types", "expected"),
    [
        ([], "unknown"),
        ([None, None], "unknown"),
        (["complaint"], "complaint"),
        (["complaint", None, "help"], "help"),  # 改派 re-tagged it: the last one named
        (["nonsense"], "unknown"),
    ],
)
def test_request_type(types: list[str | None], expected: str) -> None:
    events = [
        event("workorder.created", "new", i, **({"request_type": t} if t else {}))
        for i, t in enumerate(types)
    ]
    assert request_type(events) == expected


@pytest.mark.parametrize(
    ("source", "statuses", "given", "answered", "expected"),
    [
        ("hotline", ["new", "dispatched"], None, False, None),  # still open
        ("hotline", ["new", "closed"], None, False, "answered_directly"),
        ("grid", ["new", "closed"], None, False, "handled_on_site"),
        ("hotline", ["new", "dispatched", "accepted", "resolved", "closed"], None, True, "rated"),
        ("hotline", ["new", "dispatched", "accepted", "resolved", "closed"], None, False, "unrated"),
        (
            "hotline",
            ["new", "dispatched", "resolved", "closed"],
            "unrated",
            True,
            "unrated",
        ),  # the event's word
        ("hotline", ["new", "closed"], "answered_directly", False, "answered_directly"),
    ],
)
def test_closure(
    source: str, statuses: list[str], given: str | None, answered: bool, expected: str | None
) -> None:
    kinds = {"new": "workorder.created", "closed": "workorder.closed", "resolved": "workorder.resolved"}
    events = [
        event(kinds.get(s, "workorder." + s), s, i, **({"closure": given} if s == "closed" and given else {}))
        for i, s in enumerate(statuses)
    ]
    assert closure(order(source=source), events, answered) == expected


def test_ratings_are_the_answers_that_closed_or_reopened_a_resolved_order() -> None:
    events = [
        event("workorder.created", "new", 0),
        event("workorder.resolved", "resolved", 1),
        event("workorder.reopened", "dispatched", 2, cause="fb-1"),  # satisfaction from the answer
        event("workorder.resolved", "resolved", 3),
        event("workorder.closed", "closed", 4, satisfaction="basically_satisfied"),  # the event's own
    ]
    assert ratings(events, {"fb-1": "dissatisfied"}) == ["dissatisfied", "basically_satisfied"]
    unrated = [
        event("workorder.resolved", "resolved", 1),
        event("workorder.closed", "closed", 2, closure="unrated"),
    ]
    assert ratings(unrated, {}) == []
    on_site = [event("workorder.created", "new", 0), event("workorder.closed", "closed", 1, cause="fb-x")]
    assert ratings(on_site, {"fb-x": "satisfied"}) == []  # not closed from resolved


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("not signed for by heat in time", "accept_overdue"),
        ("not resolved by heat in time", "resolve_overdue"),
        ("resident dissatisfied twice", "dissatisfied_twice"),
        ("every department at this level returned it", "all_returned"),
        ("工单预警: 5 reports", "other"),
        (None, "other"),
    ],
)
def test_escalation_reason(reason: str | None, kind: str) -> None:
    assert escalation_reason(reason) == kind


def test_returns_and_their_review() -> None:
    events = [
        event(
            "workorder.return_requested",
            "dispatched",
            1,
            dispatch_id="WO-1-D1",
            department="heat",
            return_reason="not_our_responsibility",
        ),
        event("workorder.return_approved", "dispatched", 2, dispatch_id="WO-1-D1", automatic=True),
        event(
            "workorder.return_requested",
            "dispatched",
            3,
            dispatch_id="WO-1-D2",
            department="water",
            return_reason="insufficient_info",
        ),
        event("workorder.return_refused", "dispatched", 4, dispatch_id="WO-1-D2"),
        event(
            "workorder.return_requested",
            "dispatched",
            5,
            dispatch_id="WO-1-D3",
            department="gas",
            return_reason="duplicate",
        ),
        event("workorder.return_approved", "dispatched", 6, dispatch_id="WO-1-D3", automatic=False),
    ]
    legacy = dispatch("WO-1-D4", status="ended", accepted_at=None, resolved_at=None, department="power")
    found = {(r.dispatch_id, r.reason, r.outcome) for r in returns("WO-1", events, [legacy])}
    assert found == {
        ("WO-1-D1", "not_our_responsibility", "approved_automatically"),
        ("WO-1-D2", "insufficient_info", "refused"),
        ("WO-1-D3", "duplicate", "approved"),
        ("WO-1-D4", "unknown", "not_reviewed"),  # returned before reviews were published
    }


# ---- the rates' rules, a dispatch at a time ------------------------------------------------------


@pytest.mark.parametrize(
    ("d", "returned", "due", "in_time"),
    [
        (dispatch(accepted_at=h(2)), False, True, True),
        (dispatch(accepted_at=h(25)), False, True, False),  # signed for late
        (dispatch(accepted_at=h(24)), False, True, True),  # at the accept-by exactly: in time
        (
            dispatch(status="assigned", accepted_at=None, resolved_at=None),
            False,
            True,
            False,
        ),  # open, past it
        (
            dispatch(
                status="assigned", accepted_at=None, accept_by=CUTOFF + timedelta(hours=1), resolved_at=None
            ),
            False,
            False,
            False,
        ),  # not yet due
        (
            dispatch(status="cancelled", accepted_at=None, resolved_at=None),
            False,
            True,
            False,
        ),  # escalated for it
        (
            dispatch(
                status="cancelled", accepted_at=None, accept_by=CUTOFF + timedelta(hours=1), resolved_at=None
            ),
            False,
            False,
            False,
        ),  # the order moved on before it was due
        (
            dispatch(status="ended", accepted_at=None, resolved_at=None),
            True,
            True,
            True,
        ),  # returned, when not known: an answer
        (dispatch(status="ended", accepted_at=None, resolved_at=None), h(23), True, True),  # by the accept-by
        (dispatch(status="ended", accepted_at=None, resolved_at=None), h(30), True, False),  # returned late
    ],
)
def test_response(d: DispatchRow, returned: bool | datetime, due: bool, in_time: bool) -> None:
    at = returned if isinstance(returned, datetime) else None
    ids = {d.id: at} if returned else {}
    assert response_due(d, ids, CUTOFF) is due
    if due:
        assert responded(d, ids) is in_time


@pytest.mark.parametrize(
    ("d", "due", "in_time"),
    [
        (dispatch(), True, True),
        (dispatch(resolved_at=h(24 * 8)), True, False),  # resolved late
        (dispatch(status="accepted", resolved_at=None), True, False),  # open past its resolve-by
        (dispatch(status="assigned", accepted_at=None, resolved_at=None), True, False),
        (dispatch(status="accepted", resolved_at=None, resolve_by=CUTOFF + timedelta(days=1)), False, False),
        (dispatch(status="cancelled", resolved_at=None), True, False),  # signed for, taken away when late
        (dispatch(status="cancelled", accepted_at=None, resolved_at=None), False, False),  # the response's
        (dispatch(role="assist"), False, False),  # the lead's rate
    ],
)
def test_resolution(d: DispatchRow, due: bool, in_time: bool) -> None:
    assert resolution_due(d, CUTOFF) is due
    if due:
        assert resolved_in_time(d) is in_time


# ---- figures over a few orders ----------------------------------------------------------------------


def lifecycle(id: str, *steps: tuple[str, str, float], **detail: Any) -> list[EventRow]:
    return [event(t, s, at, order_id=id, cause=f"{id}-{t}-{at}", **detail) for t, s, at in steps]


def scenario() -> tuple[list[OrderRow], list[EventRow], list[DispatchRow], dict[str, str]]:
    """Five orders: closed satisfied, reopened then closed dissatisfied... and the rest below."""
    orders = [
        order("WO-1"),  # resolved in time, rated satisfied
        order("WO-2", status="dispatched"),  # never signed for: escalated, open past its deadline
        order("WO-3", source="grid", category="sanitation"),  # handled on the spot
        order("WO-4", category="policy_inquiry"),  # answered on the call
        order("WO-5", status="merged", merged_into="WO-1"),  # a repeat
    ]
    events = (
        lifecycle(
            "WO-1",
            ("workorder.created", "new", 0),
            ("workorder.dispatched", "dispatched", 0),
            ("workorder.accepted", "accepted", 2),
            ("workorder.resolved", "resolved", 30),
            ("workorder.closed", "closed", 40),
            request_type="help",
        )
        + lifecycle(
            "WO-2",
            ("workorder.created", "new", 0),
            ("workorder.dispatched", "dispatched", 0),
            request_type="complaint",
        )
        + [
            event(
                "workorder.escalated",
                "dispatched",
                24,
                "WO-2",
                from_level="community",
                to_level="street",
                reason="not signed for by heat in time",
            )
        ]
        + lifecycle("WO-3", ("workorder.created", "new", 0), ("workorder.closed", "closed", 0))
        + lifecycle(
            "WO-4", ("workorder.created", "new", 0), ("workorder.closed", "closed", 0), request_type="inquiry"
        )
        + lifecycle("WO-5", ("workorder.created", "new", 1), ("workorder.merged", "merged", 1))
    )
    dispatches = [
        dispatch("WO-1-D1"),
        dispatch("WO-2-D1", status="cancelled", accepted_at=None, resolved_at=None),
        dispatch(
            "WO-2-D2",
            department="street_desk",
            level="street",
            status="assigned",
            assigned_at=h(24),
            accept_by=h(48),
            accepted_at=None,
            resolve_by=h(24 * 8),
            resolved_at=None,
        ),
    ]
    return orders, events, dispatches, {"WO-1-workorder.closed-40": "satisfied"}


def cases_of(
    orders: list[OrderRow], events: list[EventRow], dispatches: list[DispatchRow], feedback: dict[str, str]
) -> list[Any]:
    return [
        case(
            o,
            [e for e in events if e.work_order_id == o.id],
            [d for d in dispatches if d.work_order_id == o.id],
            feedback,
            CUTOFF,
            {"福莱山街道": "莱山区"},
        )
        for o in orders
    ]


def test_figures_count_open_orders_past_their_deadline() -> None:
    f = figures(cases_of(*scenario()), CUTOFF)
    assert (f.reports, f.merged, f.orders) == (5, 1, 4)
    assert f.by_type == {"complaint": 1, "help": 1, "inquiry": 1, "unknown": 1}
    assert f.by_category == {"heating": 2, "policy_inquiry": 1, "sanitation": 1}
    assert f.by_closure == {"answered_directly": 1, "handled_on_site": 1, "open": 1, "rated": 1}
    assert (f.answered_directly, f.direct_answer_rate) == (1, 0.25)
    # WO-1-D1 in time; WO-2-D1 missed (cancelled by its escalation); WO-2-D2 open past its accept-by.
    assert (f.dispatches, f.response_due, f.responded_in_time) == (3, 3, 1)
    # WO-1-D1 resolved in time; WO-2-D2 still open past its resolve-by counts; WO-2-D1 was the response's.
    assert (f.resolution_due, f.resolved_in_time, f.open_past_deadline) == (2, 1, 1)
    assert (f.rated, f.satisfied, f.satisfaction_rate) == (1, 1, 1.0)
    assert f.escalations_by_rung == {"street": 1} and f.escalations_by_reason == {"accept_overdue": 1}
    assert f.median_hours_to_accept == 2.0 and f.median_hours_to_resolve == 30.0


def test_a_departments_figures_are_its_own_dispatches() -> None:
    cases = cases_of(*scenario())
    heat = figures([c for c in cases if any(d.department == "heat" for d in c.dispatches)], CUTOFF, "heat")
    assert (heat.orders, heat.dispatches, heat.response_due, heat.responded_in_time) == (2, 2, 2, 1)
    assert (heat.resolution_due, heat.resolved_in_time) == (1, 1)


def test_a_dispatch_ended_after_the_cutoff_was_open_at_it() -> None:
    events = lifecycle("WO-2", ("workorder.created", "new", 0), ("workorder.dispatched", "dispatched", 0))
    escalated = event(
        "workorder.escalated",
        "dispatched",
        24 * 30,
        "WO-2",
        from_level="community",
        to_level="street",
        reason="not signed for by heat in time",
    )  # on 10 December
    late = dispatch("WO-2-D1", status="cancelled", accepted_at=None, resolved_at=None)
    returned = dispatch("WO-2-D1", status="ended", accepted_at=h(3), resolved_at=None)
    for d, open_as in ((late, "assigned"), (returned, "accepted")):
        c = case(order("WO-2", status="dispatched"), [*events, escalated], [d], {}, CUTOFF, {})
        assert c.dispatches[0].status == open_as and c.escalations == [] and c.returns == []
        f = figures([c], CUTOFF)
        assert f.open_past_deadline == 1 and f.resolution_due == 1  # late and open on 1 December
    before = case(order("WO-2"), [*events, escalated], [late], {}, h(24 * 31), {})
    assert before.dispatches[0].status == "cancelled"  # a cutoff after the escalation sees it


def test_nothing_after_the_cutoff_counts() -> None:
    orders, events, dispatches, feedback = scenario()
    early = T0 + timedelta(hours=10)  # before WO-1 was resolved
    c = case(
        orders[0], [e for e in events if e.work_order_id == "WO-1"], [dispatches[0]], feedback, early, {}
    )
    assert c.closure is None and c.rating is None and c.resolved_at is None
    assert c.dispatches[0].status == "accepted" and c.dispatches[0].resolved_at is None


# ---- hot spots -----------------------------------------------------------------------------------


def test_hot_spots_rank_pairs_with_their_change() -> None:
    now = [order(f"A{i}") for i in range(5)] + [
        order(f"B{i}", category="noise", community="富祥社区") for i in range(3)
    ]
    now += [order("C0", category="other"), order("C1", community=None), order("C2", category="road")]
    now += [order("M1", status="merged", merged_into="A0")]
    before = [order(f"P{i}", requested_at=T0 - timedelta(days=31)) for i in range(2)]
    previous = pair_counts(before)
    spots = hot_spots(cases_of(now, [], [], {}), previous, {"heating": "供暖", "noise": "噪声扰民"})
    assert [(s.category, s.community, s.orders, s.previous, s.change, s.change_rate) for s in spots] == [
        ("heating", "夹河社区", 5, 2, 3, 1.5),
        ("noise", "富祥社区", 3, 0, 3, None),  # new this month
    ]  # other, unplaced, a merged repeat and a pair under three are not candidates


# ---- the report ------------------------------------------------------------------------------------


def whole(
    orders: list[OrderRow],
    events: list[EventRow],
    dispatches: list[DispatchRow],
    feedback: dict[str, str],
    now: datetime = CUTOFF + timedelta(days=3),
) -> Any:
    return report(
        Month.parse("2026-11"),
        Z,
        now,
        orders,
        events,
        dispatches,
        feedback,
        [],
        {"福莱山街道": "莱山区"},
        {"heating": "供暖"},
        {"heat": "热力公司"},
    )


def test_the_cohort_is_the_months_orders_in_the_local_zone() -> None:
    edge = [
        order("first", requested_at=datetime(2026, 11, 1, tzinfo=Z)),
        order("last", requested_at=datetime(2026, 12, 1, tzinfo=Z) - timedelta(seconds=1)),
        order("october", requested_at=datetime(2026, 10, 31, 23, 59, tzinfo=Z)),
        order("december", requested_at=datetime(2026, 12, 1, tzinfo=Z)),
    ]
    r = whole(edge, [], [], {})
    assert r.total.reports == 2
    assert r.cutoff == datetime(2026, 12, 1, tzinfo=Z)  # a month that is over ends at its end
    during = whole(edge, [], [], {}, now=datetime(2026, 11, 15, tzinfo=Z))
    assert during.total.reports == 1 and during.cutoff == datetime(2026, 11, 15, tzinfo=Z)


def test_the_report_is_the_same_whatever_the_rows_order() -> None:
    orders, events, dispatches, feedback = scenario()
    first = whole(orders, events, dispatches, feedback).as_dict()
    rng = random.Random(7)
    for _ in range(5):
        o, d = orders[:], dispatches[:]
        rng.shuffle(o)
        rng.shuffle(d)
        assert whole(o, events, d, feedback).as_dict() == first
    assert set(first["districts"]) == {"莱山区"} and set(first["departments"]) == {"heat", "street_desk"}


# ---- the pages -------------------------------------------------------------------------------------


def test_csv_has_one_figure_a_row() -> None:
    r = whole(*scenario())
    rows = list(csv.reader(io.StringIO(to_csv(r))))
    assert rows[0] == ["scope", "name", "figure", "key", "value"]
    assert ["total", "", "orders", "", "4"] in rows
    assert ["total", "", "by_type", "help", "1"] in rows
    assert ["street", "福莱山街道", "response_rate", "", "0.3333"] in rows
    assert ["department", "heat", "dispatches", "", "2"] in rows
    assert all(len(row) == 5 for row in rows)


def test_the_page_is_self_contained_bilingual_and_has_no_personal_data() -> None:
    html = to_html(whole(*scenario()))
    for outside in ("<script", "<link", "src=", "url(", "@import", "https://"):
        assert outside not in html
    assert html.count("<svg") >= 4
    for label in (
        "响应率",
        "response",
        "解决率",
        "resolution",
        "满意率",
        "satisfaction",
        "直接答复率",
        "每月一题",
    ):
        assert label in html
    assert "25.0%" in html  # the direct answer rate, as a headline


def test_an_empty_month_still_renders() -> None:
    r = whole([], [], [], {})
    assert r.total.orders == 0 and r.total.response_rate is None
    assert "本月无工单" in to_html(r)
    assert to_csv(r).startswith("scope,name,figure,key,value\n")
