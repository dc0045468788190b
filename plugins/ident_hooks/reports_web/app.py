"""The reports web app, mounted by the plugin at ``/reports``: weekly charts and CSV files.

Routes (relative to the mount point):

* ``GET /?weeks=12`` — the page (anonymous visitors are sent to Airflow's login page),
  with the campaigns' cost per new patient and ROMI, and new versus returning patients
  and calls per channel, drawn on the server;
* ``GET /api/weekly?weeks=12`` — the three charts' series for the last ``weeks`` weeks;
* ``GET /csv/{table}`` — ``report.<table>`` as a CSV download (see ``csv_export``);
* ``GET /static/...`` — the page's script, styles and icon (no data in them).

Everything but the static files needs an authenticated Airflow user, as on every page
(``ident_hooks.web.security``). Only schema ``report`` is read: numbers, no names or phones.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse

from ident_hooks import db
from ident_hooks.config import load_config
from ident_hooks.reports.channel_codes import CHANNEL_LABELS, CHANNELS
from ident_hooks.reports.weekly import (
    DEFAULT_WEEKS,
    CampaignReturn,
    read_campaign_returns,
    read_channel_people,
    read_weekly_charts,
    week_axis,
)
from ident_hooks.reports_web.csv_export import TABLES, csv_chunks
from ident_hooks.web.pages import page_app, render_page
from ident_hooks.web.security import CurrentUser

HERE = Path(__file__).resolve().parent
WEEK_CHOICES = (4, 8, 12, 26, 52)
MAX_WEEKS = 104
Weeks = Annotated[int, Query(ge=1, le=MAX_WEEKS)]


@dataclass(frozen=True)
class ReturnBar:
    """One campaign's line of the returns chart: text to show and bars in 0..100 units."""

    campaign: str
    cost: str
    new_patients: int
    cost_per_new_patient: str
    cost_bar: float  # width; the dearest new patient of the chart is 100
    revenue: str
    visits_note: str
    romi: str
    romi_x: float  # where the ROMI bar starts; 0 (no return) is at 50
    romi_width: float
    romi_positive: bool


def _money(value: Decimal) -> str:
    return f"{value:,.0f}".replace(",", "\u00a0") + "\u00a0₽"


def return_bars(returns: list[CampaignReturn]) -> list[ReturnBar]:
    """The chart's lines: cost per new patient against the dearest, ROMI around zero."""
    dearest = max((r.cost_per_new_patient or 0 for r in returns), default=0) or 1
    widest = max((abs(r.romi or 0) for r in returns), default=0) or 1
    bars = []
    for r in returns:
        romi_width = float(50 * abs(r.romi or 0) / widest)
        positive = (r.romi or 0) >= 0
        note = f"визитов: {r.visits} из {r.leads} заявок"
        if r.visits_without_amount:
            note += f", без суммы: {r.visits_without_amount}"
        bars.append(
            ReturnBar(
                campaign=r.campaign,
                cost=_money(r.cost),
                new_patients=r.new_patients,
                cost_per_new_patient=(
                    _money(r.cost_per_new_patient) if r.cost_per_new_patient is not None else "—"
                ),
                cost_bar=float(100 * (r.cost_per_new_patient or 0) / dearest),
                revenue=_money(r.revenue),
                visits_note=note,
                romi=(f"{r.romi * 100:+.0f}\u00a0%" if r.romi is not None else "—"),
                romi_x=50.0 if positive else 50 - romi_width,
                romi_width=romi_width,
                romi_positive=positive,
            )
        )
    return bars


def clinic_today() -> date:
    """Today in the clinic's time zone: the report tables' days are the clinic's."""
    return datetime.now(ZoneInfo(load_config().clinic_timezone)).date()


router = APIRouter()


@router.get("/", response_class=HTMLResponse)
def reports_page(request: Request, user: CurrentUser, weeks: Weeks = DEFAULT_WEEKS):
    today = clinic_today()
    first_week = week_axis(today, weeks)[0]
    with db.connect() as conn:
        returns = read_campaign_returns(conn, today=today, weeks=weeks)
        channel_people = read_channel_people(conn, today=today, weeks=weeks)
        collisions = conn.execute(
            "select week, title, leads_with_time, collisions, known_to_aggregator,"
            " median_taken_minutes from report.schedule_collisions"
            " where week >= %s order by week desc, title",
            (first_week,),
        ).fetchall()
    return render_page(
        request,
        user,
        "reports.html",
        weeks=weeks,
        week_choices=sorted({*WEEK_CHOICES, weeks}),
        tables=TABLES,
        collisions=collisions,
        returns=return_bars(returns),
        channel_people=channel_people,
        channel_labels=CHANNEL_LABELS,
    )


@router.get("/api/weekly")
def weekly_charts(user: CurrentUser, weeks: Weeks = DEFAULT_WEEKS) -> JSONResponse:
    today = clinic_today()
    with db.connect() as conn:
        charts = read_weekly_charts(conn, today=today, weeks=weeks)
        state = conn.execute("select built_at from report.build_state").fetchone()
    body = {
        "today": today,
        "built_at": state[0] if state else None,
        "channels": {
            code: {"label": CHANNEL_LABELS.get(code, code), "description": CHANNELS.get(code)}
            for code in charts.leads_by_channel
        },
        **charts.as_dict(),
    }
    return JSONResponse(jsonable_encoder(body))


@router.get("/csv/{table}")
def download_csv(table: str, user: CurrentUser) -> StreamingResponse:
    if table not in TABLES:
        raise HTTPException(404, f"Нет такого отчёта: {table}")
    chunks = csv_chunks(table)
    # Connects and starts the copy here, so a database error is a 500, not a cut-off file.
    first = next(chunks)
    filename = f"report_{table}_{clinic_today().isoformat()}.csv"
    return StreamingResponse(
        itertools.chain([first], chunks),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def create_app() -> FastAPI:
    return page_app("Отчёты", router, HERE, pages=[reports_page])
