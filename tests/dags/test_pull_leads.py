"""Real dag.test() runs of the pull_leads_* DAGs against the lead-source simulators."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from ident_dev import demo
from ident_dev.simulators.base import Fault
from ident_dev.simulators.catalog import SimulatedService, build_simulators

MOSCOW = ZoneInfo("Europe/Moscow")
SOURCES = ["uis", "flexbe", "napopravku", "32top", "site_main"]
# Every test here runs on a pinned clock (the DAG, the simulators and the assertions all see
# it), so the suite means the same at any hour. The default is the hour that once broke CI:
# 02:57 Moscow, when "today at 08:00" was still in the future.
DEFAULT_MOMENT = datetime(2026, 12, 2, 2, 57, tzinfo=MOSCOW)
# Moments around which a day, a month or a year turns over in clinic time.
TURNING_MOMENTS = {
    "after_midnight": datetime(2026, 12, 2, 0, 3, tzinfo=MOSCOW),
    "before_midnight": datetime(2026, 12, 1, 23, 58, tzinfo=MOSCOW),
    "new_years_eve": datetime(2026, 12, 31, 23, 58, tzinfo=MOSCOW),
    "first_of_march": datetime(2027, 3, 1, 0, 3, tzinfo=MOSCOW),
    "daytime": datetime(2026, 12, 2, 14, 0, tzinfo=MOSCOW),
}

REAL_CLOCK = object()


@pytest.fixture
def clock(request):
    """The pinned clock (ticking from the moment a test asks for, else DEFAULT_MOMENT).

    ``REAL_CLOCK`` is for the rare test that compares our times with PostgreSQL's own
    ``now()``, which no Python clock reaches, and that does not depend on the hour.
    """
    moment = getattr(request, "param", DEFAULT_MOMENT)
    if moment is REAL_CLOCK:
        yield None
        return
    with time_machine.travel(moment, tick=True) as traveller:
        yield traveller


def _today_at(hour: int, minute: int = 0) -> datetime:
    """A time earlier today (clinic time), never in the future."""
    now = datetime.now(MOSCOW)
    moment = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return min(moment, now - timedelta(minutes=1))


def _minutes_ago(minutes: float) -> datetime:
    return datetime.now(MOSCOW) - timedelta(minutes=minutes)


@pytest.fixture
def small_clinic(clinic_conn):
    clinic = demo.generate(6, 3)
    demo.load(clinic_conn, clinic)
    clinic_conn.execute("truncate integration.leads, integration.lead_rejects cascade")
    clinic_conn.commit()
    return clinic


@pytest.fixture
def services(clock, small_clinic, monkeypatch, airflow_db) -> Iterator[dict[str, SimulatedService]]:
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


# Each source at the turn of a day; the other turning moments spread over the sources.
OVERLAP_CASES = [(source, "before_midnight") for source in SOURCES] + [
    (source, moment)
    for index, moment in enumerate(("after_midnight", "new_years_eve", "first_of_march", "daytime"))
    for source in (SOURCES[index], SOURCES[(index + 2) % len(SOURCES)])
]


@pytest.mark.parametrize(
    ("source", "clock"),
    [(source, TURNING_MOMENTS[moment]) for source, moment in OVERLAP_CASES],
    ids=[f"{source}-{moment}" for source, moment in OVERLAP_CASES],
    indirect=["clock"],
)
def test_overlapping_runs_store_exactly_the_expected_set(source, clock, services, clinic_conn):
    simulator = services[source].server
    # 50..46 minutes ago: across midnight, the month or the year when the clock says so.
    first = [simulator.add_lead(_minutes_ago(50 - n)) for n in range(5)]
    newest_first = _minutes_ago(46)
    assert _run(f"pull_leads_{source}").state == "success"
    assert len(_stored(clinic_conn, source)) == 5
    cursor = _cursor(source)
    assert cursor is not None
    assert abs(datetime.fromisoformat(cursor) - newest_first) < timedelta(minutes=1)

    # Five minutes on (past midnight for the "before" moments), three more leads.
    clock.shift(timedelta(minutes=5))
    later = [simulator.add_lead(_minutes_ago(3 - n)) for n in range(3)]
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
    from ident_hooks.leads.pull import pull_source
    from ident_hooks.leads.sources.ident_tickets import IdentTicketsSource

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

    client = IdentTicketsSource.client("site_main")
    conn = connect()
    try:
        with pytest.raises(CrashedBeforeCursor):
            pull_source(
                "site_main",
                kind="ident_tickets",
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


SWITCHED_OFF = "Интеграция отключена на стороне партнёра"


def _health_row(conn, source: str):
    from ident_hooks.config import load_config
    from ident_hooks.health.settings import load_alerts_config
    from ident_hooks.health.status import compute_health

    report = compute_health(conn, load_config(), load_alerts_config(), now=datetime.now(MOSCOW))
    conn.commit()
    return next(row for row in report.rows if row.key == f"lead_source:{source}")


def test_a_partner_that_switched_the_integration_off_fails_once_per_run_and_says_so(
    clock, services, clinic_conn, capfd, caplog
):
    simulator = services["site_main"].server
    clinic_conn.execute("delete from integration.dag_runs where dag_id = 'pull_leads_site_main'")
    clinic_conn.commit()
    simulator.add_lead(_minutes_ago(30))
    assert _run("pull_leads_site_main").state == "success"
    cursor = _cursor("site_main")
    missed = simulator.add_lead(_minutes_ago(1))

    # The partner switches the integration off: a plain 503 to every call.
    simulator.switched_off = "text"
    asked = len(simulator.received("GetTickets"))
    capfd.readouterr()
    caplog.clear()
    assert _run("pull_leads_site_main").state == "failed"
    assert len(simulator.received("GetTickets")) == asked + 1  # no HTTP or task retries
    printed = capfd.readouterr()
    text = printed.out + printed.err + caplog.text
    assert "ServiceSwitchedOff" in text
    assert "connection 'site_main' has switched the integration off on its side" in text
    assert "HTTP 503 (ident integration disabled)" in text
    assert "ask the partner to switch the integration back on" in text
    assert _cursor("site_main") == cursor
    assert missed["Id"] not in _stored(clinic_conn, "site_main")

    row = _health_row(clinic_conn, "site_main")
    assert row.state == "yellow"
    assert any(
        reason.startswith("Интеграция отключена на стороне партнёра") for reason in row.reasons
    )
    assert "switched the integration off" in row.last_error

    # Two minutes on, the next run asks once more and the row turns red.
    clock.shift(timedelta(minutes=2))
    assert _run("pull_leads_site_main").state == "failed"
    assert len(simulator.received("GetTickets")) == asked + 2
    row = _health_row(clinic_conn, "site_main")
    assert row.state == "red" and row.failures_in_a_row == 2
    assert any(
        reason.startswith("Интеграция отключена на стороне партнёра") for reason in row.reasons
    )
    assert _cursor("site_main") == cursor

    # Switched back on: the lead made meanwhile comes in and the reason is gone.
    simulator.switched_off = None
    assert _run("pull_leads_site_main").state == "success"
    assert missed["Id"] in _stored(clinic_conn, "site_main")
    assert datetime.fromisoformat(_cursor("site_main")) > datetime.fromisoformat(cursor)
    row = _health_row(clinic_conn, "site_main")
    assert row.state == "green" and not row.reasons


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


# loaded_at is PostgreSQL's now(); the acknowledgement times are the simulator's.
@pytest.mark.parametrize("clock", [REAL_CLOCK], ids=["real_clock"], indirect=True)
def test_napopravku_bookings_are_acknowledged_once_and_only_after_storing(
    clock, services, clinic_conn
):
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


SEVERAL_OF_A_KIND = """
clinic_timezone: Europe/Moscow
lead_sources:
  flexbe:
    kind: flexbe
    connection: flexbe
    interval_minutes: 2
  flexbe_promo:
    kind: flexbe
    connection: flexbe_promo
    interval_minutes: 2
