"""The monthly report written out: CSV for spreadsheets (one figure a row) and a self-contained HTML
page (inline CSS, SVG charts drawn here; nothing loaded from anywhere). Pure: a ``Report`` in, text
out. No personal data: the report holds counts, names of places, categories and departments."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

from .reports import REQUEST_TYPES, UNKNOWN, Figures, Report

# ---- labels -------------------------------------------------------------------------------------

TYPE_LABELS = {
    "inquiry": "咨询 inquiry",
    "help": "求助 help",
    "complaint": "投诉 complaint",
    "report": "举报 report",
    "suggestion": "建议 suggestion",
    UNKNOWN: "未知 unknown",
}
LEVEL_LABELS = {
    "property": "物业 property",
    "grid": "网格 grid",
    "community": "社区 community",
    "street": "街道 street",
    "district": "区 district",
    UNKNOWN: "未知 unknown",
}
CLOSURE_LABELS = {
    "rated": "已评价 rated",
    "unrated": "未评价 unrated",
    "answered_directly": "直接答复 answered directly",
    "handled_on_site": "现场处置 handled on site",
    "open": "未办结 open",
}
OUTCOME_LABELS = {
    "approved": "审核通过 approved",
    "approved_automatically": "逾期自动通过 approved automatically",
    "refused": "审核驳回 refused",
    "not_reviewed": "未审核 not reviewed",
}
REASON_LABELS = {
    "not_our_responsibility": "非本单位职责 not ours",
    "insufficient_info": "信息不全 insufficient info",
    "duplicate": "重复 duplicate",
    "other": "其他 other",
    UNKNOWN: "未记录 not recorded",
}
ESCALATION_LABELS = {
    "accept_overdue": "签收超时 not signed for in time",
    "resolve_overdue": "办结超时 not resolved in time",
    "dissatisfied_twice": "两次不满意 dissatisfied twice",
    "all_returned": "均已退单 all returned",
    "other": "其他 other",
}
RATES = (
    ("direct_answer_rate", "直接答复率", "direct answers"),
    ("response_rate", "响应率", "response"),
    ("resolution_rate", "解决率", "resolution"),
    ("satisfaction_rate", "满意率", "satisfaction"),
)
TYPE_COLOURS = {
    "inquiry": "#4e79a7",
    "help": "#59a14f",
    "complaint": "#e15759",
    "report": "#f28e2b",
    "suggestion": "#b07aa1",
    UNKNOWN: "#bab0ac",
}
RATE_COLOURS = {"response_rate": "#4e79a7", "resolution_rate": "#59a14f", "satisfaction_rate": "#f28e2b"}


# ---- CSV ------------------------------------------------------------------------------------------

CSV_HEADER = ("scope", "name", "figure", "key", "value")


def to_csv(r: Report) -> str:
    """One figure a row: ``scope`` (total, district, street, community, department, hot_spot),
    ``name``, ``figure``, ``key`` (the category, type, rung… of a breakdown, else empty), ``value``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    writer.writerows(_figure_rows("total", "", r.total))
    for kind, by_name in r.scopes.items():
        for name, f in by_name.items():
            writer.writerows(_figure_rows(kind, name, f))
    for h in r.hot_spots:
        name = f"{h.category}/{h.community}"
        for key, value in h.as_dict().items():
            writer.writerow(("hot_spot", name, key, "", _cell(value)))
    return out.getvalue()


def _figure_rows(scope: str, name: str, f: Figures) -> Iterable[tuple[str, str, str, str, str]]:
    for figure, value in f.as_dict().items():
        if isinstance(value, dict):
            for key, n in value.items():
                yield scope, name, figure, key, _cell(n)
        else:
            yield scope, name, figure, "", _cell(value)


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


# ---- HTML -----------------------------------------------------------------------------------------


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def hours(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} h"


