"""Fuzzed input through the decoding path of every service (Hypothesis, ``tools/fuzz.py``'s
strategies): whatever the bytes, a record becomes a typed event, a dead letter's reason or nothing,
never an exception; a bad message's reason names its field and never echoes a value; its dead
letter can always be written. ``FUZZ_EXAMPLES`` sets how many messages a property draws."""

from __future__ import annotations

import base64
import os

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.api import handlers as api
from services.dispatch import handlers as dispatch
from services.dispatch.routing import Policy
from services.escalation import handlers as escalation
from services.intake import handlers as intake
from services.intake.unit import IntakeUnit
from services.notify import handlers as notify
from shared import contract
from shared.contract import DeadLetter
from shared.messaging import Decoded, Delivery, Route, dead_letter
from shared.messaging.decoding import Decoder
from shared.reference import Jurisdiction, calendars_of
from shared.settings import Settings
from tools import fuzz

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def service_routes(ref: Jurisdiction) -> dict[str, tuple[list[Route], list[str]]]:
    """Each service's routes and strict topics, as its app wires them."""
    s = Settings()
    departments = [contract.department_topic(d.code) for d in ref.departments]
    return {
        "intake": (intake.routes(IntakeUnit(ref, s)), [contract.HOTLINE_CALLS, contract.GRID_REPORTS]),
        "dispatch": (
            dispatch.routes(Policy.of(ref, s)),
            [contract.DISPATCH_RESPONSES, contract.FEEDBACK, contract.ORDER_COMMANDS],
        ),
        "escalation": (escalation.routes(s.reminder_at, calendars_of(ref, s.time_counting)), []),
        "notify": (notify.routes(departments, s, ref.timezone), []),
        "api": (api.routes(departments, {d.code: d.name for d in ref.departments}), []),
    }


@pytest.fixture(scope="module")
def wiring(ref: Jurisdiction) -> dict[str, tuple[list[Route], list[str]]]:
    return service_routes(ref)


@pytest.fixture(scope="module")
def decoders(wiring: dict[str, tuple[list[Route], list[str]]]) -> dict[str, Decoder]:
    return {name: Decoder(routes, strict) for name, (routes, strict) in wiring.items()}


@pytest.fixture(scope="module")
def departments(ref: Jurisdiction) -> tuple[str, ...]:
    return tuple(d.code for d in ref.departments)


def test_the_fuzzed_targets_are_every_route_of_every_service(
    wiring: dict[str, tuple[list[Route], list[str]]],
) -> None:
    def topic(r: Route) -> str:
        department = contract.is_department_topic(r.topic)
        return fuzz.DEPARTMENT if department else r.topic

    routed = {(topic(r), r.event_type, r.model) for routes, _ in wiring.values() for r in routes}
    # Each (topic, type) once, with the model of a service that routes it (where two read one type
    # with models of their own, the stricter: the api's WorkOrderReassigned over WorkOrderData).
    assert {(t, k) for t, k, _ in routed} == {(t, k) for t, k, _ in fuzz.TARGETS}
    assert set(fuzz.TARGETS) <= routed
    strict = {t for _, topics in wiring.values() for t in topics}
    assert strict == fuzz.STRICT_TOPICS


def outcomes(decoders: dict[str, Decoder], delivery: Delivery) -> dict[str, Decoded | str | None]:
    """What each service that consumes the topic makes of the record; any exception fails."""
    return {name: d.decode(delivery) for name, d in decoders.items() if delivery.topic in d.topics}


def delivery_of(message: fuzz.Message) -> Delivery:
    key = message.key.decode("utf-8", "replace") if message.key is not None else None
    return Delivery(message.topic, 3, 1234, key, message.raw)


def check_dead_letter(delivery: Delivery, reason: str) -> None:
    """The dead letter is written whatever the bytes and the key, and keeps them."""
    parked = dead_letter(delivery, reason, "whistle/test")
    # Its outbox row's key fits its column, with no NUL (which PostgreSQL's text cannot hold).
    assert parked.key is None or (len(parked.key) <= 255 and "\x00" not in parked.key)
    letter = DeadLetter.model_validate(orjson.loads(parked.payload)["data"])
    kept = base64.b64decode(letter.raw) if letter.raw_encoding == "base64" else letter.raw.encode()
    assert kept == delivery.raw and letter.error == reason and letter.original_key == delivery.key


@FUZZ
@given(data=st.data())
def test_a_bad_message_is_a_dead_letter_naming_its_field(
    decoders: dict[str, Decoder], departments: tuple[str, ...], data: st.DataObject
) -> None:
    message = data.draw(fuzz.bad_messages(departments).filter(lambda m: m.field is not None))
    delivery = delivery_of(message)
    results = outcomes(decoders, delivery)
    assert results, f"nobody consumes {message.topic}"
    if message.kind == "refused by rules":  # well-formed: the service's rules refuse it later
        assert all(isinstance(r, Decoded) for r in results.values()), results
        return
    reasons = {name: r for name, r in results.items() if isinstance(r, str)}
    assert reasons, f"{message.kind}: nobody dead-letters it ({results})"
    for name, reason in reasons.items():
        assert fuzz.names_field(reason, message.field or ""), (name, message.kind, message.field, reason)
        if not reason.startswith("unknown event type"):  # the type is named, it is no one's data
            assert fuzz.SECRET not in reason, (name, reason)
        check_dead_letter(delivery, reason)


@FUZZ
@given(data=st.data())
def test_absurd_but_valid_messages_are_decoded(decoders: dict[str, Decoder], data: st.DataObject) -> None:
    message = data.draw(st.one_of(fuzz.absurd_calls(), fuzz.refused_by_rules()))
    results = outcomes(decoders, delivery_of(message))
    assert results and all(isinstance(r, Decoded) for r in results.values()), results


@FUZZ
@given(
    topic=st.sampled_from([*sorted({t for t, _, _ in fuzz.TARGETS} - {fuzz.DEPARTMENT}), "dispatch.heat.v1"]),
    raw=st.one_of(st.binary(max_size=2000), st.text().map(str.encode)),
    key=st.one_of(st.none(), st.binary(max_size=20)),
)
def test_any_bytes_at_all_are_decoded_or_dead_lettered_never_raised(
    decoders: dict[str, Decoder], topic: str, raw: bytes, key: bytes | None
) -> None:
    delivery = Delivery(topic, 0, 7, key.decode("utf-8", "replace") if key is not None else None, raw)
    for reason in outcomes(decoders, delivery).values():
        if isinstance(reason, str):
            check_dead_letter(delivery, reason)
