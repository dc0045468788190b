"""The whole marketing loop on real parts: a Tilda lead through the intake, its patient's
visit in the clinic's table, real ``dag.test()`` runs of send_conversions_<sink> on a pinned
clock, and the services' simulators (as the run command builds them) over loopback HTTP.

What leaves the clinic is checked byte by byte: no name, phone or e-mail in clear.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest
import time_machine
import yaml
from intake_server import RunningIntake

from ident_dev.simulators.catalog import SimulatedService, build_simulators
from ident_dev.simulators.fake_leads import FakeLeadFactory, tilda_form
from ident_hooks.config import CONFIG_PATH_VARIABLE, DEFAULT_CONFIG_PATH, load_config
from ident_hooks.intake.app import IntakeSettings
from tests.intake.conftest import SOURCES, TICKETS_KEY, TILDA_SECRET

MOSCOW = ZoneInfo("Europe/Moscow")
LEAD_AT = datetime(2026, 12, 1, 10, 15, tzinfo=MOSCOW)
VISIT_AT = LEAD_AT + timedelta(days=3, hours=1)
CLIENT_ID = "1764566100123456789"
PHONE, PHONE_TYPED = "+79161234567", "8 (916) 123-45-67"
OTHER_PHONE = "+79035550101"


@pytest.fixture
def metrica(conversions_db, airflow_db, monkeypatch) -> Iterator[SimulatedService]:
    sink = load_config().conversion_sink("yandex_metrica")
    service = build_simulators([], [])[sink.connection]
    service.server.start()
    monkeypatch.setenv(service.env_var, service.airflow_connection)
    yield service
    service.server.stop()


@pytest.fixture
def uis(conversions_db, airflow_db, monkeypatch) -> Iterator[SimulatedService]:
    sink = load_config().conversion_sink("uis_deals")
    service = build_simulators([], [])[sink.connection]
    service.server.start()
    monkeypatch.setenv(service.env_var, service.airflow_connection)
    yield service
    service.server.stop()


def post_tilda_lead(clinic_db_url: str, *, phone: str, send_cookies: bool, tranid: str) -> None:
    """A Tilda form posted to the intake at LEAD_AT (Tilda's post has no time of its own)."""
    settings = IntakeSettings(
        sources={"tilda": SOURCES["tilda"]},
        connect=lambda: psycopg.connect(clinic_db_url, connect_timeout=2),
        timezone=MOSCOW,
        tickets_key=TICKETS_KEY,
        clock=lambda: LEAD_AT.astimezone(UTC),
    )
    lead = FakeLeadFactory(seed=11).make(LEAD_AT)
    lead.phone, lead.ym_client_id = phone, CLIENT_ID
    lead.utm = {"utm_source": "yandex", "utm_medium": "cpc", "utm_campaign": "implant"}
    intake = RunningIntake(replace(settings, burst=100, rate_per_second=100)).start()
    try:
        response = httpx.post(
            f"{intake.url}/tilda/tilda/{TILDA_SECRET}",
            data=tilda_form(lead, tranid, send_cookies=send_cookies),
        )
    finally:
        intake.stop()
    assert response.status_code == 200, response.text


def run_dag(dag_id: str, at: datetime):
    from airflow.dag_processing.dagbag import DagBag

    with time_machine.travel(at, tick=True):
        return DagBag().get_dag(dag_id).test()


def stored_leads(conn: psycopg.Connection) -> list[tuple]:
    rows = conn.execute(
        "select lead_id, name, email, ym_client_id from integration.leads order by lead_id"
    ).fetchall()
    conn.commit()
    return rows


def assert_nothing_personal_in(bodies: list[bytes], conn: psycopg.Connection) -> None:
    """No phone in any spelling, no name, no e-mail in what the service received."""
    personal = []
    for _, name, email, _ in stored_leads(conn):
        personal += [name, email]
    text = b"\n".join(bodies).decode("utf-8", "replace")
    digits = re.sub(r"\D", "", text)
    for phone in (PHONE, OTHER_PHONE):
        assert phone[2:] not in digits  # +7 916 123-45-67, 8916…, 916… all hold these
    for value in filter(None, personal):
        assert value not in text
    assert "@" not in text


def with_hashed_phones(monkeypatch, tmp_path) -> None:
    config = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))
    config["conversion_sinks"]["yandex_metrica"]["send_hashed_phones"] = True
    path = tmp_path / "integrations-hashed.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv(CONFIG_PATH_VARIABLE, str(path))


