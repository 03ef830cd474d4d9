"""Dispatch's rules: starting level, who is assigned, deadlines, and the dispatch state machine."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from services.dispatch.domain import (
    TRANSITIONS,
    InvalidTransition,
    OrderFacts,
    assignees,
    deadlines,
    extension_allowed,
    initial_level,
    respond,
    time_limit,
)
from shared.contract import Level, Urgency
from shared.reference import Jurisdiction, TimeLimit

AT = datetime(2026, 11, 21, 8, 15, tzinfo=timezone(timedelta(hours=8)))


def facts(category: str, community: str | None = "夹河社区", company: str | None = None) -> OrderFacts:
    return OrderFacts(category=category, urgency="normal", community=community, property_company=company)


@pytest.mark.parametrize(
    ("order", "level"),
    [
        (facts("heating"), "community"),
        (facts("heating", community=None), "street"),
        (facts("property_service", company="yeda_wuye"), "property"),
        (facts("property_service"), "community"),  # no property company to call
        (facts("property_service", community=None), "street"),
        (facts("illegal_building"), "street"),
        (facts("illegal_building", community=None), "street"),
        (facts("no_such_category"), "community"),
        (facts("other"), "community"),
    ],
)
def test_initial_level(ref: Jurisdiction, order: OrderFacts, level: Level) -> None:
    assert initial_level(order, ref) == level


@pytest.mark.parametrize(
    ("order", "level", "expected"),
    [
        (facts("property_service", company="yeda_wuye"), "property", [("yeda_wuye", "lead")]),
        (facts("elevator", company="haixin_wuye"), "property", [("haixin_wuye", "lead")]),
        (facts("heating"), "community", [("heat", "lead")]),
        (facts("gas"), "street", [("gas", "lead"), ("street_desk", "assist"), ("xiaofang", "assist")]),
        (facts("gas"), "district", [("zhujian", "lead"), ("gas", "assist"), ("xiaofang", "assist")]),
        (facts("elevator"), "community", [("community_desk", "lead"), ("shichang_jianguan", "assist")]),
        # No duty at the community level: the next level's duty list applies.
        (
            facts("illegal_building"),
            "community",
            [("zonghe_zhifa", "lead"), ("street_desk", "assist"), ("zhujian", "assist")],
        ),
        # Property level without a company: the duty list from the property level up.
        (facts("property_service"), "property", [("community_desk", "lead")]),
        (facts("other"), "community", [("community_desk", "lead")]),
        (facts("other"), "street", [("street_desk", "lead")]),
        (facts("other"), "district", [("street_desk", "lead")]),
        (facts("heating", community=None), "street", [("street_desk", "lead")]),
        (facts("no_such_category"), "community", [("community_desk", "lead")]),
    ],
)
def test_assignees(
    ref: Jurisdiction, order: OrderFacts, level: Level, expected: list[tuple[str, str]]
) -> None:
    assert assignees(order, level, ref) == expected


def test_lead_is_first_and_only_once(ref: Jurisdiction) -> None:
    for duty in ref.duties:
        got = assignees(facts(duty.category), duty.level, ref)
        roles = [role for _, role in got]
        assert roles[0] == "lead" and roles.count("lead") == 1
        assert len({code for code, _ in got}) == len(got)


@pytest.mark.parametrize(
    ("urgency", "accept", "resolve"),
    [
        ("emergency", timedelta(minutes=30), timedelta(hours=24)),
        ("urgent", timedelta(hours=2), timedelta(days=3)),
        ("normal", timedelta(hours=24), timedelta(days=7)),
    ],
)
def test_deadlines_from_the_reference_limits(
    ref: Jurisdiction, urgency: Urgency, accept: timedelta, resolve: timedelta
) -> None:
    accept_by, resolve_by = deadlines(AT, time_limit(urgency, ref, {}))
    assert accept_by == AT + accept
    assert resolve_by == AT + resolve
    assert accept_by.utcoffset() == timedelta(hours=8)


def test_time_limit_override_wins(ref: Jurisdiction) -> None:
    quick = TimeLimit(accept=timedelta(seconds=5), resolve=timedelta(seconds=20))
    assert time_limit("urgent", ref, {"urgent": quick}) == quick
    assert time_limit("normal", ref, {"urgent": quick}) == ref.time_limits["normal"]


@pytest.mark.parametrize(
    ("status", "response", "new"),
    [
        ("assigned", "dispatch.accepted", "accepted"),
        ("assigned", "dispatch.rejected", "rejected"),
        ("accepted", "dispatch.rejected", "rejected"),
        ("accepted", "dispatch.progress", "accepted"),
        ("accepted", "dispatch.extension_requested", "accepted"),
        ("accepted", "dispatch.resolved", "resolved"),
    ],
)
def test_allowed_transitions(status: str, response: str, new: str) -> None:
    assert respond(status, response) == new


@pytest.mark.parametrize(
    ("status", "response"),
    [
        ("assigned", "dispatch.resolved"),  # resolving a dispatch never accepted
        ("assigned", "dispatch.progress"),
        ("assigned", "dispatch.extension_requested"),
        ("accepted", "dispatch.accepted"),  # accepted twice
        ("resolved", "dispatch.accepted"),  # accepting one already resolved
        ("resolved", "dispatch.resolved"),
        ("resolved", "dispatch.rejected"),
        ("rejected", "dispatch.accepted"),
        ("cancelled", "dispatch.accepted"),
        ("accepted", "dispatch.unknown"),
    ],
)
def test_refused_transitions(status: str, response: str) -> None:
    with pytest.raises(InvalidTransition) as info:
        respond(status, response)
    verb = response.removeprefix("dispatch.")
    assert str(info.value) == f"cannot apply {verb} to a dispatch that is {status}"


def test_nothing_leaves_resolved() -> None:
    assert not [key for key in TRANSITIONS if key[0] == "resolved"]


@pytest.mark.parametrize(
    ("order", "clustered", "level"),
    [
        # An emergency is not left to the property company alone.
        (replace(facts("elevator", company="yeda_wuye"), urgency="emergency"), False, "community"),
        (replace(facts("heating"), urgency="emergency"), False, "community"),
        (replace(facts("illegal_building"), urgency="emergency"), False, "street"),
        # A cluster of complaints (工单预警) is coordinated by the street.
        (facts("heating"), True, "street"),
        (facts("property_service", company="yeda_wuye"), True, "street"),
        (facts("illegal_building"), True, "street"),
    ],
)
def test_urgency_and_clusters_raise_the_starting_level(
    ref: Jurisdiction, order: OrderFacts, clustered: bool, level: Level
) -> None:
    assert initial_level(order, ref, clustered) == level


@pytest.mark.parametrize(
    ("returned", "expected"),
    [
        (frozenset(), [("jiaojing", "lead"), ("community_desk", "assist")]),
        (frozenset({"jiaojing"}), [("community_desk", "lead")]),  # the next candidate leads
        (frozenset({"jiaojing", "community_desk"}), []),  # nobody left: the order goes up
    ],
)
def test_departments_that_returned_an_order_are_passed_over(
    ref: Jurisdiction, returned: frozenset[str], expected: list[tuple[str, str]]
) -> None:
    assert assignees(facts("illegal_parking"), "community", ref, returned) == expected


@pytest.mark.parametrize(
    ("requested_after", "extended", "granted"),
    [
        (timedelta(hours=1), False, True),
        (timedelta(days=7), False, True),  # exactly the time first allowed
        (timedelta(days=7, seconds=1), False, False),
        (timedelta(0), False, False),  # not later than now
        (timedelta(hours=1), True, False),  # only once
    ],
)
def test_extension_policy(requested_after: timedelta, extended: bool, granted: bool) -> None:
    resolve_by = AT + timedelta(days=7)
    refusal = extension_allowed(AT, resolve_by, resolve_by + requested_after, extended, max_factor=1.0)
    assert (refusal is None) == granted


def test_a_category_may_have_limits_of_its_own(ref: Jurisdiction) -> None:
    quick = TimeLimit(accept=timedelta(hours=2), resolve=timedelta(days=1))
    own: dict[str, dict[Urgency, TimeLimit]] = {"policy_inquiry": {"normal": quick}}
    assert time_limit("normal", ref, {}, "policy_inquiry", own) == quick
    assert time_limit("normal", ref, {}, "heating", own) == ref.time_limits["normal"]
    assert time_limit("urgent", ref, {}, "policy_inquiry", own) == ref.time_limits["urgent"]
