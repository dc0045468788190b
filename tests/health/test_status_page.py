"""The status page and its JSON in a real Airflow api-server: same login as the UI, data
from the clinic database; a browser screenshot (IDENT_HEALTH_SCREENSHOT=docs/health.png)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"

_PROBE = """
import json, sys
import airflow.plugins_manager
before = set(sys.modules)
from ident_hooks.airflow_plugins import IdentHealthPlugin
plugin = IdentHealthPlugin
print(json.dumps({
    "new_modules": sorted(set(sys.modules) - before),
    "prefix": plugin.fastapi_apps[0]["url_prefix"],
    "listeners": [module.__name__ for module in plugin.listeners],
}))
"""


def test_importing_the_plugin_loads_no_web_or_database_stack():
    env = {**os.environ, "PYTHONPATH": str(PLUGINS)}
    result = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True
    )
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    heavy = ("fastapi", "starlette", "jinja2", "psycopg", "pandas", "yaml", "telegram")
    assert not [m for m in probe["new_modules"] if m.split(".")[0] in heavy]
    assert probe["prefix"] == "/status"
    assert probe["listeners"] == ["ident_hooks.health.listener"]


def _seed(conn) -> None:
    now = datetime.now(UTC)
    conn.execute(
        "insert into integration.dag_runs (dag_id, run_id, state, started_at, finished_at)"
        " values ('pull_leads_uis', 'r1', 'success', %s, %s)",
        (now - timedelta(minutes=1, seconds=3), now - timedelta(minutes=1)),
    )
    for n in range(2):
        conn.execute(
            "insert into integration.dag_runs (dag_id, run_id, state, started_at, finished_at,"
            " failed_task, error, error_at) values ('pull_leads_flexbe', %s, 'failed', %s, %s,"
            " 'pull_and_store', %s, %s)",
            (
                f"f{n}",
                now - timedelta(minutes=4 - n * 2),
                now - timedelta(minutes=4 - n * 2),
                "ServiceRejected: GET /v1/leads -> 401 Unauthorized (api_key=*** refused)",
                now - timedelta(minutes=4 - n * 2),
            ),
        )
    conn.execute(
        "insert into integration.publish_log (aggregator, started_at, finished_at, status,"
        " free_slots, not_matched_doctors) values ('napopravku', %s, %s, 'sent', 412, %s)",
        (now - timedelta(minutes=3), now - timedelta(minutes=3), ["Петров Геннадий Андреевич"]),
    )
    conn.execute("insert into clinic.sync_heartbeat values ('ident', %s)", (now,))
    conn.execute(
        "insert into integration.conversion_uploads (sink, upload_id, channel, uploaded_at,"
        " rows_sent, finished, linked_quantity, user_not_found_quantity,"
        " goal_not_found_quantity) values ('yandex_metrica', '17', 'offline_conversions', %s,"
        " 40, true, 31, 9, 0)",
        (now - timedelta(hours=3),),
    )
    conn.commit()


def test_the_page_and_its_json_need_the_airflow_login(airflow_web, health_conn):
    _seed(health_conn)
    anonymous = requests.get(airflow_web.url("/status/api/health"), timeout=30)
    assert anonymous.status_code == 401
    page = requests.get(airflow_web.url("/status/"), allow_redirects=False, timeout=30)
    assert page.status_code == 303 and "/auth/login" in page.headers["location"]

    data = airflow_web.bearer_session().get(airflow_web.url("/status/api/health"), timeout=30)
    assert data.status_code == 200
    body = data.json()
    rows = {row["key"]: row for row in body["integrations"]}
    assert rows["lead_source:uis"]["state"] == "green"
    flexbe = rows["lead_source:flexbe"]
    assert (flexbe["state"], flexbe["failures_in_a_row"]) == ("red", 2)
    assert "401" in flexbe["last_error"] and flexbe["limit_minutes"] == 6
    napopravku = rows["aggregator:napopravku"]
    assert napopravku["slots_published"] == 412
    assert napopravku["not_matched_doctors"] == ["Петров Геннадий Андреевич"]
    assert rows["clinic_sync:ident"]["state"] == "green"
    assert body["state"] == "red"

    html = airflow_web.cookie_session().get(airflow_web.url("/status/"), timeout=30)
    assert html.status_code == 200 and "Состояние интеграций" in html.text
    assert 'data-key="lead_source:flexbe" data-state="red"' in html.text
    assert "ошибка 2 запуска подряд" in html.text
    # What the ad system could not link is there for the data team to see.
    conversions = "за 7 дней: отправлено 40, связано 31, посетитель не найден 9, цель не найдена 0"
    assert rows["conversion_sink:yandex_metrica"]["detail"] == conversions
    assert conversions in html.text


def test_a_browser_shows_the_status_page(airflow_web, health_conn, browser_page):
    _seed(health_conn)
    page = browser_page
    page.goto("/status/")
    page.wait_for_url("**/auth/login**")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", airflow_web.passwords["admin"])
    page.click("button[type=submit]")
    page.wait_for_url("**/status/")
    assert page.locator("#overall").inner_text() == "Сбой"
    assert "Flexbe" in page.locator('tr[data-state="red"]').first.inner_text()
    shot = os.environ.get("IDENT_HEALTH_SCREENSHOT")
    if shot:
        page.screenshot(path=shot, full_page=True)