def test_a_tilda_lead_and_its_visit_reach_metrica_once_with_the_visit_s_price(
    metrica, clinic_data, conversions_db, clinic_db_url
):
    sink = load_config().conversion_sink("yandex_metrica")
    metrica.server.add_visit(CLIENT_ID, LEAD_AT - timedelta(minutes=4))
    post_tilda_lead(clinic_db_url, phone=PHONE, send_cookies=True, tranid="467251:901")
    ((lead_id, *_, client_id),) = stored_leads(conversions_db)
    assert client_id == CLIENT_ID
    # The clinic's system types the phone its own way and prices the visit.
    clinic_data.appointment(VISIT_AT, PHONE_TYPED, amount="4800.00", appointment_id="apt-77")
    clinic_data.appointment(VISIT_AT + timedelta(days=7), PHONE, amount="2400.00")  # not first

    assert run_dag(sink.dag_id, VISIT_AT + timedelta(hours=3)).state == "success"

    rows = sorted(metrica.server.conversions, key=lambda row: row["Target"])
    assert [(row["Target"], row["ClientId"]) for row in rows] == [
        ("first_visit", CLIENT_ID),
        ("lead_created", CLIENT_ID),
    ]
    visit, lead = rows
    assert int(visit["DateTime"]) == int(VISIT_AT.timestamp())
    assert (visit["Price"], visit["Currency"]) == ("4800.00", "RUB")
    assert int(lead["DateTime"]) == int(LEAD_AT.timestamp())
    assert not lead.get("Price")
    sent = conversions_db.execute(
        "select event, lead_id, appointment_id, amount from integration.conversions_sent"
        " where sink = 'yandex_metrica' order by event"
    ).fetchall()
    assert [(e, lid, apt, str(amount)) for e, lid, apt, amount in sent] == [
        ("first_visit", lead_id, "apt-77", "4800.00"),
        ("lead", lead_id, None, "None"),
    ]

    # The next run sends nothing and follows the upload to its end, counts and all.
    assert run_dag(sink.dag_id, VISIT_AT + timedelta(hours=4)).state == "success"
    assert len(metrica.server.conversions) == 2
    posts = [r for r in metrica.server.received("/offline_conversions/") if r.method == "POST"]
    assert len(posts) == 1
    uploads = conversions_db.execute(
        "select rows_sent, status, finished, linked_quantity, user_not_found_quantity,"
        " goal_not_found_quantity from integration.conversion_uploads"
        " where sink = 'yandex_metrica'"
    ).fetchall()
    conversions_db.commit()
    assert uploads == [(2, "PROCESSED", True, 2, 0, 0)]
    assert_nothing_personal_in(metrica.server.bodies, conversions_db)


