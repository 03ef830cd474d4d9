"""Notify's rules, as data: which event tells which audience, with which template."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# event type -> (audience, template) pairs. Residents are told only where a contact is known.
RULES: dict[str, tuple[tuple[str, str], ...]] = {
    "intake.contact.recorded": (("resident", "received"),),
    "intake.contact.merged": (("resident", "joined"),),
    "workorder.dispatched": (("department", "new_work"),),
    "workorder.accepted": (("resident", "accepted"),),
    "workorder.resolved": (("resident", "resolved"), ("resident", "follow_up")),
    "workorder.reopened": (("resident", "reopened"),),
    "workorder.escalated": (("supervisor", "escalated"),),
    "alert.sla_breached": (("supervisor", "sla_breached"),),
    "alert.cluster_detected": (("supervisor", "cluster_detected"),),
}

TEMPLATES: dict[str, str] = {
    "received": "您反映的问题已受理，工单号{work_order_id}，我们会尽快处理。",
    "joined": "您反映的问题已有工单{work_order_id}在办，已合并处理，进展会一并告知您。",
    "accepted": "您的工单{work_order_id}已由{department}签收，正在处理。",
    "resolved": "您的工单{work_order_id}已办结：{result}",
    "follow_up": "请问工单{work_order_id}反映的问题解决了吗？您是否满意？请回复。",
    "reopened": "您的工单{work_order_id}已重新交办，我们会继续跟进。",
    "new_work": "新工单{work_order_id}（{category_name}）请于{accept_by}前签收。",
    "escalated": "工单{work_order_id}由{from_level}提级至{to_level}：{reason}",
    "sla_breached": "工单{work_order_id}超时未{deadline}（{department}，时限{due}）",
    "cluster_detected": "{community}{category}类诉求集中：{count}件/{window_minutes}分钟",
}


@dataclass(frozen=True, slots=True)
class Planned:
    audience: str
    recipient: str
    template: str
    data: dict[str, Any]


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


def render(template: str, data: dict[str, Any]) -> str:
    return TEMPLATES[template].format_map(_Blank(data))


def plan(event_type: str, data: dict[str, Any], residents: list[str]) -> list[Planned]:
    """The notifications one event calls for; ``residents`` are the reporters we can reach."""
    planned: list[Planned] = []
    for audience, template in RULES.get(event_type, ()):
        if audience == "resident":
            if event_type != "workorder.accepted" or data.get("status") == "accepted":
                planned.extend(Planned("resident", reporter, template, data) for reporter in residents)
        elif audience == "department":
            planned.extend(
                Planned("department", d["department"], template, data | d)
                for d in data.get("dispatches") or []
            )
        else:
            level = data.get("to_level") or data.get("level") or "street"
            planned.append(Planned("supervisor", f"supervisor:{level}", template, data))
    return planned
