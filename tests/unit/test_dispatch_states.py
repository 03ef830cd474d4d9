"""The order aggregate under random sequences of everything that can happen to it (Hypothesis'
stateful testing): departments' responses (签收, 退单, progress, 延期, 办结, from the right
department or not), the centre's review of returns and 改派, the resident's feedback and its
expiry, escalation's commands (fresh or stale), cluster alerts, business time passing. A command
the rules refuse is discarded, as dispatch's handler does. After every step the order is in a
state the contract allows, and never lost: while open, exactly one department (or desk) leads it
at its level; resolved, its lead has resolved it and the resident's rating is awaited; closed,
nothing is left open. ``FUZZ_EXAMPLES`` sets how many sequences run."""

from __future__ import annotations

import copy
import os
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from services.dispatch.dispatches import TRANSITIONS, Refusal, Response
from services.dispatch.domain import ORDER_STATUSES, Order
from services.dispatch.routing import Policy
from shared import contract
from shared.contract import ReassignRequested, WorkOrderData
from shared.reference import DEFAULT_JURISDICTION, LEVELS, load_jurisdiction, next_level
from shared.settings import Settings
from tests.unit.test_dispatch_domain import opened

REF = load_jurisdiction(DEFAULT_JURISDICTION)
POLICIES = {
    "review": Policy.of(REF, Settings()),
    "no review": Policy.of(REF, Settings(return_review=False)),
}
AT = datetime(2026, 11, 23, 8, 15, tzinfo=timezone(timedelta(hours=8)))  # a Monday
CATEGORIES = [c.code for c in REF.categories]
COMMUNITIES = [c.name for _, c in REF.communities]
DEPARTMENTS = [d.code for d in REF.departments]
COMPANIES = sorted({c.property_company for _, _, c in REF.compounds if c.property_company})
DISPATCH_STATUSES = {s for s, _ in TRANSITIONS} | set(TRANSITIONS.values()) | {"cancelled"}
OPEN = ("assigned", "accepted", "returned")  # a dispatch someone still holds
RESPONSES = (
    "dispatch.accepted",
    "dispatch.progress",
    "dispatch.extension_requested",
    "dispatch.rejected",
    "dispatch.resolved",
)
RETURN_REASONS = ("not_our_responsibility", "insufficient_info", "duplicate", "other")


