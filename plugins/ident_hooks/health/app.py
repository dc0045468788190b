"""The status page, mounted by ``ident_hooks.airflow_plugins.IdentHealthPlugin`` at ``/status``.

Routes (relative to the mount point):

* ``GET /`` — «Состояние интеграций»: one row per integration with its state, last success
  and its age against the limit, last error (secrets redacted), today's numbers; the
  clinic's sync heartbeats; other DAGs; the latest alerts sent. It reloads itself every
  30 seconds (anonymous visitors are sent to Airflow's login page);
* ``GET /api/health`` — the same as JSON (``status.HealthReport.as_dict`` plus the alerts);
* ``GET /static/...`` — styles and icon.

Same login as the Airflow UI and the inbox (``ident_hooks.web.security``); read-only, so
no forgery checks are needed. Each request computes the health afresh (a few indexed
queries, milliseconds).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, JSONResponse
from psycopg.rows import dict_row

from ident_hooks import db
from ident_hooks.config import load_config
from ident_hooks.health.settings import load_alerts_config
from ident_hooks.health.status import HealthReport, compute_health, minutes_text
from ident_hooks.web.pages import page_app, render_page
from ident_hooks.web.security import CurrentUser

HERE = Path(__file__).resolve().parent
PAGE_RELOAD_SECONDS = 30
RECENT_ALERTS = 20
STATE_LABELS = {"green": "Работает", "yellow": "Внимание", "red": "Сбой"}


def _report() -> tuple[HealthReport, list[dict[str, Any]]]:
    config = load_config()
    with db.connect() as conn:
        report = compute_health(conn, config, load_alerts_config(), now=datetime.now().astimezone())
        with conn.cursor(row_factory=dict_row) as cursor:
            alerts = cursor.execute(
                "select alert_key, kind, channel, destination, sent_at, error"
                " from integration.alerts_sent order by sent_at desc, alert_id desc limit %s",
                (RECENT_ALERTS,),
            ).fetchall()
    return report, alerts


router = APIRouter()


@router.get("/", response_class=HTMLResponse)
def status_page(request: Request, user: CurrentUser) -> HTMLResponse:
    report, alerts = _report()
    tz = ZoneInfo(load_config().clinic_timezone)
    alerts_config = load_alerts_config()

    def when(moment: datetime | None) -> str:
        return moment.astimezone(tz).strftime("%d.%m %H:%M:%S") if moment else "—"

    return render_page(
        request,
        user,
        "health.html",
        report=report,
        alerts=alerts,
        state_labels=STATE_LABELS,
        when=when,
        age=lambda seconds: "—" if seconds is None else minutes_text(seconds),
        reload_seconds=PAGE_RELOAD_SECONDS,
        limits=alerts_config.limits,
        data_team=alerts_config.data_team,
        front_desks=alerts_config.front_desks,
        timezone=str(tz),
    )


@router.get("/api/health")
def health_json(user: CurrentUser) -> JSONResponse:
    report, alerts = _report()
    return JSONResponse(jsonable_encoder({**report.as_dict(), "alerts": alerts}))


def create_app() -> FastAPI:
    return page_app("Состояние интеграций", router, HERE, pages=[status_page])