def to_html(r: Report) -> str:
    t = r.total
    cards = [
        ("受理工单", "orders", f"{t.orders:,}", f"并单 merged {t.merged:,}"),
        *[(zh, en, percent(getattr(t, key)), _rate_basis(t, key)) for key, zh, en in RATES],
        ("超期未办结", "open past deadline", f"{t.open_past_deadline:,}", "in the resolution denominator"),
        ("提级", "escalations", f"{t.escalations:,}", f"退单 returns {t.returns:,}"),
        ("签收中位时长", "median to accept", hours(t.median_hours_to_accept), "主办单位 lead dispatches"),
        ("办结中位时长", "median to resolve", hours(t.median_hours_to_resolve), "自受理起 from the report"),
    ]
    sections = [
        _section(
            "工单分类 Orders by category and type",
            _stacked_bars(t, r.categories)
            + _legend([(TYPE_LABELS[k], TYPE_COLOURS[k]) for k in (*REQUEST_TYPES, UNKNOWN)]),
        ),
        _section(
            "各街道三率 The three rates by street",
            _rate_bars(r.scopes.get("street", {}))
            + _legend([(f"{zh} {en}", RATE_COLOURS[k]) for k, zh, en in RATES if k in RATE_COLOURS]),
        ),
        _section(
            "每月一题候选 Hot spots: the problems that recur most",
            _hot_spots(r),
        ),
        _row(
            _section(
                "提级 Escalations by rung",
                _column_bars(_labelled(t.escalations_by_rung, LEVEL_LABELS), "#e15759")
                + _pairs_table("原因 reason", _labelled(t.escalations_by_reason, ESCALATION_LABELS)),
            ),
            _section(
                "退单与审核 Returns and their review",
                _column_bars(_labelled(t.returns_by_outcome, OUTCOME_LABELS), "#76b7b2")
                + _pairs_table("退单原因 reason", _labelled(t.returns_by_reason, REASON_LABELS)),
            ),
        ),
        _row(
            _section(
                "办结方式 How orders closed",
                _column_bars(_labelled(t.by_closure, CLOSURE_LABELS), "#9c755f"),
            ),
            _section(
                "诉求类型 Orders by type",
                _column_bars(_labelled(t.by_type, TYPE_LABELS), "#4e79a7"),
            ),
        ),
        _section("各区 By district", _scope_table(r.scopes.get("district", {}), {})),
        _section("各街道 By street", _scope_table(r.scopes.get("street", {}), {})),
        _section(
            "各部门 By department", _scope_table(_busiest(r.scopes.get("department", {})), r.departments)
        ),
        _section(
            f"各社区 By community (前 the busiest {TOP_COMMUNITIES}; 全部见 all in the CSV)",
            _scope_table(_busiest(r.scopes.get("community", {}), TOP_COMMUNITIES), {}),
        ),
    ]
    cutoff = r.cutoff.strftime("%Y-%m-%d %H:%M %z")
    return f"""<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>12345 月度报告 Monthly report {escape(r.month)}</title>
<style>{STYLE}</style>
</head>
<body>
<header>
<h1>12345 月度报告 <span>Monthly report</span> {escape(r.month)}</h1>
<p class="note">截至 As at {escape(cutoff)} · 本月受理的工单 orders first reported in the month ·
超期未办结计入分母 orders still open past their deadline count in the denominators</p>
</header>
<section class="cards">{"".join(_card(*c) for c in cards)}</section>
{"".join(sections)}
<footer>Whistle · 公式见 formulas in docs/reports.md · 不含个人信息 no personal data</footer>
</body>
</html>
"""


STYLE = """
:root { --ink: #1f2933; --muted: #616e7c; --line: #e4e7eb; --bg: #f7f8fa; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1180px; padding: 24px 28px 40px; color: var(--ink); background: var(--bg);
  font: 14px/1.5 "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "PingFang SC",
  "Microsoft YaHei", sans-serif; }
h1 { font-size: 26px; margin: 0 0 4px; } h1 span { color: var(--muted); font-weight: 400; }
h2 { font-size: 17px; margin: 0 0 12px; }
.note { color: var(--muted); margin: 0 0 18px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(200px, 1fr)); gap: 12px;
  margin-bottom: 18px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
.card .label { color: var(--muted); font-size: 13px; }
.card .value { font-size: 28px; font-weight: 700; margin: 2px 0; }
.card .basis { color: var(--muted); font-size: 12px; }
.row { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
@media (max-width: 900px) { .row { grid-template-columns: 1fr; } }
section.panel { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 16px 18px;
  margin-bottom: 16px; overflow-x: auto; }
svg text { font-size: 12px; fill: var(--ink); }
svg .muted { fill: var(--muted); }
.legend { display: flex; flex-wrap: wrap; gap: 6px 16px; margin-top: 6px; color: var(--muted); }
.legend i { display: inline-block; width: 12px; height: 12px; border-radius: 2px; margin-right: 5px;
  vertical-align: -1px; }
table { border-collapse: collapse; width: 100%; margin-top: 8px; }
th, td { padding: 5px 6px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
th { white-space: normal; vertical-align: bottom; }
th:first-child, td:first-child, th.text, td.text { text-align: left; }
th { color: var(--muted); font-weight: 600; font-size: 11px; }
td { font-size: 13px; font-variant-numeric: tabular-nums; }
.up { color: #c0392b; } .down { color: #2e7d32; } .new { color: #8e44ad; }
footer { color: var(--muted); font-size: 12px; text-align: center; margin-top: 24px; }
"""


TOP_COMMUNITIES = 25