sites:
  - name: main
    interval_minutes: 2
  - name: promo
    interval_minutes: 2
"""


def test_several_sources_of_one_kind_from_configuration_alone(
    clock, small_clinic, monkeypatch, airflow_db, clinic_conn, tmp_path
):
    """Two Flexbe landings and two IDENT-protocol sites: a YAML entry and a connection each."""
    from airflow.models.variable import Variable

    from ident_dev.simulators.catalog import SimulatedService
    from ident_dev.simulators.flexbe import FlexbeSimulator
    from ident_dev.simulators.ident_tickets import IdentTicketsSimulator

    config = tmp_path / "integrations.yaml"
    config.write_text(SEVERAL_OF_A_KIND)
    monkeypatch.setenv("IDENT_INTEGRATIONS_CONFIG", str(config))
    doctors = [(doctor_id, name) for doctor_id, name, *_ in small_clinic.doctors]
    keys = {name: f"{name}-key" for name in ("flexbe", "flexbe_promo", "site_main", "site_promo")}
    services = {
        "flexbe": FlexbeSimulator(api_key=keys["flexbe"], seed=1, doctors=doctors),
        "flexbe_promo": FlexbeSimulator(api_key=keys["flexbe_promo"], seed=2, doctors=doctors),
        "site_main": IdentTicketsSimulator(
            key=keys["site_main"], style="site", seed=3, doctors=doctors
        ),
        "site_promo": IdentTicketsSimulator(
            key=keys["site_promo"], style="site", seed=4, doctors=doctors
        ),
    }
    made = {}
    try:
        for number, (name, server) in enumerate(services.items()):
            server.start()
            service = SimulatedService(name, server, keys[name])
            monkeypatch.setenv(service.env_var, service.airflow_connection)
            Variable.delete(f"leads_cursor_{name}")
            made[name] = {
                str(lead.get("id", lead.get("Id")))
                for lead in (server.add_lead(_minutes_ago(30 - m)) for m in range(number + 1))
            }
        for name in services:
            assert _run(f"pull_leads_{name}").state == "success", name
    finally:
        for server in services.values():
            server.stop()

    for name, external_ids in made.items():
        assert set(_stored(clinic_conn, name)) == external_ids, name
        assert _cursor(name) is not None, name
    cursors = {name: datetime.fromisoformat(_cursor(name)) for name in services}
    assert len(set(cursors.values())) == len(services)  # each at its own newest lead
