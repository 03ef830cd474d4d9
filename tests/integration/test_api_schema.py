"""Schemathesis against the live api on the test stack: every operation of the schema the service
serves (/openapi.json), with generated valid and invalid input, a bounded number of examples each,
under a ``centre``, a ``department:heat`` and a ``channel`` key. No answer is a server error, and
every answer's status, content type and body are those the schema documents for it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.schemas import OpenApiSchema

from tools.stack import Stack

pytestmark = pytest.mark.integration
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 25  # per operation and key: the three keys' runs take well under a minute together
SETTINGS = hypothesis.settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # nothing kept between runs (and no .hypothesis folder in the work tree)
    derandomize=False,
    phases=[Phase.explicit, Phase.generate],  # a failure is reported as found, not shrunk
    suppress_health_check=list(HealthCheck),
    report_multiple_bugs=False,
)


@pytest.fixture(scope="module")
def keys(stack: Stack) -> dict[str, str]:
    """The development keys the stack wrote for the api, in clear."""
    return json.loads((stack.home / "api-keys.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def base(stack: Stack) -> str:
    return f"http://127.0.0.1:{stack.port('api')}"


@pytest.fixture(scope="module")
def schema(base: str) -> OpenApiSchema:
    return schemathesis.openapi.from_url(f"{base}/openapi.json")


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@pytest.fixture(scope="module")
def known(base: str, keys: dict[str, str], session: requests.Session) -> dict[str, list[str]]:
    """Real values for path parameters and the posted ``service_code``, from the stack's own data,
    so that some cases reach a found resource and a taken request (random ones hardly ever do)."""

    def items(path: str, key: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {keys[key]}"} if key else {}
        answer = session.get(f"{base}{path}", headers=headers, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()

    return {
        "service_code": [s["service_code"] for s in items("/open311/v2/services.json")],
        "service_request_id": [r["service_request_id"] for r in items("/open311/v2/requests.json")][:50],
        "work_order_id": [o["id"] for o in items("/v1/orders?limit=50", "centre")["items"]],
        "dispatch_id": [
            d["dispatch_id"] for d in items("/v1/dispatches?limit=50", "department:heat")["items"]
        ],
    }


@st.composite
def with_known(
    draw: st.DrawFn, cases: st.SearchStrategy[Case[Any]], known: dict[str, list[str]]
) -> Case[Any]:
    """A generated case, half of the time with real ids in its path (GETs only: a POST with a real
    id would change what other tests see) and a real ``service_code`` in its body."""
    case = draw(cases)
    if not draw(st.booleans()):
        return case
    if case.method.upper() == "GET":
        for name in list(case.path_parameters or {}):
            if known.get(name):
                case.path_parameters[name] = draw(st.sampled_from(known[name]))
    if isinstance(case.body, dict) and "service_code" in case.body:
        case.body["service_code"] = draw(st.sampled_from(known["service_code"]))
    return case


def check_operation(
    operation: APIOperation[Any, Any, Any, Any],
    base: str,
    key: str,
    session: requests.Session,
    known: dict[str, list[str]],
) -> None:
    """``EXAMPLES`` generated cases of ``operation``, valid and invalid, each sent with ``key``."""
    cases = st.one_of(
        with_known(operation.as_strategy(GenerationMode.POSITIVE), known),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @SETTINGS
    @given(case=cases)
    def run(case: Case[Any]) -> None:
        case.call_and_validate(
            base_url=base,
            session=session,
            headers={"Authorization": f"Bearer {key}"},
            checks=CHECKS,
            timeout=10,
        )

    run()


@pytest.mark.parametrize("role", ["centre", "department:heat", "channel"])
def test_every_answer_keeps_to_the_schema(
    stack: Stack,
    schema: OpenApiSchema,
    base: str,
    keys: dict[str, str],
    session: requests.Session,
    known: dict[str, list[str]],
    role: str,
) -> None:
    failures: dict[str, str] = {}
    operations = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()  # the schema itself is broken
        operations.append(result.ok())
    assert len(operations) >= 15, [op.label for op in operations]
    for operation in operations:
        try:
            check_operation(operation, base, keys[role], session, known)
        except Exception as exc:  # every operation is tried; all failures are reported together
            failures[operation.label] = str(exc)
    assert not failures, "\n\n".join(f"== {label} ==\n{text}" for label, text in failures.items())
