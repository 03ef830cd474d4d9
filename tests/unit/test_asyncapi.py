"""The AsyncAPI document (docs/asyncapi.json) is the contract's models, and holds together."""

from __future__ import annotations

import inspect
import re
from typing import Any

import jsonschema_rs
import pytest

from shared import contract
from shared.documents import render
from tools import asyncapi

DOCUMENT = asyncapi.schema()


def test_the_committed_document_is_the_models() -> None:
    committed = asyncapi.DOCUMENT.read_text(encoding="utf-8")
    assert committed == render(DOCUMENT), f"docs/asyncapi.json is stale: run {asyncapi.COMMAND}"


def test_every_model_of_the_contract_is_in_it() -> None:
    # An outbound model added to shared/contract.py but not to tools.asyncapi.OUTBOUND fails here.
    models = {
        name
        for name, obj in vars(contract).items()
        if inspect.isclass(obj) and issubclass(obj, contract._Data) and not name.startswith("_")
    }
    assert models <= DOCUMENT["components"]["schemas"].keys()


def _messages_on(topic: str) -> set[str]:
    channel = next(c for c in DOCUMENT["channels"].values() if c["address"] == topic)
    return set(channel["messages"])


def test_every_registered_type_is_a_message_on_its_topic() -> None:
    for topic, kind in [*contract.INBOUND, *contract.INTERNAL]:
        assert kind in _messages_on(topic), (topic, kind)


def test_every_lifecycle_type_the_contract_names_is_on_the_lifecycle_topic() -> None:
    text = (asyncapi.DOCUMENT.parent / "contract.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`(workorder\.[a-z_]+)`", text))
    assert named and named <= _messages_on(contract.WORKORDER_EVENTS)
    department = _messages_on("dispatch.{department}.v1")
    assert {
        "dispatch.assigned",
        "dispatch.reminder",
        "dispatch.cancelled",
        "dispatch.return_refused",
    } <= department
    assert DOCUMENT["channels"]["dispatch.department.v1"]["parameters"].keys() == {"department"}


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_every_reference_resolves() -> None:
    for ref in _refs(DOCUMENT):
        node: Any = DOCUMENT
        for part in ref.removeprefix("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        assert isinstance(node, dict), ref


def _validator(kind: str) -> jsonschema_rs.Draft202012Validator:
    return jsonschema_rs.Draft202012Validator({**DOCUMENT, "$ref": f"#/components/messages/{kind}/payload"})


def _event(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": "e-1",
        "source": "hotline/yantai-12345",
        "type": kind,
        "time": "2026-11-21T08:15:00+08:00",
        "data": data,
    }


@pytest.mark.parametrize(
    ("kind", "data", "valid"),
    [
        ("hotline.call.received", {"call_id": "1", "channel": "phone", "content": "暖气不热"}, True),
        ("hotline.call.received", {"call_id": "1", "channel": "fax", "content": "暖气不热"}, False),
        ("grid.issue.reported", {"report_id": "r", "grid_id": "g", "worker_id": "w"}, False),
        ("feedback.expired", {"work_order_id": "WO-H-1", "feedback_by": "2026-11-24T08:00:00+08:00"}, True),
    ],
)
def test_a_message_schema_takes_what_the_model_takes(kind: str, data: dict[str, Any], valid: bool) -> None:
    assert _validator(kind).is_valid(_event(kind, data)) is valid


def test_a_message_schema_names_its_type() -> None:
    event = _event("grid.issue.reported", {"call_id": "1", "channel": "phone", "content": "暖气不热"})
    assert not _validator("hotline.call.received").is_valid(event)
