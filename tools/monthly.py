"""``whistle report``: the monthly report from the api's database, by the api's own code path
(``services.api.monthly``), and its tables for the terminal."""

from __future__ import annotations

from rich.table import Table

from services.api.monthly import compute
from services.api.report_pages import CLOSURE_LABELS, LEVEL_LABELS, TYPE_LABELS, hours, percent
from services.api.reports import Figures, Month, Report
from shared.db import create_engine
from shared.reference import load_jurisdiction
from shared.settings import Settings


async def load(settings: Settings, month: str) -> Report:
    """The month's report; a ValueError naming the field for a bad month."""
    wanted = Month.parse(month)
    ref = load_jurisdiction(settings.jurisdiction_file)
    engine = create_engine(settings.database_url_for("api"))
    try:
        async with engine.connect() as conn:
            return await compute(conn, wanted, ref)
    finally:
        await engine.dispose()


SCOPE_TITLES = (("district", "区 districts"), ("street", "街道 streets"), ("department", "部门 departments"))


def table(r: Report) -> list[Table]:
    """The headline, the districts and streets, the departments, and the hot spots."""
    t = r.total
    title = f"12345 月度报告 monthly report {r.month} (as at {r.cutoff})"
    head = Table("figure", "value", "basis", title=title)
    head.add_row("受理 orders", f"{t.orders:,}", f"reports {t.reports:,}, merged {t.merged:,}")
    direct = f"{t.answered_directly}/{t.orders}"
    head.add_row("直接答复率 direct answers", percent(t.direct_answer_rate), direct)
    head.add_row("响应率 response", percent(t.response_rate), f"{t.responded_in_time}/{t.response_due}")
    head.add_row("解决率 resolution", percent(t.resolution_rate), f"{t.resolved_in_time}/{t.resolution_due}")
    head.add_row("满意率 satisfaction", percent(t.satisfaction_rate), f"{t.satisfied}/{t.rated}")
    head.add_row("超期未办结 open past deadline", f"{t.open_past_deadline:,}", "")
    head.add_row("签收中位 median to accept", hours(t.median_hours_to_accept), "")
    head.add_row("办结中位 median to resolve", hours(t.median_hours_to_resolve), "")
    head.add_row("类型 by type", _counts(t.by_type, TYPE_LABELS), "")
    head.add_row("办结方式 closure", _counts(t.by_closure, CLOSURE_LABELS), "")
    head.add_row("提级 escalations", f"{t.escalations:,}", _counts(t.escalations_by_rung, LEVEL_LABELS))
    head.add_row("退单 returns", f"{t.returns:,}", _counts(t.returns_by_outcome, {}))
    tables = [head]
    for kind, name in SCOPE_TITLES:
        tables.append(_scopes(name, r.scopes.get(kind, {}), r.departments if kind == "department" else {}))
    columns = ("#", "category", "community", "street", "orders", "month before", "change")
    spots = Table(*columns, title="每月一题候选 hot spots")
    for i, h in enumerate(r.hot_spots, 1):
        spots.add_row(
            str(i), h.category_name, h.community, h.street, str(h.orders), str(h.previous), f"{h.change:+d}"
        )
    tables.append(spots)
    return tables


def _counts(counts: dict[str, int], labels: dict[str, str]) -> str:
    return ", ".join(f"{labels.get(k, k)} {n}" for k, n in counts.items())


def _scopes(title: str, by_name: dict[str, Figures], names: dict[str, str]) -> Table:
    t = Table(
        "name",
        "orders",
        "direct",
        "response",
        "resolution",
        "satisfaction",
        "overdue",
        "returns",
        "escalations",
        title=title,
    )
    for name, f in by_name.items():
        t.add_row(
            names.get(name, name),
            f"{f.orders:,}",
            percent(f.direct_answer_rate),
            percent(f.response_rate),
            percent(f.resolution_rate),
            percent(f.satisfaction_rate),
            str(f.open_past_deadline),
            str(f.returns),
            str(f.escalations),
        )
    return t