def _busiest(by_name: Mapping[str, Figures], top: int | None = None) -> dict[str, Figures]:
    """Most orders (a department: most dispatches) first, then by name; the first ``top``."""
    ranked = sorted(by_name.items(), key=lambda kv: (-max(kv[1].orders, kv[1].dispatches), kv[0]))
    return dict(ranked[:top])


def _row(*panels: str) -> str:
    return f'<div class="row">{"".join(panels)}</div>\n'


def _section(title: str, body: str) -> str:
    return f'<section class="panel"><h2>{escape(title)}</h2>{body}</section>\n'


def _card(zh: str, en: str, value: str, basis: str) -> str:
    return (
        f'<div class="card"><div class="label">{escape(zh)} {escape(en)}</div>'
        f'<div class="value">{escape(value)}</div><div class="basis">{escape(basis)}</div></div>'
    )


def _rate_basis(f: Figures, key: str) -> str:
    part, whole = {
        "direct_answer_rate": (f.answered_directly, f.orders),
        "response_rate": (f.responded_in_time, f.response_due),
        "resolution_rate": (f.resolved_in_time, f.resolution_due),
        "satisfaction_rate": (f.satisfied, f.rated),
    }[key]
    return f"{part:,} / {whole:,}"


def _legend(items: Sequence[tuple[str, str]]) -> str:
    return (
        '<div class="legend">'
        + "".join(f'<span><i style="background:{c}"></i>{escape(label)}</span>' for label, c in items)
        + "</div>"
    )


def _svg(width: int, height: int, body: str, label: str) -> str:
    return (
        f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="{escape(label)}" '
        f'xmlns="http://www.w3.org/2000/svg">{body}</svg>'
    )


def _stacked_bars(f: Figures, categories: Mapping[str, str]) -> str:
    """Orders by category, each bar split by request type (from ``Figures.by_category_type``)."""
    rows = list(f.by_category.items())
    if not rows:
        return '<p class="note">本月无工单 no orders this month</p>'
    split = f.by_category_type
    label_w, width, bar_h, gap = 150, 1100, 18, 6
    scale = (width - label_w - 60) / max(n for _, n in rows)
    parts = []
    for i, (code, n) in enumerate(rows):
        y = i * (bar_h + gap)
        name = categories.get(code, code)
        parts.append(f'<text x="{label_w - 8}" y="{y + 13}" text-anchor="end">{escape(name)}</text>')
        x = float(label_w)
        for kind in (*REQUEST_TYPES, UNKNOWN):
            count = split.get(code, {}).get(kind, 0)
            if count:
                w = count * scale
                parts.append(
                    f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{TYPE_COLOURS[kind]}">'
                    f"<title>{escape(name)} · {escape(TYPE_LABELS[kind])}: {count}</title></rect>"
                )
                x += w
        parts.append(f'<text x="{x + 6:.1f}" y="{y + 13}" class="muted">{n}</text>')
    return _svg(width, len(rows) * (bar_h + gap), "".join(parts), "orders by category and type")


def _rate_bars(streets: Mapping[str, Figures]) -> str:
    """Per street, its three rates side by side (0 to 100%)."""
    if not streets:
        return '<p class="note">–</p>'
    label_w, width, bar_h, group_gap = 150, 1100, 9, 10
    scale = width - label_w - 70
    keys = list(RATE_COLOURS)
    group_h = bar_h * len(keys) + group_gap
    parts = []
    for x_pct in (0, 0.25, 0.5, 0.75, 1.0):
        x = label_w + x_pct * scale
        parts.append(
            f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{len(streets) * group_h}" stroke="#e4e7eb"/>'
        )
    for i, (name, f) in enumerate(streets.items()):
        y0 = i * group_h
        parts.append(f'<text x="{label_w - 8}" y="{y0 + 19}" text-anchor="end">{escape(name)}</text>')
        for j, key in enumerate(keys):
            value = getattr(f, key)
            y = y0 + j * bar_h
            w = (value or 0) * scale
            parts.append(
                f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h - 1}" '
                f'fill="{RATE_COLOURS[key]}">'
                f"<title>{escape(name)} {key}: {percent(value)}</title></rect>"
                f'<text x="{label_w + w + 4:.1f}" y="{y + 8}" class="muted" style="font-size:10px">'
                f"{percent(value)}</text>"
            )
    height = len(streets) * group_h + 14
    axis = "".join(
        f'<text x="{label_w + p * scale:.1f}" y="{height - 2}" text-anchor="middle" class="muted">'
        f"{int(p * 100)}%</text>"
        for p in (0, 0.25, 0.5, 0.75, 1.0)
    )
    return _svg(width, height, "".join(parts) + axis, "the three rates by street")


