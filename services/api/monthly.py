"""The monthly report under /v1/reports/{month} (a ``centre`` key): JSON by default, ``?format=csv``
for spreadsheets, ``?format=html`` for people. ``whistle report`` takes the same path
(``render``), so the CLI and the API give the same figures."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Depends, Path, Query, Response
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.reference import Jurisdiction

from .keys import ApiKey
from .report_pages import to_csv, to_html
from .report_queries import monthly_report
from .reports import Month, Report
from .schemas import errors
from .web import Api, KeyFor, Refusal, api_of

router = APIRouter(prefix="/v1", tags=["reports"])
ApiDep = Annotated[Api, Depends(api_of)]
ReportKey = Annotated[ApiKey, Depends(KeyFor("read the monthly report"))]
Format = Literal["json", "csv", "html"]
MEDIA: dict[str, str] = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "html": "text/html; charset=utf-8",
}
ANSWERS = errors(
    e401="no key, or an unknown one",
    e403="not a key that may read the report",
    e422="the month or the format is invalid (named)",
    e429="over the key's rate",
) | {
    200: {
        "description": "the report: JSON (default), CSV (scope, name, figure, key, value) or HTML",
        "content": {"text/csv": {"schema": {"type": "string"}}, "text/html": {"schema": {"type": "string"}}},
    }
}


def read_month(text: str) -> Month:
    """The path's month, or a 422 naming it."""
    try:
        return Month.parse(text)
    except ValueError as exc:
        raise Refusal(422, str(exc)) from None


def render(r: Report, format: Format) -> str:
    """The one way a report is written out, for the API and the CLI alike."""
    if format == "csv":
        return to_csv(r)
    if format == "html":
        return to_html(r)
    return orjson.dumps(r.as_dict(), option=orjson.OPT_INDENT_2).decode()


async def compute(conn: AsyncConnection, month: Month, ref: Jurisdiction) -> Report:
    """The month's report from the read model as it is now."""
    return await monthly_report(conn, month, ref, datetime.now(UTC))


@router.get("/reports/{month}", responses=ANSWERS, response_class=Response)
async def monthly(
    key: ReportKey,
    api: ApiDep,
    month: Annotated[str, Path(max_length=7, description="YYYY-MM")],
    format: Annotated[Format, Query(description="json, csv or html")] = "json",
) -> Response:
    """月度报告: the month's orders by type and category, 直接答复率 and the three rates (三率),
    returns and their review, escalations by rung, median times to accept and resolve, and the hot
    spots with their change from the month before; for the whole jurisdiction, each district,
    street, community and department. Formulas: docs/reports.md."""
    wanted = read_month(month)
    async with api.service.engine.connect() as conn:
        r = await compute(conn, wanted, api.ref)
    return Response(render(r, format), media_type=MEDIA[format])
