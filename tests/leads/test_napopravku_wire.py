"""НаПоправку bookings on the vendor's real wire format (``napopravku/rta-api-service-client``).

The API works in UTC and its booleans in a query string are ``0``/``1``; the simulator
refuses ``true``/``false`` the way Laravel does. A booking made just after midnight in
Moscow — 21:xx UTC the day before — must still be fetched and acknowledged once.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests
import time_machine

from ident_dev import demo
from ident_dev.simulators.base import SimRequest, SimResponse
from ident_dev.simulators.catalog import demo_secret
from ident_dev.simulators.napopravku import NapopravkuSimulator
from ident_hooks.leads.pull import acknowledge_stored, pull_source
from ident_hooks.leads.sources import SourceSettings, parse_records
from ident_hooks.leads.sources.napopravku import NapopravkuSource

MOSCOW = ZoneInfo("Europe/Moscow")
TOKEN = "napopravku-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
# Five past midnight in Moscow is still yesterday, 21:05, in UTC.
BOOKED_AT = datetime(2026, 12, 2, 0, 5, tzinfo=MOSCOW)


def _fetch(service, client, period_from, *, page_size=0):
    settings = SourceSettings(source="napopravku", page_size=page_size)
    return list(NapopravkuSource.fetch(client, period_from, BOOKED_AT, settings=settings))


def test_the_query_says_is_received_0_and_from_in_utc(running, client_for, doctors, clock):
    clock.now = BOOKED_AT + timedelta(minutes=2)
    service = running(NapopravkuSimulator(token=TOKEN, doctors=doctors, seed=21, clock=clock))
    booking = service.add_lead(BOOKED_AT)
    client = client_for(service, "napopravku", TOKEN, "/api/v1")

    records = _fetch(service, client, datetime(2026, 12, 2, tzinfo=MOSCOW))

    assert [record["uuid"] for record in records] == [booking["uuid"]]
    (call,) = service.received("/appointments")
    assert call.arg("is_received") == "0"
    assert call.arg("from") == "2026-12-01 21:00:00"  # Moscow midnight, in UTC
    assert call.arg("paging[per_page]") == "100"


def test_times_in_replies_are_utc(running, client_for, doctors, matcher, clock):
    clock.now = BOOKED_AT + timedelta(minutes=2)
    service = running(NapopravkuSimulator(token=TOKEN, doctors=doctors, seed=22, clock=clock))
    booking = service.add_lead(BOOKED_AT)
    assert booking["created_at"] == "2026-12-01 21:05:00"
    client = client_for(service, "napopravku", TOKEN, "/api/v1")
    settings = SourceSettings(source="napopravku")

    records = _fetch(service, client, datetime(2026, 12, 1, tzinfo=MOSCOW))
    (lead,) = parse_records(NapopravkuSource, records, settings=settings, matcher=matcher).leads

    assert lead.created_at == BOOKED_AT
    visit = datetime.strptime(booking["start_time"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    assert lead.requested_start == visit
    assert lead.requested_start.astimezone(MOSCOW).hour in range(9, 19)  # clinic hours


@pytest.mark.parametrize("value", ["false", "true", "no"])
def test_the_simulator_refuses_a_boolean_that_is_not_0_or_1(running, clock, value):
    service = running(NapopravkuSimulator(token=TOKEN, clock=clock))
    url = f"{service.base_url}/api/v1/appointments"

    reply = requests.get(url, params={"is_received": value}, headers=BEARER, timeout=5)

    assert reply.status_code == 422
    body = reply.json()
    assert body == {
        "message": "The is received field must be true or false.",
        "errors": {"is_received": ["The is received field must be true or false."]},
    }
    for accepted in ("0", "1"):
        ok = requests.get(url, params={"is_received": accepted}, headers=BEARER, timeout=5)
        assert ok.status_code == 200 and "items" in ok.json()["result"]


def test_laravel_counts_further_errors_in_the_message(running, clock):
    service = running(NapopravkuSimulator(token=TOKEN, clock=clock))
    reply = requests.get(
        f"{service.base_url}/api/v1/appointments",
        params={"is_received": "false", "is_cancelled": "true", "paging[per_page]": "500"},
        headers=BEARER,
        timeout=5,
    )
    assert reply.status_code == 422
    body = reply.json()
    assert set(body["errors"]) == {"is_received", "is_cancelled", "paging.per_page"}
    assert body["message"] == "The is received field must be true or false. (and 2 more errors)"


def test_from_without_an_offset_is_utc_at_the_simulator(running, clock):
    clock.now = BOOKED_AT + timedelta(minutes=2)
    service = running(NapopravkuSimulator(token=TOKEN, clock=clock))
    booking = service.add_lead(BOOKED_AT)
    url = f"{service.base_url}/api/v1/appointments"

    def listed(since: str) -> list[str]:
        params = {"is_received": "0", "from": since}
        reply = requests.get(url, params=params, headers=BEARER, timeout=5).json()
        return [item["uuid"] for item in reply["result"]["items"]]

    assert listed("2026-12-01 21:00:00") == [booking["uuid"]]
    # Moscow midnight written without an offset means 03:00 Moscow to the service.
    assert listed("2026-12-02 00:00:00") == []
    assert listed("2026-12-02T00:00:00+03:00") == [booking["uuid"]]


class PageIgnoringSimulator(NapopravkuSimulator):
    """A server that answers page 1 whatever ``paging[page]`` asks for."""

    def _appointments(self, request: SimRequest) -> SimResponse:
        query = {name: values for name, values in request.query.items() if name != "paging[page]"}
        return super()._appointments(dataclasses.replace(request, query=query))


def test_a_server_that_ignores_the_page_stops_the_walk_with_a_warning_keeping_page_one(
    running, client_for, doctors, clock, caplog
):
    service = running(PageIgnoringSimulator(token=TOKEN, doctors=doctors, seed=23, clock=clock))
    bookings = service.generate(12, clock())
    client = client_for(service, "napopravku", TOKEN, "/api/v1")

    with caplog.at_level(logging.WARNING, logger="ident_hooks.leads.paging"):
        records = _fetch(service, client, clock() - timedelta(days=1), page_size=5)

    assert [call.arg("paging[page]") for call in service.received("/appointments")] == ["1", "2"]
    oldest_first = sorted(bookings, key=lambda booking: booking["created_at"])
    assert [r["uuid"] for r in records] == [b["uuid"] for b in oldest_first[:5]]
    (warning,) = caplog.records
    assert warning.getMessage().startswith("napopravku: the page at paging[page]=2 brought 5")
    assert "seems to ignore paging[page]" in warning.getMessage()


def test_bookings_before_an_ignored_page_are_stored_and_acknowledged_in_time(
    running, client_for, doctors, clock, clinic_conn
):
    clinic_conn.execute("truncate integration.leads, integration.lead_rejects cascade")
    clinic_conn.commit()
    service = running(PageIgnoringSimulator(token=TOKEN, doctors=doctors, seed=26, clock=clock))
    bookings = service.generate(130, clock(), spread_seconds=300)
    client = client_for(service, "napopravku", TOKEN, "/api/v1")

    summary = pull_source(
        "napopravku",
        kind="napopravku",
        conn=clinic_conn,
        client=client,
        clinic_timezone="Europe/Moscow",
        now=clock(),
        read_cursor=lambda: None,
        write_cursor=lambda _: None,
    )
    counts = acknowledge_stored("napopravku", kind="napopravku", conn=clinic_conn, client=client)

    assert (summary.fetched, summary.inserted) == (100, 100)  # page 1 of 100; page 2 repeated it
    assert counts == {"acknowledged": 100, "refused": 0, "pending": 0}
    stored = {
        external_id
        for (external_id,) in clinic_conn.execute(
            "select external_id from integration.leads"
            " where source = 'napopravku' and acknowledged_at is not null"
        )
    }
    clinic_conn.commit()
    assert stored == {ack["appointment_uuid"] for ack in service.acknowledgements}
    assert stored < {booking["uuid"] for booking in bookings}
    clock.advance(minutes=10)
    assert not any(service.booking(uuid)["is_cancelled"] for uuid in stored)
    # The 30 the broken paging hid are the service's to cancel; the warning says so.
    missed = [b["uuid"] for b in bookings if b["uuid"] not in stored]
    assert len(missed) == 30 and all(service.booking(uuid)["is_cancelled"] for uuid in missed)


class NoLastPageSimulator(NapopravkuSimulator):
    """A server whose meta gives ``total`` but not ``last_page``."""

    def _appointments(self, request: SimRequest) -> SimResponse:
        response = super()._appointments(request)
        if response.status == 200:
            del response.body["result"]["meta"]["last_page"]
        return response


def test_pages_follow_total_when_last_page_is_missing(running, client_for, doctors, clock):
    service = running(NoLastPageSimulator(token=TOKEN, doctors=doctors, seed=24, clock=clock))
    bookings = service.generate(12, clock())
    client = client_for(service, "napopravku", TOKEN, "/api/v1")

    records = _fetch(service, client, clock() - timedelta(days=1), page_size=5)

    assert sorted(r["uuid"] for r in records) == sorted(b["uuid"] for b in bookings)
    assert [call.arg("paging[page]") for call in service.received("/appointments")] == [
        "1",
        "2",
        "3",
    ]


class NoMetaSimulator(NapopravkuSimulator):
    """A server whose list replies carry no ``meta`` at all."""

    def _appointments(self, request: SimRequest) -> SimResponse:
        response = super()._appointments(request)
        if response.status == 200:
            del response.body["result"]["meta"]
        return response


def test_without_meta_a_short_page_is_not_taken_for_the_last(running, client_for, doctors, clock):
    service = running(NoMetaSimulator(token=TOKEN, doctors=doctors, seed=27, clock=clock))
    bookings = service.generate(12, clock())
    client = client_for(service, "napopravku", TOKEN, "/api/v1")

    records = _fetch(service, client, clock() - timedelta(days=1), page_size=5)

    assert sorted(r["uuid"] for r in records) == sorted(b["uuid"] for b in bookings)
    pages = [call.arg("paging[page]") for call in service.received("/appointments")]
    assert pages == ["1", "2", "3", "4"]  # 5, 5, 2 and the empty page that ends the walk


def test_set_received_takes_laravel_booleans_in_json(running, clock):
    service = running(NapopravkuSimulator(token=TOKEN, clock=clock))
    first, second, third = (service.add_lead(clock()) for _ in range(3))
    url = f"{service.base_url}/api/v1/appointments/set-received"

    def acknowledge(booking, success):
        body = {"appointment_uuid": booking["uuid"], "success": success, "message": ""}
        return requests.post(url, json=body, headers=BEARER, timeout=5)

    assert acknowledge(first, 1).status_code == 200
    assert acknowledge(second, "0").status_code == 200
    refused = acknowledge(third, "yes")
    assert refused.status_code == 422 and set(refused.json()["errors"]) == {"success"}
    assert [ack["success"] for ack in service.acknowledgements] == [True, False]


# -- the whole pull, through the DAG --------------------------------------------------------
@pytest.fixture
def after_midnight():
    """The clock of the DAG, the simulator and the test: 00:07 Moscow, ticking."""
    with time_machine.travel(BOOKED_AT + timedelta(minutes=2), tick=True) as traveller:
        yield traveller


@pytest.fixture
def napopravku(after_midnight, clinic_conn, monkeypatch, airflow_db):
    from airflow.models.variable import Variable

    clinic = demo.generate(4, 3)
    demo.load(clinic_conn, clinic)
    clinic_conn.execute("truncate integration.leads, integration.lead_rejects cascade")
    clinic_conn.commit()
    service = NapopravkuSimulator(
        token=demo_secret("napopravku"),
        doctors=[(doctor_id, name) for doctor_id, name, *_ in clinic.doctors],
        clinic_ids=tuple(branch_id for branch_id, *_ in clinic.branches),
        seed=25,
    ).start()
    connection = {
        "conn_type": "http",
        "host": f"{service.base_url}/api/v1",
        "password": demo_secret("napopravku"),
    }
    monkeypatch.setenv("AIRFLOW_CONN_NAPOPRAVKU", json.dumps(connection))
    Variable.delete("leads_cursor_napopravku")
    yield service
    service.stop()
    Variable.delete("leads_cursor_napopravku")


def _run_pull():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag().get_dag("pull_leads_napopravku").test()


def test_a_booking_at_0005_moscow_is_fetched_and_acknowledged_exactly_once(
    after_midnight, napopravku, clinic_conn
):
    from airflow.models.variable import Variable

    # The last booking stored was at one minute past midnight, earlier the same day.
    Variable.set("leads_cursor_napopravku", "2026-12-02T00:01:00+03:00")
    booking = napopravku.add_lead(BOOKED_AT)

    assert _run_pull().state == "success"

    stored = clinic_conn.execute(
        "select external_id, created_at, acknowledged_at is not null"
        " from integration.leads where source = 'napopravku'"
    ).fetchall()
    clinic_conn.commit()
    assert stored == [(booking["uuid"], BOOKED_AT, True)]
    assert [ack["appointment_uuid"] for ack in napopravku.acknowledgements] == [booking["uuid"]]
    asked = napopravku.received("/appointments")[0]
    assert asked.arg("is_received") == "0"
    since = datetime.strptime(asked.arg("from"), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    assert since <= BOOKED_AT

    # Eleven minutes on the service would have cancelled it unacknowledged; it is kept, and
    # the next run neither fetches nor acknowledges it again.
    after_midnight.shift(timedelta(minutes=11))
    assert _run_pull().state == "success"
    assert len(napopravku.acknowledgements) == 1
    kept = napopravku.booking(booking["uuid"])
    assert kept["is_received"] is True and kept["is_cancelled"] is False
    assert clinic_conn.execute(
        "select count(*) from integration.leads where source = 'napopravku'"
    ).fetchone() == (1,)
