"""Real dag.test() runs of the import_ad_costs_* DAGs against the Yandex Direct simulator,
on a pinned clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import requests
import time_machine

from ident_dev.simulators.catalog import SimulatedService, build_simulators
from ident_dev.simulators.yandex_direct import VAT
from ident_hooks.config import load_config
from ident_hooks.costs.yandex_direct import YandexDirectReports

MOSCOW = ZoneInfo("Europe/Moscow")
JUST_AFTER_MIDNIGHT = datetime(2026, 12, 7, 0, 4, tzinfo=MOSCOW)
DAYTIME = datetime(2026, 12, 7, 14, 30, tzinfo=MOSCOW)


@pytest.fixture
def cost_source():
    (source,) = load_config().cost_sources
    return source


@pytest.fixture
def direct(cost_source, clinic_conn, airflow_db, monkeypatch) -> Iterator[SimulatedService]:
    clinic_conn.execute("delete from report.ad_costs")
    clinic_conn.commit()
    service = build_simulators([], [], seed=3)[cost_source.connection]
    service.server.retry_in = 1  # what the service asks is waited for; kept short here
    service.server.start()
    monkeypatch.setenv(service.env_var, service.airflow_connection)
    yield service
    service.server.stop()


def _run(dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag().get_dag(dag_id).test()


def _task_states(run) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def _stored(conn, source: str) -> list[tuple]:
    rows = conn.execute(
        "select day, campaign_id, campaign, impressions, clicks, cost, vat_included,"
        " imported_at from report.ad_costs where source = %s order by day, campaign_id",
        (source,),
    ).fetchall()
    conn.commit()
    return rows


def _expected(service: SimulatedService, days: list[date]) -> list[tuple]:
    simulator = service.server
    rows = []
    for day in days:
        for name, campaign_id in sorted(simulator.campaigns.items(), key=lambda c: c[1]):
            stats = simulator.day_stats(name, day)
            if stats is not None:
                impressions, clicks, cost = stats
                cost = (cost * VAT).quantize(Decimal("0.01"))
                rows.append((day, campaign_id, name, impressions, clicks, cost, True))
    return rows


def test_just_after_local_midnight_the_last_three_days_up_to_yesterday_are_imported_and_a_second_run_changes_nothing(  # noqa: E501
    direct, cost_source, clinic_conn, capfd, caplog
):
    with time_machine.travel(JUST_AFTER_MIDNIGHT, tick=True):
        assert _run(cost_source.dag_id).state == "success"
        first = _stored(clinic_conn, cost_source.name)
        days = [date(2026, 12, 4), date(2026, 12, 5), date(2026, 12, 6)]
        assert [row[:7] for row in first] == _expected(direct, days)
        # Offline: queued (201), building (202), ready (200), the same request each time.
        sent = direct.server.received("/json/v5/reports")
        assert len(sent) == 3 and len({request.body for request in sent}) == 1
        assert sent[0].json()["params"]["SelectionCriteria"] == {
            "DateFrom": "2026-12-04",
            "DateTo": "2026-12-06",
        }

        assert _run(cost_source.dag_id).state == "success"
        second = _stored(clinic_conn, cost_source.name)
    assert [row[:7] for row in second] == [row[:7] for row in first]
    assert all(new[7] >= old[7] for new, old in zip(second, first, strict=True))
    printed = capfd.readouterr()
    assert direct.secret not in printed.out + printed.err + caplog.text


def test_a_day_later_the_window_moves_and_revised_days_are_replaced(
    direct, cost_source, clinic_conn
):
    with time_machine.travel(DAYTIME, tick=True):
        assert _run(cost_source.dag_id).state == "success"
    kept = _expected(direct, [date(2026, 12, 4)])  # out of the next run's window
    direct.server.seed += 1  # Direct revised its statistics
    with time_machine.travel(DAYTIME.replace(day=8), tick=True):
        assert _run(cost_source.dag_id).state == "success"
    revised = _expected(direct, [date(2026, 12, 5), date(2026, 12, 6), date(2026, 12, 7)])
    assert [row[:7] for row in _stored(clinic_conn, cost_source.name)] == kept + revised


def test_a_report_name_reused_with_other_parameters_fails_the_run_once(
    direct, cost_source, clinic_conn, capfd, caplog
):
    ours = YandexDirectReports.report_params(date(2026, 12, 4), date(2026, 12, 6), include_vat=True)
    taken = requests.post(
        f"{direct.server.base_url}/json/v5/reports",
        json={"params": {**ours, "FieldNames": ["Date", "CampaignId", "Cost"]}},
        headers={"Authorization": f"Bearer {direct.secret}", "processingMode": "offline"},
        timeout=10,
    )
    assert taken.status_code == 201
    with time_machine.travel(JUST_AFTER_MIDNIGHT, tick=True):
        run = _run(cost_source.dag_id)
    assert run.state == "failed"
    assert _task_states(run) == {"import_costs": "failed"}  # failed, not up for retry
    printed = capfd.readouterr()
    text = printed.out + printed.err + caplog.text
    assert "error 4000" in text and ours["ReportName"] in text
    # Refused at once: one request of ours, no HTTP retries and no task retries.
    assert len(direct.server.received("/json/v5/reports")) == 2
    assert _stored(clinic_conn, cost_source.name) == []


def test_a_bad_token_fails_at_once_without_retries_and_is_never_logged(
    direct, cost_source, clinic_conn, monkeypatch, capfd, caplog
):
    direct.secret = "y0_AgAAAAwrong-token-value"
    monkeypatch.setenv(direct.env_var, direct.airflow_connection)
    with time_machine.travel(DAYTIME, tick=True):
        run = _run(cost_source.dag_id)
    assert run.state == "failed"
    assert _task_states(run) == {"import_costs": "failed"}  # failed, not up for retry
    printed = capfd.readouterr()
    text = printed.out + printed.err + caplog.text
    assert "error 53" in text and "HTTP 400" in text
    assert "y0_AgAAAAwrong-token-value" not in text
    assert len(direct.server.received("/json/v5/reports")) == 1
    assert _stored(clinic_conn, cost_source.name) == []


def test_a_person_can_reimport_a_period_of_their_choosing(direct, cost_source, clinic_conn):
    from airflow.dag_processing.dagbag import DagBag

    with time_machine.travel(DAYTIME, tick=True):
        run = (
            DagBag()
            .get_dag(cost_source.dag_id)
            .test(run_conf={"date_from": "2026-11-01", "date_to": "2026-11-02"})
        )
    assert run.state == "success"
    days = [date(2026, 11, 1), date(2026, 11, 2)]
    assert [row[:7] for row in _stored(clinic_conn, cost_source.name)] == _expected(direct, days)