class OrderLife(RuleBasedStateMachine):
    order: Order
    policy: Policy

    def __init__(self) -> None:
        super().__init__()
        self.at = AT
        self.steps = 0
        self.refused = 0
        self.floor = 0  # the lowest level the order may be at: it only climbs, but for a 改派

    @initialize(
        review=st.sampled_from(sorted(POLICIES)),
        category=st.sampled_from([*CATEGORIES, "no-such-category"]),
        community=st.sampled_from([*COMMUNITIES, None]),
        company=st.sampled_from([None, *COMPANIES]),
        urgency=st.sampled_from(["emergency", "urgent", "normal"]),
        request_type=st.sampled_from(contract.REQUEST_TYPES),
        answered=st.integers(0, 9),
        clustered=st.booleans(),
    )
    def open(
        self,
        review: str,
        category: str,
        community: str | None,
        company: str | None,
        urgency: str,
        request_type: str,
        answered: int,
        clustered: bool,
    ) -> None:
        self.policy = POLICIES[review]
        order_opened = opened(
            category,
            community,
            property_company=company,
            urgency=urgency,
            request_type=request_type,
            answer="已答复" if answered == 0 else None,  # one in ten answered on the call
        )
        self.order = Order.opened(order_opened, clustered, self.policy, "ev-0", AT)
        self.floor = LEVELS.index(self.order.level)
        self._published(self.order)

    # ---- what happens to it ------------------------------------------------------------------

    def _apply(self, command: Any) -> None:
        """One command on the order, as dispatch's handler runs it: on a refusal, the order as it
        was loaded (the handler rolls the message back and dead-letters it)."""
        self.steps += 1
        # As loaded: the order's fields are values, its dispatches the only things changed in place.
        loaded = replace(self.order, dispatches=[copy.copy(d) for d in self.order.dispatches])
        order = self.order
        order.events.clear()
        order.history.clear()
        for d in order.dispatches:
            d.new = d.changed = False
        order.begin(f"ev-{self.steps}", self.at)
        try:
            command(order)
        except Refusal as refusal:
            assert str(refusal), "a refusal says why"
            self.order, self.refused = loaded, self.refused + 1
            return
        self._published(order)
        event(f"reached {order.status} at {order.level}")  # --hypothesis-show-statistics

    def _dispatch(self, pick: int) -> Any:
        """Mostly one still held (where something can happen), now and then any of them."""
        held = [d for d in self.order.dispatches if d.status in OPEN]
        among = held if held and pick % 4 else self.order.dispatches
        return among[pick % len(among)] if among else None

    @rule(minutes=st.integers(0, 3 * 24 * 60))
    def time_passes(self, minutes: int) -> None:
        self.at += timedelta(minutes=minutes)

    @rule(
        pick=st.integers(0, 40),
        kind=st.sampled_from(RESPONSES),
        spoofed=st.integers(0, 9),
        reason=st.sampled_from(RETURN_REASONS),
        hours=st.integers(-48, 24 * 30),
    )
    def department_responds(self, pick: int, kind: str, spoofed: int, reason: str, hours: int) -> None:
        dispatch = self._dispatch(pick)
        if dispatch is None:
            return
        department = dispatch.department if spoofed else "someone_else"  # one in ten from another
        response = Response(kind, dispatch.id, self.order.id, department)

        def command(order: Order) -> None:
            if kind == "dispatch.accepted":
                order.accept(response)
            elif kind == "dispatch.progress":
                order.progress(response, "在办")
            elif kind == "dispatch.extension_requested":
                order.extend(response, dispatch.resolve_by + timedelta(hours=hours), self.policy)
            elif kind == "dispatch.rejected":
                order.reject(response, reason, "不归我们", self.policy)
            else:
                order.resolve(response, "已办结", self.policy)

        self._apply(command)

    @rule()
    def the_lead_goes_on(self) -> None:
        """The common path: the lead signs for what it holds, or resolves what it signed for."""
        lead = next((d for d in self.order.dispatches if d.role == "lead" and d.status in OPEN[:2]), None)
        if lead is not None:
            if lead.status == "assigned":
                accepted = Response("dispatch.accepted", lead.id, self.order.id, lead.department)
                self._apply(lambda order: order.accept(accepted))
            else:
                resolved = Response("dispatch.resolved", lead.id, self.order.id, lead.department)
                self._apply(lambda order: order.resolve(resolved, "已办结", self.policy))

    @rule(
        satisfaction=st.sampled_from(["satisfied", "basically_satisfied", "dissatisfied"]),
        resolved=st.booleans(),
    )
    def resident_answers(self, satisfaction: str, resolved: bool) -> None:
        self._apply(lambda order: order.feedback(satisfaction, resolved, self.policy))

    @rule(current=st.booleans())
    def rating_expires(self, current: bool) -> None:
        feedback_by = self.order.feedback_by if current and self.order.feedback_by else self.at
        self._apply(lambda order: order.feedback_expired(feedback_by))

    @rule(fresh=st.integers(0, 3), to=st.sampled_from(LEVELS))
    def escalation_asks(self, fresh: int, to: Any) -> None:
        """A missed deadline: from the order's level (or a stale one from another)."""
        from_level = self.order.level if fresh else to
        to_level = next_level(from_level)
        if to_level is None:
            return
        self._apply(lambda order: order.escalation_requested(from_level, to_level, "超时", self.policy))

    @rule(
        category=st.sampled_from([None, None, *CATEGORIES, "no-such-category"]),
        community=st.sampled_from([None, None, *COMMUNITIES, "no-such-community"]),
        lead=st.sampled_from([None, None, *DEPARTMENTS, "no-such-department"]),
        assist=st.lists(st.sampled_from(DEPARTMENTS), max_size=2),
    )
    def centre_reassigns(
        self, category: str | None, community: str | None, lead: str | None, assist: list[str]
    ) -> None:
        r = ReassignRequested(
            work_order_id=self.order.id,
            operator="duty-1",
            note="改派",
            category=category,
            community=community,
            lead=lead,
            assist=assist if lead else [],
        )

        def command(order: Order) -> None:
            order.reassign(r, self.policy)
            self.floor = LEVELS.index(order.level)

        self._apply(command)

    @rule(pick=st.integers(0, 40), lead=st.sampled_from([None, None, None, *DEPARTMENTS]))
    def centre_approves_a_return(self, pick: int, lead: str | None) -> None:
        if (dispatch := self._dispatch(pick)) is not None:
            self._apply(
                lambda order: order.approve_return(dispatch.id, "duty-1", None, self.policy, lead=lead)
            )

    @rule(pick=st.integers(0, 40))
    def centre_refuses_a_return(self, pick: int) -> None:
        if (dispatch := self._dispatch(pick)) is not None:
            self._apply(lambda order: order.refuse_return(dispatch.id, "duty-1", "请继续办理", self.policy))

    @rule(pick=st.integers(0, 40), current=st.integers(0, 3))
    def review_expires(self, pick: int, current: int) -> None:
        if (dispatch := self._dispatch(pick)) is not None:
            review_by = dispatch.review_by if current and dispatch.review_by else self.at
            self._apply(lambda order: order.review_expired(dispatch.id, review_by, self.policy))

    @precondition(lambda self: self.order.status in ("dispatched", "accepted"))
    @rule()
    def cluster_alert(self) -> None:
        self._apply(lambda order: order.raise_for_cluster("cluster", self.policy))

    # ---- what must always hold ---------------------------------------------------------------

    def _published(self, order: Order) -> None:
        """What a command left behind is within the contract, and its last lifecycle event says
        where the order now is."""
        lifecycle = []
        for published in order.events:
            model = contract.INTERNAL.get((published.topic, published.type)) or type(published.data)
            model.model_validate(published.data.model_dump())
            if published.topic == contract.WORKORDER_EVENTS:
                assert isinstance(published.data, WorkOrderData)
                lifecycle.append(published.data)
        if lifecycle:
            assert (lifecycle[-1].status, lifecycle[-1].level) == (order.status, order.level)

    @invariant()
    def status_is_one_the_contract_names(self) -> None:
        assert self.order.status in ORDER_STATUSES and self.order.status != "new"
        assert all(d.status in DISPATCH_STATUSES for d in self.order.dispatches)
        assert [d.id for d in self.order.dispatches] == [
            f"{self.order.id}-D{i}" for i in range(1, len(self.order.dispatches) + 1)
        ]

    @invariant()
    def an_open_order_has_one_lead_at_its_level(self) -> None:
        order = self.order
        leads = [d for d in order.dispatches if d.role == "lead" and d.status in OPEN]
        if order.status in ("dispatched", "accepted"):
            assert len(leads) == 1, (order.status, [(d.id, d.role, d.status) for d in order.dispatches])
            assert leads[0].level == order.level
        else:
            assert leads == []

    @invariant()
    def a_resolved_order_awaits_its_rating(self) -> None:
        order = self.order
        if order.status == "resolved":
            assert order.feedback_by is not None
            lead = [d for d in order.dispatches if d.role == "lead" and d.status not in ("cancelled",)]
            assert lead and lead[-1].status == "resolved"

    @invariant()
    def a_closed_order_holds_nothing_open(self) -> None:
        order = self.order
        if order.status == "closed":
            assert order.closure in ("rated", "unrated", "answered_directly")
            assert not [d for d in order.dispatches if d.status in OPEN]
            assert order.feedback_by is None

    @invariant()
    def a_department_returns_once_at_a_level(self) -> None:
        returns: dict[tuple[str, str], int] = {}
        for d in self.order.dispatches:
            if d.returned_at is not None or d.status == "rejected":
                returns[(d.department, d.level)] = returns.get((d.department, d.level), 0) + 1
        assert all(n == 1 for n in returns.values()), returns

    @invariant()
    def the_order_only_climbs_but_for_a_reassignment(self) -> None:
        assert LEVELS.index(self.order.level) >= self.floor
        self.floor = LEVELS.index(self.order.level)


TestOrderLife = OrderLife.TestCase
TestOrderLife.settings = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "200")),
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
