"""Yandex Direct's Reports over real HTTP to its simulator, and ``report.ad_costs``."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import requests

from ident_dev.simulators.yandex_direct import VAT, YandexDirectSimulator
from ident_hooks.costs import (
    CampaignDay,
    CostReportNotReady,
    CostReportRefused,
    period_to_import,
)
from ident_hooks.costs.store import replace_days
from ident_hooks.costs.yandex_direct import YandexDirectReports
from ident_hooks.errors import PermanentFailure, TransientFailure
from ident_hooks.hooks import HOOKS

TOKEN = "y0_AgAAAA-secret-oauth-token"
CAMPAIGNS = {"implant_msk": 101, "kids_dentistry": 102}
DEC_1, DEC_3 = date(2026, 12, 1), date(2026, 12, 3)


@pytest.fixture
def direct(monkeypatch):
    with YandexDirectSimulator(token=TOKEN, campaigns=CAMPAIGNS, seed=5, retry_in=3) as server:
        connection = {
            "conn_type": "yandex_direct",
            "host": server.base_url,
            "password": TOKEN,
            "extra": {"Client-Login": "ulybka-clinic"},
        }
        monkeypatch.setenv("AIRFLOW_CONN_DIRECT_TEST", json.dumps(connection))
        yield server


def _client():
    return YandexDirectReports.client("direct_test", hook_class=HOOKS["yandex_direct"])


def _expected(server: YandexDirectSimulator, date_from: date, date_to: date, vat: bool):
    rows = set()
    for day in (date(2026, 12, d) for d in range(date_from.day, date_to.day + 1)):
        for name, campaign_id in CAMPAIGNS.items():
            stats = server.day_stats(name, day)
            if stats is not None:
                impressions, clicks, cost = stats
                cost = (cost * VAT).quantize(Decimal("0.01")) if vat else cost
                rows.add(CampaignDay(day, campaign_id, name, impressions, clicks, cost))
    return rows


def test_an_offline_report_is_asked_again_identically_after_each_retry_in(direct):
    waits: list[float] = []
    rows = YandexDirectReports.fetch(_client(), DEC_1, DEC_3, include_vat=True, sleep=waits.append)

    assert set(rows) == _expected(direct, DEC_1, DEC_3, vat=True)
    assert len(rows) >= 4 and all(isinstance(row.cost, Decimal) for row in rows)
    assert waits == [3.0, 3.0]  # 201 queued, 202 building, then 200
    sent = direct.received("/json/v5/reports")
    assert len(sent) == 3
    assert len({request.body for request in sent}) == 1
    headers = sent[0].headers
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert headers["client-login"] == "ulybka-clinic"
    assert headers["processingmode"] == "offline"
    assert headers["returnmoneyinmicros"] == "false"
    assert all(request.headers == headers for request in sent[1:])
    params = sent[0].json()["params"]
    assert params["IncludeVAT"] == "YES"
    assert params["SelectionCriteria"] == {"DateFrom": "2026-12-01", "DateTo": "2026-12-03"}
    assert params["FieldNames"] == [
        "Date", "CampaignId", "CampaignName", "Impressions", "Clicks", "Cost"
    ]  # fmt: skip


def test_costs_without_vat_are_a_report_of_their_own(direct):
    rows = YandexDirectReports.fetch(
        _client(), DEC_1, DEC_3, include_vat=False, sleep=lambda seconds: None
    )
    assert set(rows) == _expected(direct, DEC_1, DEC_3, vat=False)
    names = {request.json()["params"]["ReportName"] for request in direct.received()}
    assert names == {
        YandexDirectReports.report_params(DEC_1, DEC_3, include_vat=False)["ReportName"]
    }


def test_the_report_name_is_stable_per_request_and_unique_per_parameters():
    name = lambda *args, **kw: YandexDirectReports.report_params(*args, **kw)["ReportName"]  # noqa: E731
    assert name(DEC_1, DEC_3, include_vat=True) == name(DEC_1, DEC_3, include_vat=True)
    assert (
        len(
            {
                name(DEC_1, DEC_3, include_vat=True),
                name(DEC_1, DEC_3, include_vat=False),
                name(DEC_1, date(2026, 12, 2), include_vat=True),
            }
        )
        == 3
    )


def test_a_report_still_building_after_the_tasks_waits_is_a_transient_failure(direct, monkeypatch):
    monkeypatch.setattr(YandexDirectReports, "max_wait_seconds", 5.0)
    waits: list[float] = []
    with pytest.raises(CostReportNotReady) as failure:
        YandexDirectReports.fetch(_client(), DEC_1, DEC_3, include_vat=True, sleep=waits.append)
    assert isinstance(failure.value, TransientFailure)
    assert waits == [3.0]  # a second wait would pass 5 s
    # The task's retry asks for the same report, which the service has built meanwhile.
    rows = YandexDirectReports.fetch(_client(), DEC_1, DEC_3, include_vat=True, sleep=waits.append)
    assert set(rows) == _expected(direct, DEC_1, DEC_3, vat=True)


def test_a_report_name_reused_with_other_parameters_is_refused_permanently(direct):
    ours = YandexDirectReports.report_params(DEC_1, DEC_3, include_vat=True)
    other = {**ours, "IncludeVAT": "NO"}
    answer = requests.post(
        f"{direct.base_url}/json/v5/reports",
        json={"params": other},
        headers={"Authorization": f"Bearer {TOKEN}", "processingMode": "offline"},
        timeout=10,
    )
    assert answer.status_code == 201

    with pytest.raises(PermanentFailure) as failure:
        YandexDirectReports.fetch(_client(), DEC_1, DEC_3, include_vat=True, sleep=pytest.fail)
    assert "error 4000" in str(failure.value) and ours["ReportName"] in str(failure.value)
    assert len(direct.received()) == 2  # refused at once


def test_a_bad_token_is_refused_at_once_and_never_shown(direct, monkeypatch, caplog):
    connection = {"conn_type": "yandex_direct", "host": direct.base_url, "password": "y0_wrong"}
    monkeypatch.setenv("AIRFLOW_CONN_DIRECT_TEST", json.dumps(connection))
    with pytest.raises(PermanentFailure) as failure:
        YandexDirectReports.fetch(_client(), DEC_1, DEC_3, include_vat=True, sleep=pytest.fail)
    assert "HTTP 400" in str(failure.value) and "error 53" in str(failure.value)
    assert "y0_wrong" not in str(failure.value) + caplog.text
    assert len(direct.received()) == 1


def test_the_simulator_refuses_what_the_service_refuses(direct):
    params = YandexDirectReports.report_params(DEC_1, DEC_3, include_vat=True)
    del params["IncludeVAT"]
    answer = requests.post(
        f"{direct.base_url}/json/v5/reports",
        json={"params": params},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["error_code"] == 8000
    assert answer.headers["RequestId"] == answer.json()["error"]["request_id"]
    # Without the skip headers: the name line, the columns, the rows, the summary, micros.
    params["IncludeVAT"] = "NO"
    answer = requests.post(
        f"{direct.base_url}/json/v5/reports",
        json={"params": params},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    lines = answer.text.splitlines()
    assert answer.status_code == 200
    assert lines[0].startswith(f'"{params["ReportName"]} (2026-12-01 - 2026-12-03)')
    assert lines[1].split("\t")[0] == "Date" and lines[-1].startswith("Total rows: ")
    # ... which our reader takes as well, but in micros: money must be asked in currency.
    assert int(lines[2].split("\t")[-1]) > 1000


def test_the_tsv_reader_reads_columns_by_name_and_tolerates_the_optional_lines():
    text = (
        '"ident-costs-x (2026-12-01 - 2026-12-01)"\n'
        "CampaignName\tDate\tCampaignId\tImpressions\tClicks\tCost\n"
        "Имплантация\t2026-12-01\t7\t1000\t40\t2345.60\n"
        "brand\t2026-12-01\t8\t--\t--\t--\n"
        "Total rows: 2\n"
    )
    assert YandexDirectReports.parse_tsv(text) == [
        CampaignDay(date(2026, 12, 1), 7, "Имплантация", 1000, 40, Decimal("2345.60")),
        CampaignDay(date(2026, 12, 1), 8, "brand", 0, 0, Decimal("0")),
    ]
    assert YandexDirectReports.parse_tsv("Date\tCampaignId\tCampaignName\tImpressions"
                                         "\tClicks\tCost\nTotal rows: 0\n") == []  # fmt: skip
    with pytest.raises(CostReportRefused, match="lacks the columns Cost"):
        YandexDirectReports.parse_tsv("Date\tCampaignId\tCampaignName\tImpressions\tClicks\n")
    with pytest.raises(CostReportRefused, match="line 2"):
        YandexDirectReports.parse_tsv(
            "Date\tCampaignId\tCampaignName\tImpressions\tClicks\tCost\n"
            "2026-12-01\t7\tx\t10\t1\t-5.00\n"
        )


def test_the_period_is_the_last_days_up_to_yesterday_in_clinic_time():
    just_after_midnight = datetime(2026, 12, 6, 21, 4, tzinfo=UTC)  # 00:04 in Moscow
    assert period_to_import(just_after_midnight, "Europe/Moscow", 3) == (
        date(2026, 12, 4),
        date(2026, 12, 6),
    )
    assert period_to_import(just_after_midnight, "Europe/Kaliningrad", 1) == (
        date(2026, 12, 5),
        date(2026, 12, 5),
    )


def _stored(conn, source="direct_test"):
    rows = conn.execute(
        "select day, campaign_id, campaign, impressions, clicks, cost, vat_included"
        " from report.ad_costs where source = %s order by day, campaign_id",
        (source,),
    ).fetchall()
    conn.commit()
    return rows


def test_a_reimport_replaces_its_days_whole_and_twice_gives_the_same_rows(clinic_conn):
    clinic_conn.execute("delete from report.ad_costs")
    clinic_conn.commit()
    day = lambda d, campaign, cost: CampaignDay(  # noqa: E731
        date(2026, 12, d), campaign, f"c{campaign}", 100, 5, Decimal(cost)
    )
    first = [day(1, 1, "10.50"), day(2, 1, "11.00"), day(2, 2, "3.10"), day(3, 1, "9.99")]
    replace_days(clinic_conn, "direct_test", DEC_1, DEC_3, first, vat_included=True)
    replace_days(clinic_conn, "other", DEC_1, DEC_3, first, vat_included=False)
    stored = _stored(clinic_conn)
    assert len(stored) == 4 and stored[0][5] == Decimal("10.50")
    replace_days(clinic_conn, "direct_test", DEC_1, DEC_3, first, vat_included=True)
    assert _stored(clinic_conn) == stored

    # Direct revised day 2 (campaign 2 gone, campaign 1 cheaper); day 1 is not read again.
    revised = [day(2, 1, "8.00"), day(3, 1, "9.99")]
    replace_days(clinic_conn, "direct_test", date(2026, 12, 2), DEC_3, revised, vat_included=True)
    assert [(row[0].day, row[1], row[5]) for row in _stored(clinic_conn)] == [
        (1, 1, Decimal("10.50")),
        (2, 1, Decimal("8.00")),
        (3, 1, Decimal("9.99")),
    ]
    assert len(_stored(clinic_conn, "other")) == 4  # another source's rows stay

    with pytest.raises(CostReportRefused, match="2026-12-01"):
        replace_days(clinic_conn, "direct_test", date(2026, 12, 2), DEC_3, first, vat_included=True)
    assert len(_stored(clinic_conn)) == 3  # nothing changed


def test_the_demo_advertiser_runs_the_demo_leads_yandex_campaigns_by_their_tags():
    from ident_dev import demo
    from ident_dev.simulators.yandex_direct import DEMO_CAMPAIGNS

    tagged = {t.utm[2] for t in demo.TRAFFIC if t.utm[:2] == ("yandex", "cpc")}
    assert set(DEMO_CAMPAIGNS) == tagged
