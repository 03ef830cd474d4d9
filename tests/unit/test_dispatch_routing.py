"""Dispatch's routing (starting level, who is assigned, deadlines) and the dispatch state machine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from services.dispatch.dispatches import TRANSITIONS, InvalidTransition, respond
from services.dispatch.routing import (
    OrderFacts,
    Policy,
    assignees,
    deadlines,
    extension_allowed,
    initial_level,
    onward,
    time_limit,
)
from shared.contract import Level, RequestType, Urgency
from shared.reference import Jurisdiction, TimeLimit
from shared.settings import Settings

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
        # The district's own desk at the district (it was the street's, which had often said no).
        (facts("other"), "district", [("district_desk", "lead")]),
        (facts("heating", community=None), "street", [("street_desk", "lead")]),
        (facts("no_such_category"), "community", [("community_desk", "lead")]),
    ],
)
def test_assignees(
    ref: Jurisdiction, order: OrderFacts, level: Level, expected: list[tuple[str, str]]
) -> None:
    assert assignees(order, level, ref) == expected


def _returned(by_level: dict[str, set[str]]) -> Callable[[str], frozenset[str]]:
    return lambda level: frozenset(by_level.get(level, ()))


@pytest.mark.parametrize(
    ("order", "level", "returned", "expected"),
    [
        # Nobody returned it: the duty list at that level.
        (facts("heating"), "community", {}, ("community", [("heat", "lead")])),
        # heat returned at the community: the street's duty list, heat leading again (a new level).
        (
            facts("heating"),
            "community",
            {"community": {"heat"}},
            ("street", [("heat", "lead"), ("street_desk", "assist")]),
        ),
        # The lead returned at the street: the next candidate there leads.
        (facts("heating"), "street", {"street": {"heat"}}, ("street", [("street_desk", "lead")])),
        # Everyone at the district returned it: the district's desk, not the street's.
        (
            facts("water_supply"),
            "district",
            {"district": {"zhujian", "water"}},
            ("district", [("district_desk", "lead")]),
        ),
        # The district's desk returned it too: nobody is left; a person decides.
        (facts("water_supply"), "district", {"district": {"zhujian", "water", "district_desk"}}, None),
        (facts("other"), "district", {"district": {"district_desk"}}, None),
    ],
)
def test_onward(
    ref: Jurisdiction,
    order: OrderFacts,
    level: Level,
    returned: dict[str, set[str]],
    expected: tuple[Level, list[tuple[str, str]]] | None,
) -> None:
    assert onward(order, level, ref, _returned(returned)) == expected


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


# ---- 诉求类型: a normal order's time to resolve -------------------------------------------------

FRIDAY = datetime(2026, 9, 25, 10, 0, tzinfo=timezone(timedelta(hours=8)))  # before the National Day week


def policy_of(ref: Jurisdiction, **settings: object) -> Policy:
    return Policy.of(ref, Settings.model_validate(settings))


@pytest.mark.parametrize(
    ("urgency", "category", "request_type", "accept_by", "resolve_by"),
    [
        # Working days: Sat 9-26 off, Sun 9-27 a make-up day (调休), 10-01..07 holidays, Sat 10-10 worked.
        ("normal", "heating", "inquiry", FRIDAY + timedelta(hours=24), datetime(2026, 9, 28, 10, 0)),
        ("normal", "heating", "help", FRIDAY + timedelta(hours=24), datetime(2026, 10, 14, 10, 0)),
        ("normal", "noise", "complaint", FRIDAY + timedelta(hours=24), datetime(2026, 10, 21, 10, 0)),
        ("normal", "heating", "report", FRIDAY + timedelta(hours=24), datetime(2026, 10, 21, 10, 0)),
        ("normal", "heating", "suggestion", FRIDAY + timedelta(hours=24), datetime(2026, 10, 14, 10, 0)),
        # Emergencies and urgent orders keep their shorter limits, on their own clock.
        ("emergency", "gas", "complaint", FRIDAY + timedelta(minutes=30), FRIDAY + timedelta(hours=24)),
        ("urgent", "heating", "inquiry", FRIDAY + timedelta(hours=2), FRIDAY + timedelta(days=3)),
        # No type (an order opened before them): the urgency's limits, as before.
        ("normal", "heating", None, FRIDAY + timedelta(hours=24), FRIDAY + timedelta(days=7)),
    ],
)
def test_a_normal_orders_time_to_resolve_follows_its_request_type_in_working_days(
    ref: Jurisdiction,
    urgency: Urgency,
    category: str,
    request_type: RequestType | None,
    accept_by: datetime,
    resolve_by: datetime,
) -> None:
    got = policy_of(ref).deadlines(FRIDAY, urgency, category, False, request_type)
    assert got == (accept_by, resolve_by.replace(tzinfo=resolve_by.tzinfo or FRIDAY.tzinfo))


def test_request_type_limits_are_configurable_and_combine_with_the_other_settings(ref: Jurisdiction) -> None:
    policy = policy_of(
        ref,
        request_type_time_limits={"inquiry": "P1D"},
        category_time_limits={"policy_inquiry": {"normal": {"accept": "PT2H", "resolve": "PT4H"}}},
        time_counting={"normal": "working"},
    )
    # Only the named type changes; the others keep their defaults.
    assert policy.limits_by_request_type["inquiry"] == timedelta(days=1)
    assert policy.limits_by_request_type["complaint"] == timedelta(days=15)
    # A category's own normal limit wins over the type: the operator's exception.
    assert policy.deadlines(FRIDAY, "normal", "policy_inquiry", False, "inquiry") == (
        FRIDAY + timedelta(hours=2),
        FRIDAY + timedelta(hours=4),
    )
    # TIME_COUNTING counts the accept limit; the type's limit is in working days whatever it says.
    saturday = FRIDAY + timedelta(days=1)
    accept_by, resolve_by = policy.deadlines(saturday, "normal", "heating", False, "inquiry")
    assert accept_by == datetime(2026, 9, 28, 0, 0, tzinfo=FRIDAY.tzinfo)  # Sunday 9-27 is worked
    assert resolve_by == datetime(2026, 9, 28, 0, 0, tzinfo=FRIDAY.tzinfo)
    # A reopened order (重办) has half its type's time: 7.5 working days, Saturday 10-10 worked.
    assert policy.deadlines(FRIDAY, "normal", "heating", True, "complaint")[1] == datetime(
        2026, 10, 10, 22, 0, tzinfo=FRIDAY.tzinfo
    )