def test_a_lead_without_click_ids_goes_by_hashed_phone_only_when_the_clinic_turns_it_on(
    metrica, clinic_data, conversions_db, clinic_db_url, monkeypatch, tmp_path
):
    sink = load_config().conversion_sink("yandex_metrica")
    assert sink.send_hashed_phones is False  # the shipped default
    post_tilda_lead(clinic_db_url, phone=OTHER_PHONE, send_cookies=False, tranid="467251:902")
    ((lead_id, *_, client_id),) = stored_leads(conversions_db)
    assert client_id is None
    clinic_data.appointment(VISIT_AT, "8-903-555-01-01", amount="3600.00")

    assert run_dag(sink.dag_id, VISIT_AT + timedelta(hours=3)).state == "success"
    assert not metrica.server.received("simple_orders")
    assert metrica.server.orders == {}

    with_hashed_phones(monkeypatch, tmp_path)
    assert run_dag(sink.dag_id, VISIT_AT + timedelta(hours=4)).state == "success"
    digest = hashlib.md5(b"79035550101").hexdigest()  # E.164 digits, no "+"
    orders = metrica.server.orders
    assert sorted(orders) == [f"first_visit-{lead_id}", f"lead-{lead_id}"]
    assert {order["phones_md5"] for order in orders.values()} == {digest}
    assert orders[f"first_visit-{lead_id}"]["revenue"] == "3600.00"
    assert orders[f"first_visit-{lead_id}"]["create_date_time"] == VISIT_AT.strftime(
        "%Y-%m-%d %H:%M:%S"
    )
    # A third run sends nothing again.
    assert run_dag(sink.dag_id, VISIT_AT + timedelta(hours=5)).state == "success"
    assert len(metrica.server.received("simple_orders")) == 1
    assert_nothing_personal_in(metrica.server.bodies, conversions_db)


def test_a_visit_of_a_uis_caller_becomes_one_deal_linked_to_the_call(
    uis, clinic_data, conversions_db
):
    sink = load_config().conversion_sink("uis_deals")
    (calls,) = [s for s in load_config().lead_sources if s.kind == "uis_notification"]
    call_id = uis.server.add_call(LEAD_AT.astimezone(UTC))
    lead_id = clinic_data.lead(LEAD_AT, PHONE, source=calls.name, external_id=f"call:{call_id}")
    clinic_data.lead(LEAD_AT, OTHER_PHONE, source="tilda")  # not a UIS communication
    clinic_data.appointment(VISIT_AT, PHONE_TYPED, amount="4800.00", appointment_id="apt-91")
    clinic_data.appointment(VISIT_AT, "8-903-555-01-01", amount="1200.00")

    for hours in (3, 4):
        assert run_dag(sink.dag_id, VISIT_AT + timedelta(hours=hours)).state == "success"

    assert uis.server.deal_links == {"visit-apt-91": (call_id, "call")}
    (deal,) = uis.server.deals.values()
    assert deal["revenue"] == 4800
    assert deal["created_date_time"] == VISIT_AT.strftime("%Y-%m-%d %H:%M:%S")
    calls_made = [r for r in uis.server.received() if b"upload.deals_history" in r.body]
    assert len(calls_made) == 1  # the second run had nothing to send
    sent = conversions_db.execute(
        "select lead_id, appointment_id from integration.conversions_sent where sink = %s",
        (sink.name,),
    ).fetchall()
    conversions_db.commit()
    assert sent == [(lead_id, "apt-91")]


def test_a_refused_token_fails_the_run_without_retries_and_marks_nothing_sent(
    metrica, clinic_data, conversions_db, monkeypatch, capfd, caplog
):
    sink = load_config().conversion_sink("yandex_metrica")
    clinic_data.lead(LEAD_AT, PHONE, ym_client_id=CLIENT_ID)
    wrong = metrica.airflow_connection.replace(metrica.secret, "revoked-token-123")
    monkeypatch.setenv(metrica.env_var, wrong)

    run = run_dag(sink.dag_id, LEAD_AT + timedelta(hours=1))
    assert run.state == "failed"
    assert {ti.task_id: ti.state for ti in run.get_task_instances()} == {
        "send_conversions": "failed"  # failed, not up for retry
    }
    counted = conversions_db.execute(
        "select (select count(*) from integration.conversions_sent),"
        " (select count(*) from integration.conversion_uploads)"
    ).fetchone()
    conversions_db.commit()
    assert counted == (0, 0) and metrica.server.conversions == []
    printed = capfd.readouterr()
    assert "revoked-token-123" not in printed.out + printed.err + caplog.text

    monkeypatch.setenv(metrica.env_var, metrica.airflow_connection)
    assert run_dag(sink.dag_id, LEAD_AT + timedelta(hours=2)).state == "success"
    assert [row["Target"] for row in metrica.server.conversions] == ["lead_created"]
