"""The event contract as an AsyncAPI 3.0 document, generated from the pydantic models of
``shared.contract`` and committed as docs/asyncapi.json, so that a change to a topic, a type or a
field shows in review. ``python -m tools.asyncapi`` writes it; ``--check`` says whether it is
current (a unit test asks the same), as ``python -m services.api.openapi`` does for the HTTP API.

Inbound and internal messages come from the module's registries (``INBOUND``, ``INTERNAL``), so
that a type added there is in the document at the next run. What the project publishes has no
registry in the module: ``OUTBOUND`` below lists every type docs/contract.md names, the lifecycle
types taken from the api's list of them (it reads every one)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared import contract
from shared.contract import CloudEvent
from shared.documents import write_or_check

DOCUMENT = Path(__file__).resolve().parents[1] / "docs" / "asyncapi.json"
COMMAND = "python -m tools.asyncapi"
SCHEMAS = "#/components/schemas/"
DEPARTMENT_CHANNEL = contract.department_topic("{department}")


def _outbound() -> dict[tuple[str, str], type[BaseModel]]:
    # Imported here: the api's module is the code's list of lifecycle types, but the rest of the
    # generator needs nothing of the api.
    from services.api.handlers import LIFECYCLE

    return {
        (DEPARTMENT_CHANNEL, "dispatch.assigned"): contract.DispatchAssigned,
        (DEPARTMENT_CHANNEL, "dispatch.reminder"): contract.DispatchReminder,
        (DEPARTMENT_CHANNEL, "dispatch.cancelled"): contract.DispatchCancelled,
        (DEPARTMENT_CHANNEL, "dispatch.return_refused"): contract.DispatchReturnRefused,
        **{(contract.WORKORDER_EVENTS, kind): model for kind, model in LIFECYCLE.items()},
        (contract.ALERTS, "alert.cluster_detected"): contract.ClusterDetected,
        (contract.ALERTS, "alert.sla_breached"): contract.SlaBreached,
        (contract.NOTIFICATIONS, "notification.sent"): contract.NotificationRecord,
        (contract.NOTIFICATIONS, "notification.failed"): contract.NotificationRecord,
        (contract.DEADLETTER, "deadletter.recorded"): contract.DeadLetter,
    }


# The Kafka key and a line about each topic, from docs/contract.md (the models do not say them).
# A topic missing here still gets its channel: internal topics are keyed by the work order id
# (docs/contract.md says so of all of them); any other says where to look.
TOPICS: dict[str, tuple[str, str]] = {
    contract.HOTLINE_CALLS: ("call_id", "A 12345 call, chat or web message."),
    contract.GRID_REPORTS: ("report_id", "An issue a grid worker found (网格发现)."),
    contract.DISPATCH_RESPONSES: ("work_order_id", "What a department does with a dispatch."),
    contract.FEEDBACK: ("work_order_id", "The resident's answer to the follow-up call (回访)."),
    DEPARTMENT_CHANNEL: ("work_order_id", "Work for one department: one topic per department code."),
    contract.WORKORDER_EVENTS: ("work_order_id", "The life of every work order."),
    contract.ALERTS: ("the alert's area: the community, else the street, else `unplaced`", "Alerts."),
    contract.NOTIFICATIONS: ("work_order_id", "Notifications sent or failed."),
    contract.DEADLETTER: ("the original message's key", "Every inbound message that cannot be taken."),
    contract.INTAKE_ORDERS: ("work_order_id", "intake → dispatch: a new order to dispatch."),
    contract.INTAKE_CONTACTS: ("work_order_id", "intake → notify: who to tell, in clear (personal data)."),
    contract.ESCALATION_COMMANDS: ("work_order_id", "escalation → dispatch: commands on an order."),
    contract.DISPATCH_DEADLINES: ("work_order_id", "dispatch → escalation: extensions granted."),
    contract.ORDER_COMMANDS: ("work_order_id", "the api (the centre) → dispatch: commands on an order."),
}


def _topic(topic: str, internal: bool) -> tuple[str, str]:
    default = ("work_order_id", "") if internal else ("see docs/contract.md", "")
    return TOPICS.get(topic, default)


def _messages() -> list[tuple[str, str, type[BaseModel], str]]:
    """(topic, type, model, kind) for every message; kind is inbound, outbound or internal."""
    found: list[tuple[str, str, type[BaseModel], str]]
    found = [(t, k, m, "inbound") for (t, k), m in contract.INBOUND.items()]
    found += [(t, k, m, "outbound") for (t, k), m in _outbound().items()]
    found += [(t, k, m, "internal") for (t, k), m in contract.INTERNAL.items()]
    return found


def _summary(model: type[BaseModel]) -> str:
    doc = model.__doc__ or ""
    return " ".join(doc.split("\n\n")[0].split())


def _headers(kind: str, published_by_us: bool) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "content-type": {"const": contract.CONTENT_TYPE},
            "ce_type": {
                "const": kind,
                "description": "the event's type, as CloudEvents' binary mode names it",
            },
        },
    }
    if published_by_us:  # the contract requires both on what the project publishes, of others nothing
        schema["required"] = ["content-type", "ce_type"]
    return schema


def schema() -> dict[str, Any]:
    messages = _messages()
    models = sorted({m for _, _, m, _ in messages} | {CloudEvent}, key=lambda m: m.__name__)
    refs, defs = models_json_schema([(m, "validation") for m in models], ref_template=SCHEMAS + "{model}")
    schemas: dict[str, Any] = defs["$defs"]
    ref = {model: refs[(model, "validation")]["$ref"] for model in models}

    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    components: dict[str, Any] = {}
    for topic, kind, model, direction in messages:
        if kind in components and components[kind]["x-model"] != model.__name__:
            raise ValueError(
                f"type {kind!r} has two models: {components[kind]['x-model']} and {model.__name__}"
            )
        key, about = _topic(topic, direction == "internal")
        components[kind] = {
            "name": kind,
            "title": f"{kind} ({model.__name__})",
            **({"summary": summary} if (summary := _summary(model)) else {}),
            "contentType": contract.CONTENT_TYPE,
            "headers": _headers(kind, direction != "inbound"),
            "payload": {
                "allOf": [
                    {"$ref": ref[CloudEvent]},
                    {
                        "type": "object",
                        "required": ["type", "data"],
                        "properties": {"type": {"const": kind}, "data": {"$ref": ref[model]}},
                    },
                ]
            },
            "bindings": {"kafka": {"key": {"type": "string", "description": key}, "bindingVersion": "0.5.0"}},
            "x-model": model.__name__,
        }
        channel = channels.setdefault(
            topic,
            {
                "address": topic,
                "title": topic,
                "description": about,
                "messages": {},
                "x-direction": direction,
            },
        )
        channel["messages"][kind] = {"$ref": f"#/components/messages/{kind}"}
        if topic == DEPARTMENT_CHANNEL:
            channel["parameters"] = {
                "department": {"description": "a department code of the jurisdiction, lowercase [a-z0-9_]+"}
            }

    for topic, channel in list(channels.items()):
        # Ids without braces: AsyncAPI's ids are [A-Za-z0-9._-]; the address keeps the parameter.
        name = topic.replace("{", "").replace("}", "")
        channels[name] = channels.pop(topic)
        direction = channel["x-direction"]
        # The document describes the project as one application: the topics between its services
        # are both sent and received.
        actions = (
            ["send", "receive"]
            if direction == "internal"
            else ["receive" if direction == "inbound" else "send"]
        )
        for action in actions:
            operations[f"{action}.{name}"] = {
                "action": action,
                "channel": {"$ref": f"#/channels/{name}"},
                "messages": [
                    {"$ref": f"#/channels/{name}/messages/{kind}"} for kind in sorted(channel["messages"])
                ],
            }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Whistle event contract",
            "version": "1",
            "description": (
                "Every topic of Whistle, the external contract (docs/contract.md) and the internal "
                "topics between the services, generated from the pydantic models of shared/contract.py "
                f"by `{COMMAND}`. Every message is a CloudEvent 1.0 in structured JSON mode. "
                "x-direction says whose the topic is: inbound (published by others), outbound "
                "(published by the project) or internal (ours to change)."
            ),
        },
        "defaultContentType": contract.CONTENT_TYPE,
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": components},
    }


def main(argv: list[str]) -> int:
    return write_or_check(DOCUMENT, schema(), COMMAND, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
