"""Real dag.test() runs of the pull_leads_* DAGs against the lead-source simulators."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ident_hooks import demo
from ident_hooks.simulators.base import Fault
from ident_hooks.simulators.catalog import SimulatedService, build_simulators

MOSCOW = ZoneInfo("Europe/Moscow")
SOURCES = ["uis", "flexbe", "napopravku", "32top", "site_main"]


def _today_at(hour: int, minute: int = 0) -> datetime:
    """A time earlier today (clinic time), never in the future."""
    now = datetime.now(MOSCOW)
    moment = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return min(moment, now - timedelta(minutes=1))


@pytest.fixture
def small_clinic(clinic_conn):
    clinic = demo.generate(6, 3)
    demo.load(clinic_conn, clinic)
    clinic_conn.execute("truncate integration.leads, integration.lead_rejects")
    clinic_conn.commit()
    return clinic


@pytest.fixture
def services(small_clinic, monkeypatch, airflow_db) -> Iterator[dict[str, SimulatedService]]:
    from airflow.models.variable import Variable

    doctors = [(doctor_id, name) for doctor_id, name, *_ in small_clinic.doctors]
    branches = [branch_id for branch_id, *_ in small_clinic.branches]
    built = build_simulators(doctors, branches, seed=7)
    for service in built.values():
        service.server.start()
        monkeypatch.setenv(service.env_var, service.airflow_connection)
        Variable.delete(f"leads_cursor_{service.conn_id}")
    yield built
    for service in built.values():
        service.server.stop()


def _run(dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag().get_dag(dag_id).test()


def _stored(conn, source: str) -> dict[str, tuple]:
    rows = conn.execute(
        "select external_id, utm_source, utm_campaign, referrer_host, landing_url"
        " from integration.leads where source = %s",
        (source,),
    ).fetchall()
    conn.commit()
    return {row[0]: row[1:] for row in rows}


def _cursor(source: str) -> str | None:
    from airflow.models.variable import Variable

    return Variable.get(f"leads_cursor_{source}", default_var=None)


@pytest.mark.parametrize("source", SOURCES)
def test_overlapping_runs_store_exactly_the_expected_set(source, services, clinic_conn):
    simulator = services[source].server
    first = [simulator.add_lead(_today_at(8, n)) for n in range(5)]
    assert _run(f"pull_leads_{source}").state == "success"
    assert len(_stored(clinic_conn, source)) == 5
    cursor = _cursor(source)
    assert cursor is not None
    assert datetime.fromisoformat(cursor).date() == _today_at(8).date()

    later = [simulator.add_lead(_today_at(9, n)) for n in range(3)]
    assert _run(f"pull_leads_{source}").state == "success"
    stored = _stored(clinic_conn, source)
    assert len(stored) == len(first) + len(later)
    total = clinic_conn.execute(
        "select count(*), count(distinct external_id) from integration.leads where source = %s",
        (source,),
    ).fetchone()
    assert total == (8, 8)
    assert datetime.fromisoformat(_cursor(source)) > datetime.fromisoformat(cursor)


def test_failure_between_storing_and_moving_the_cursor_loses_and_duplicates_nothing(
    services, clinic_conn, clinic_db_url
):
    import psycopg

    from ident_hooks.db import connect
    from ident_hooks.http_client import ServiceClient
    from ident_hooks.leads.pull import pull_source
    from ident_hooks.leads.sources import adapter_for

    simulator = services["site_main"].server
    for n in range(4):
        simulator.add_lead(_today_at(7, n))

    class CrashedBeforeCursor(RuntimeError):
        pass

    seen_when_cursor_written = []

    def crash(_value: str) -> None:
        # What another session sees at the moment the cursor would move: committed rows only.
        with psycopg.connect(clinic_db_url) as other:
            seen_when_cursor_written.append(
                other.execute(
                    "select count(*) from integration.leads where source = 'site_main'"
                ).fetchone()[0]
            )
        raise CrashedBeforeCursor

    client = ServiceClient("site_main", auth=adapter_for("site_main").auth)
    conn = connect()
    try:
        with pytest.raises(CrashedBeforeCursor):
            pull_source(
                "site_main",
                conn=conn,
                client=client,
                clinic_timezone="Europe/Moscow",
                now=datetime.now(UTC),
                read_cursor=lambda: None,
                write_cursor=crash,
            )
    finally:
        conn.rollback()  # a crash: whatever was not committed is gone
        conn.close()
    assert seen_when_cursor_written == [4]  # committed before the cursor was touched
    assert len(_stored(clinic_conn, "site_main")) == 4
    assert _cursor("site_main") is None  # ... and the cursor did not move

    simulator.add_lead(_today_at(7, 30))
    assert _run("pull_leads_site_main").state == "success"
    rows = clinic_conn.execute(
        "select count(*), count(distinct external_id) from integration.leads"
        " where source = 'site_main'"
    ).fetchone()
    assert rows == (5, 5)
    assert _cursor("site_main") is not None


def test_server_errors_are_retried_then_the_run_succeeds(services, clinic_conn):
    simulator = services["flexbe"].server
    simulator.add_lead(_today_at(6))
    simulator.inject(Fault(status=503, body="upstream down", times=2))
    assert _run("pull_leads_flexbe").state == "success"
    assert len(_stored(clinic_conn, "flexbe")) == 1
    assert len(simulator.received()) == 3  # two 503s, then the page


def test_wrong_key_fails_at_once_with_a_clear_message(services, monkeypatch, capfd, caplog):
    service = services["32top"]
    service.server.add_lead(_today_at(6))
    service.secret = "not-the-key"
    monkeypatch.setenv(service.env_var, service.airflow_connection)

    run = _run("pull_leads_32top")
    assert run.state == "failed"
    printed = capfd.readouterr()
    text = printed.out + printed.err + caplog.text
    assert "403" in text and "Invalid IDENT-Integration-Key" in text
    assert "not-the-key" not in text
    # Refused at once: one request, no HTTP retries and no task retries.
    assert len(service.server.received("GetTickets")) == 1


def test_malformed_records_are_quarantined_and_the_rest_stored(services, clinic_conn):
    simulator = services["uis"].server
    good = [simulator.add_lead(_today_at(5, n)) for n in range(3)]
    simulator.add_malformed("missing_id", _today_at(5, 10))
    simulator.add_malformed("bad_time", _today_at(5, 11))
    simulator.add_malformed("wrong_type", _today_at(5, 12))
    simulator.add_lead(
        _today_at(5, 13), visitor_name="Robert'); DROP TABLE integration.leads;-- 🦷\u200b"
    )

    assert _run("pull_leads_uis").state == "success"
    stored = _stored(clinic_conn, "uis")
    assert {str(lead["id"]) for lead in good} <= set(stored)
    assert len(stored) == 4
    name = clinic_conn.execute(
        "select name from integration.leads where source = 'uis' and name like 'Robert%'"
    ).fetchone()[0]
    assert name == "Robert'); DROP TABLE integration.leads;-- 🦷\u200b"
    rejects = clinic_conn.execute(
        "select reason from integration.lead_rejects where source = 'uis' order by reason"
    ).fetchall()
    assert len(rejects) == 3
    assert all(reason for (reason,) in rejects)

    # Seen again on the next run: counted, not duplicated.
    assert _run("pull_leads_uis").state == "success"
    seen = clinic_conn.execute(
        "select count(*), min(times_seen) from integration.lead_rejects where source = 'uis'"
    ).fetchone()
    assert seen == (3, 2)


def test_napopravku_bookings_are_acknowledged_once_and_only_after_storing(services, clinic_conn):
    simulator = services["napopravku"].server
    bookings = [simulator.add_lead(datetime.now(UTC) - timedelta(minutes=3)) for _ in range(3)]
    uuids = {booking["uuid"] for booking in bookings}
    # Every acknowledgement attempt of the first run fails: the service is down for it.
    simulator.inject(Fault(status=502, times=100, path_contains="set-received"))

    run = _run("pull_leads_napopravku")
    assert {ti.task_id: ti.state for ti in run.get_task_instances()}["pull_and_store"] == (
        "success"
    )
    assert set(_stored(clinic_conn, "napopravku")) == uuids
    assert simulator.acknowledgements == []
    simulator.clear_faults()

    assert _run("pull_leads_napopravku").state == "success"
    acknowledged = [ack["appointment_uuid"] for ack in simulator.acknowledgements]
    assert sorted(acknowledged) == sorted(uuids)  # each exactly once
    stored_at = dict(
        clinic_conn.execute(
            "select external_id, loaded_at from integration.leads where source = 'napopravku'"
        ).fetchall()
    )
    for ack in simulator.acknowledgements:
        assert ack["acknowledged_at"] > stored_at[ack["appointment_uuid"]]
    booked = clinic_conn.execute(
        "select count(*) from integration.leads where source = 'napopravku'"
        " and doctor_id is not null and requested_start is not null"
        " and acknowledged_at is not null"
    ).fetchone()[0]
    assert booked == 3

    assert _run("pull_leads_napopravku").state == "success"
    assert len(simulator.acknowledgements) == 3  # nothing acknowledged twice


def test_a_booking_that_cannot_be_stored_is_answered_not_left_to_expire(services, clinic_conn):
    simulator = services["napopravku"].server
    good = simulator.add_lead(datetime.now(UTC) - timedelta(minutes=2))
    broken = simulator.add_lead(datetime.now(UTC) - timedelta(minutes=2), start_time="когда-нибудь")
    assert _run("pull_leads_napopravku").state == "success"

    assert set(_stored(clinic_conn, "napopravku")) == {good["uuid"]}
    answers = {ack["appointment_uuid"]: ack for ack in simulator.acknowledgements}
    assert answers[good["uuid"]]["success"] is True
    assert answers[broken["uuid"]]["success"] is False
    assert "start_time" in answers[broken["uuid"]]["message"]
    assert simulator.booking(broken["uuid"])["is_cancelled"] is False


def test_a_branch_the_clinic_does_not_know_is_kept_as_sent(services, clinic_conn):
    simulator = services["napopravku"].server
    booking = simulator.add_lead(datetime.now(UTC) - timedelta(minutes=1))
    booking["clinic"] = {"mis_clinic_id": "branch-from-elsewhere"}
    assert _run("pull_leads_napopravku").state == "success"
    branch = clinic_conn.execute(
        "select branch_id from integration.leads where external_id = %s", (booking["uuid"],)
    ).fetchone()[0]
    assert branch == "branch-from-elsewhere"


WITH_TAGS = {
    "uis": {
        "utm_source": "yandex",
        "utm_medium": "cpc",
        "utm_campaign": "implant_msk",
        "referrer": "https://www.yandex.ru/search/?text=имплант",
        "entrance_page": "https://ulybka-clinic.ru/implantatsiya/",
    },
    "flexbe": {
        "utm": {
            "utm_source": "vk",
            "utm_medium": "social",
            "utm_campaign": "spring",
            "utm_term": "",
            "utm_content": "",
            "url": "https://promo.ulybka-clinic.ru/spring/",
        }
    },
    "32top": {
        "UtmSource": "32top",
        "UtmMedium": "referral",
        "UtmCampaign": "catalog",
        "HttpReferer": "https://32top.ru/msk/clinic/ulybka/",
    },
    "site_main": {
        "UtmSource": "google",
        "UtmMedium": "cpc",
        "UtmCampaign": "brand",
        "HttpReferer": "https://www.google.com/",
    },
}
EXPECTED = {
    "uis": ("yandex", "implant_msk", "yandex.ru"),
    "flexbe": ("vk", "spring", None),
    "32top": ("32top", "catalog", "32top.ru"),
    "site_main": ("google", "brand", "google.com"),
}


@pytest.mark.parametrize("source", sorted(WITH_TAGS))
def test_utm_and_referrer_survive(source, services, clinic_conn):
    record = services[source].server.add_lead(_today_at(4), **WITH_TAGS[source])
    assert _run(f"pull_leads_{source}").state == "success"
    external_id = str(record.get("id", record.get("Id")))
    stored = _stored(clinic_conn, source)[external_id]
    assert stored[:3] == EXPECTED[source]


def test_utm_tags_missing_from_fields_come_from_the_landing_url(services, clinic_conn):
    record = services["uis"].server.add_lead(
        _today_at(4),
        utm_source=None,
        utm_medium=None,
        utm_campaign=None,
        utm_term=None,
        utm_content=None,
        referrer=None,
        referrer_domain=None,
        entrance_page="https://ulybka-clinic.ru/akcii/?utm_source=ok&utm_campaign=autumn",
    )
    assert _run("pull_leads_uis").state == "success"
    stored = _stored(clinic_conn, "uis")[str(record["id"])]
    assert stored == ("ok", "autumn", None, record["entrance_page"])


def test_run_with_new_leads_updates_the_leads_asset(services, clinic_conn):
    services["32top"].server.add_lead(_today_at(3))
    run = _run("pull_leads_32top")
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["announce_leads"] == "success"

    run = _run("pull_leads_32top")  # nothing new: no asset event
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["announce_leads"] == "skipped"