def _column_bars(items: Sequence[tuple[str, int]], colour: str) -> str:
    if not items or not any(n for _, n in items):
        return '<p class="note">本月没有 none this month</p>'
    width, height, top, bottom = 540, 170, 20, 36
    slot = min(150, (width - 20) // len(items))
    scale = (height - top - bottom) / max(n for _, n in items)
    parts = []
    for i, (label, n) in enumerate(items):
        x = 10 + i * slot
        h = n * scale
        y = height - bottom - h
        parts.append(
            f'<rect x="{x + 14}" y="{y:.1f}" width="{slot - 28}" height="{h:.1f}" fill="{colour}" rx="2">'
            f"<title>{escape(label)}: {n}</title></rect>"
            f'<text x="{x + slot / 2:.1f}" y="{y - 5:.1f}" text-anchor="middle">{n}</text>'
            + _label(x + slot / 2, height - bottom + 15, label)
        )
    return _svg(width, height, "".join(parts), "counts")


def _labelled(counts: Mapping[str, int], labels: Mapping[str, str]) -> list[tuple[str, int]]:
    return [(labels.get(k, k), n) for k, n in counts.items()]


def _label(x: float, y: float, label: str) -> str:
    """A bar's label on two lines: the Chinese, then the English under it."""
    zh, _, en = label.partition(" ")
    return (
        f'<text x="{x:.1f}" y="{y}" text-anchor="middle">{escape(zh)}</text>'
        f'<text x="{x:.1f}" y="{y + 14}" text-anchor="middle" class="muted" style="font-size:10px">'
        f"{escape(en)}</text>"
    )


def _pairs_table(heading: str, rows: Sequence[tuple[str, int]]) -> str:
    if not rows:
        return ""
    body = "".join(f"<tr><td>{escape(k)}</td><td>{n:,}</td></tr>" for k, n in rows)
    return f"<table><tr><th>{escape(heading)}</th><th>件 orders</th></tr>{body}</table>"


def _hot_spots(r: Report) -> str:
    if not r.hot_spots:
        return '<p class="note">没有反复出现的问题 no recurring problem this month</p>'
    top = max(h.orders for h in r.hot_spots)
    rows = []
    for rank, h in enumerate(r.hot_spots, 1):
        if h.previous == 0:
            change = '<span class="new">新 new</span>'
        else:
            arrow, css = ("▲", "up") if h.change > 0 else ("▼", "down") if h.change < 0 else ("＝", "")
            change = f'<span class="{css}">{arrow} {h.change:+d} ({percent(h.change_rate)})</span>'
        w = 160 * h.orders / top
        bar = f'<svg width="160" height="12"><rect width="{w:.1f}" height="12" fill="#edc948"/></svg>'
        rows.append(
            f"<tr><td>{rank}</td><td class='text'>{escape(h.category_name)}</td>"
            f"<td class='text'>{escape(h.community)}</td><td class='text'>{escape(h.street)}</td>"
            f"<td>{h.orders}</td><td class='text'>{bar}</td><td>{h.previous}</td><td>{change}</td></tr>"
        )
    head = (
        "<tr><th>#</th><th class='text'>类别 category</th><th class='text'>社区 community</th>"
        "<th class='text'>街道 street</th><th>本月 this month</th><th></th><th>上月 month before</th>"
        "<th>环比 change</th></tr>"
    )
    return f"<table>{head}{''.join(rows)}</table>"


def _scope_table(by_name: Mapping[str, Figures], names: Mapping[str, str]) -> str:
    if not by_name:
        return '<p class="note">–</p>'
    head = (
        "<tr><th class='text'>名称 name</th><th>工单 orders</th><th>派单 dispatches</th>"
        "<th>直接答复率 direct</th><th>响应率 response</th><th>解决率 resolution</th>"
        "<th>满意率 satisfaction</th><th>超期 overdue</th><th>退单 returns</th><th>提级 escalations</th>"
        "<th>签收 h to accept</th><th>办结 h to resolve</th></tr>"
    )
    rows = []
    for name, f in by_name.items():
        shown = f"{names[name]} ({name})" if name in names else name
        rows.append(
            f"<tr><td>{escape(shown)}</td><td>{f.orders:,}</td><td>{f.dispatches:,}</td>"
            f"<td>{percent(f.direct_answer_rate)}</td><td>{percent(f.response_rate)}</td>"
            f"<td>{percent(f.resolution_rate)}</td><td>{percent(f.satisfaction_rate)}</td>"
            f"<td>{f.open_past_deadline:,}</td><td>{f.returns:,}</td><td>{f.escalations:,}</td>"
            f"<td>{hours(f.median_hours_to_accept)}</td><td>{hours(f.median_hours_to_resolve)}</td></tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"
