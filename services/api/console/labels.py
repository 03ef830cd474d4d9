"""The console's words: the contract's codes in Chinese (with English where a code is shown), and
durations as people say them. No I/O."""

from __future__ import annotations

from datetime import datetime, timedelta

ORDER_STATUS = {
    "new": "新建",
    "dispatched": "已派单",
    "accepted": "已签收",
    "resolved": "已办结",
    "closed": "已关闭",
    "merged": "已并单",
}
DISPATCH_STATUS = {
    "assigned": "待签收",
    "accepted": "办理中",
    "ended": "已结束",
    "resolved": "已办结",
    "cancelled": "已撤回",
}
LEVEL = {"property": "物业", "grid": "网格", "community": "社区", "street": "街道", "district": "区县"}
URGENCY = {"emergency": "紧急", "urgent": "加急", "normal": "一般"}
ROLE = {"lead": "主办", "assist": "协办"}
SATISFACTION = {"satisfied": "满意", "basically_satisfied": "基本满意", "dissatisfied": "不满意"}
REJECT_REASONS = {
    "not_our_responsibility": "非本部门职责",
    "insufficient_info": "信息不足",
    "duplicate": "重复工单",
    "other": "其他",
}
STEP = {
    "accept": "签收",
    "reject": "退单",
    "progress": "进展",
    "extend": "延期",
    "resolve": "办结",
}
EVENT = {
    "workorder.created": "受理立单",
    "workorder.merged": "并单",
    "workorder.dispatched": "派单",
    "workorder.accepted": "签收",
    "workorder.escalated": "升级",
    "workorder.reassigned": "改派",
    "workorder.resolved": "办结",
    "workorder.reopened": "重办",
    "workorder.closed": "关闭",
    "workorder.return_requested": "申请退单",
    "workorder.return_approved": "退单通过",
    "workorder.return_refused": "退单驳回",
    "dispatch.accepted": "签收",
    "dispatch.rejected": "退单",
    "dispatch.progress": "进展",
    "dispatch.extension_requested": "延期申请",
    "dispatch.resolved": "办结",
    "order.reassign.requested": "改派",
    "alert.sla_breached": "超时告警",
    "alert.cluster_detected": "工单预警",
}
DEADLINE = {"accept": "签收时限", "resolve": "办结时限"}
CLOSURE = {
    "rated": "居民评价后关闭",
    "unrated": "回访未评价",
    "answered_directly": "直接答复",
    "handled_on_site": "网格员当场处置",
}
ROLE_NAME = {"centre": "12345 中心", "channel": "受理渠道"}


def duration(span: timedelta) -> str:
    """3 天 2 小时 / 2 小时 5 分 / 4 分 / 12 秒: the two largest units that matter."""
    seconds = max(int(span.total_seconds()), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} 天 {hours} 小时" if hours else f"{days} 天"
    if hours:
        return f"{hours} 小时 {minutes} 分" if minutes else f"{hours} 小时"
    if minutes:
        return f"{minutes} 分"
    return f"{secs} 秒"


def clock(at: datetime | None, with_date: bool = True) -> str:
    """A time in the zone it is given in: 12-03 09:41 (or 09:41:07 without the date)."""
    if at is None:
        return "–"
    return at.strftime("%m-%d %H:%M") if with_date else at.strftime("%H:%M:%S")


def percent(rate: float | None) -> str:
    return "–" if rate is None else f"{rate * 100:.1f}%"
