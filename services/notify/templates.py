"""Message templates, Chinese, one per purpose, rendered with Jinja2. The version travels with every
notification (``template`` is ``name@version``), so a message can always be traced to its text."""

from __future__ import annotations

from typing import Any

import jinja2

VERSION = "2026-11-21"

SOURCES: dict[str, str] = {
    # Residents
    "received": "【12345】您反映的问题已受理，工单号{{ work_order_id }}，我们会尽快处理。",
    "joined": "【12345】您反映的问题已有工单{{ work_order_id }}在办，已合并处理，进展会一并告知您。",
    "accepted": "【12345】您的工单{{ work_order_id }}已由{{ department }}签收，正在处理。",
    "resolved": "【12345】您的工单{{ work_order_id }}已办结{% if result %}：{{ result }}{% endif %}。",
    "follow_up": "【12345】工单{{ work_order_id }}反映的问题解决了吗？您是否满意？"
    "请回复：满意/基本满意/不满意。",
    "reopened": "【12345】您的工单{{ work_order_id }}已重新交办，我们会继续跟进。",
    # Departments
    "new_work": "新工单{{ work_order_id }}（{{ category_name }}，{{ role == 'lead' and '主办' or '协办' }}）"
    "请于{{ accept_by }}前签收，{{ resolve_by }}前办结。",
    "reminder": "督办：工单{{ work_order_id }}{{ overdue and '已超过' or '将到' }}"
    "{{ deadline == 'accept' and '签收' or '办结' }}时限（{{ due }}）。",
    "cancelled": "工单{{ work_order_id }}已收回：{{ reason }}",
    # Supervisors
    "escalated": "工单{{ work_order_id }}由{{ from_level }}提级至{{ to_level }}：{{ reason }}",
    "sla_breached": "工单{{ work_order_id }}超时未{{ deadline == 'accept' and '签收' or '办结' }}"
    "（{{ department }}，时限{{ due }}）",
    "cluster_detected": "预警：{{ community }}{{ window_minutes }}分钟内{{ count }}件{{ category }}类诉求",
}

_ENV = jinja2.Environment(undefined=jinja2.ChainableUndefined, autoescape=False)
_COMPILED = {name: _ENV.from_string(source) for name, source in SOURCES.items()}


def render(name: str, data: dict[str, Any]) -> str:
    return _COMPILED[name].render(**data)


def versioned(name: str) -> str:
    return f"{name}@{VERSION}"
