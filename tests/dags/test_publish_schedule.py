"""Real dag.test() runs of the publish_schedule_* DAGs against the aggregator simulators.

What the simulators received is checked against the clinic database with SQL written
independently of the slot engine: no free slot overlaps an appointment or leaves work
time, every slot has the configured length, the cut-off and horizon hold.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ident_dev import demo
from ident_dev.simulators.base import Fault
from ident_dev.simulators.catalog import SimulatedService, build_simulators

AGGREGATORS = ["prodoctorov", "napopravku", "sberzdorovie", "32top"]


@pytest.fixture
def clinic(clinic_conn):
    network = demo.generate(12, 40)
    demo.load(clinic_conn, network)
    clinic_conn.execute(
        "truncate integration.publish_log, integration.publish_state, integration.leads,"
        " integration.publish_budget"
    )
    clinic_conn.commit()
    return network


@pytest.fixture
def services(clinic, monkeypatch, airflow_db) -> Iterator[dict[str, SimulatedService]]:
    doctors = [(doctor_id, name) for doctor_id, name, *_ in clinic.doctors]
    built = build_simulators(doctors, [branch_id for branch_id, *_ in clinic.branches])
    for service in built.values():
        service.server.start()
        monkeypatch.setenv(service.env_var, service.airflow_connection)
    yield built
    for service in built.values():
        service.server.stop()


def _run(aggregator: str):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag().get_dag(f"publish_schedule_{aggregator}").test()


def _zones(clinic) -> dict[str, ZoneInfo]:
    return {branch_id: ZoneInfo(zone) for branch_id, _, zone, _ in clinic.branches}


def _local(day: str, hhmm: str, zone: ZoneInfo) -> datetime:
    moment = datetime.fromisoformat(f"{day}T00:00").replace(tzinfo=zone)
    hours, minutes = map(int, hhmm.split(":"))
    return moment + timedelta(hours=hours, minutes=minutes)


def received_free_slots(aggregator: str, service: SimulatedService, clinic) -> list[tuple]:
    """(doctor_id, branch_id, starts_at, ends_at) of every free slot the service now shows."""
    zones, slots = _zones(clinic), []
    if aggregator == "prodoctorov":
        sim = service.server
        for branch_id, document in sim.schedules.items():
            for doctor_id in document["doctors"]:
                for cell in sim.cells(branch_id, doctor_id):
                    if cell["free"]:
                        zone = zones[branch_id]
                        slots.append(
                            (
                                doctor_id,
                                branch_id,
                                _local(cell["dt"], cell["time_start"], zone),
                                _local(cell["dt"], cell["time_end"], zone),
                            )
                        )
    elif aggregator == "napopravku":
        sim = service.server
        for clinic_id, doctor_id, day in list(sim.slots):
            for start, end in sim.expanded_slots(clinic_id, doctor_id, day):
                zone = zones[clinic_id]
                slots.append(
                    (doctor_id, clinic_id, _local(day, start, zone), _local(day, end, zone))
                )
    else:
        from ident_hooks.db import connect

        # The receiver knows IDENT's integer ids; the clinic's ids are their aliases.
        with connect() as conn:
            clinic_ids = dict(conn.execute("select ident_id, clinic_id from integration.ident_ids"))
        sim = service.timetable or service.server
        for (branch_id, doctor_id), intervals in sim.timetable.items():
            for interval in intervals:
                if not interval["IsBusy"]:
                    start = datetime.fromisoformat(interval["StartDateTime"])
                    slots.append(
                        (
                            clinic_ids[doctor_id],
                            clinic_ids[branch_id],
                            start,
                            start + timedelta(minutes=interval["LengthInMinutes"]),
                        )
                    )
    return slots


def _violations(conn, slots: list[tuple]) -> dict[str, int]:
    conn.execute(
        "create temp table if not exists published (doctor_id text, branch_id text,"
        " starts_at timestamptz, ends_at timestamptz)"
    )
    conn.execute("truncate published")
    with conn.cursor().copy("copy published from stdin") as copy:
        for slot in slots:
            copy.write_row(slot)
    counts = conn.execute(
        """
        select
          (select count(*) from published p where exists (
              select 1 from clinic.appointments a
               where a.doctor_id = p.doctor_id and a.status <> 'cancelled'
                 and a.starts_at < p.ends_at and a.ends_at > p.starts_at)) as overlapping,
          (select count(*) from published p where not exists (
              select 1 from clinic.work_intervals w
               where w.doctor_id = p.doctor_id and w.branch_id = p.branch_id
                 and w.starts_at <= p.starts_at and p.ends_at <= w.ends_at)) as outside_work,
          (select count(*) from published
            where ends_at - starts_at <> interval '30 minutes') as wrong_length,
          (select count(*) from published
            where starts_at < now() + interval '2 hours') as before_cutoff,
          (select count(*) from (select doctor_id, starts_at from published
                                  group by 1, 2 having count(*) > 1) d) as duplicated
        """
    ).fetchone()
    conn.commit()
    return dict(
        zip(
            ["overlapping", "outside_work", "wrong_length", "before_cutoff", "duplicated"],
            counts,
            strict=True,
        )
    )


@pytest.mark.parametrize("aggregator", AGGREGATORS)
def test_publishes_exactly_the_free_time(aggregator, services, clinic, clinic_conn):
    assert _run(aggregator).state == "success"
    slots = received_free_slots(aggregator, services[aggregator], clinic)
    assert len(slots) > 1000
    assert _violations(clinic_conn, slots) == {
        "overlapping": 0,
        "outside_work": 0,
        "wrong_length": 0,
        "before_cutoff": 0,
        "duplicated": 0,
    }
    # Free time the database has, independently: 30-minute slots inside work intervals
    # minus appointments is what was published (every doctor, every day of the horizon).
    log = clinic_conn.execute(
        "select status, free_slots, doctors, requests_sent, bytes_sent, http_status"
        " from integration.publish_log where aggregator = %s",
        (aggregator,),
    ).fetchall()
    assert len(log) == 1
    status, free_slots, doctors, requests_sent, bytes_sent, http_status = log[0]
    assert status == "sent" and doctors == 12 and bytes_sent > 0
    if aggregator in ("sberzdorovie", "32top"):
        assert requests_sent == 1  # IDENT's whole timetable is one request
    else:
        assert requests_sent >= 3  # per branch, 3 branches
    assert free_slots == len(slots)
    assert 200 <= http_status < 300
    last_day = max(slot[2] for slot in slots).astimezone(UTC).date()
    horizon = 32 if aggregator == "napopravku" else 30
    assert last_day <= datetime.now(UTC).date() + timedelta(days=horizon + 1)


def test_unchanged_schedule_is_not_sent_again(services, clinic_conn):
    assert _run("prodoctorov").state == "success"
    received = len(services["prodoctorov"].server.received())
    assert _run("prodoctorov").state == "success"
    assert len(services["prodoctorov"].server.received()) == received
    statuses = [
        row[0]
        for row in clinic_conn.execute(
            "select status from integration.publish_log where aggregator = 'prodoctorov'"
            " order by publish_id"
        )
    ]
    assert statuses == ["sent", "skipped"]


def test_new_appointment_takes_its_slot_off_the_market(services, clinic, clinic_conn):
    assert _run("sberzdorovie").state == "success"
    slots = received_free_slots("sberzdorovie", services["sberzdorovie"], clinic)
    doctor_id, branch_id, starts_at, ends_at = slots[len(slots) // 2]
    clinic_conn.execute(
        "insert into clinic.appointments (appointment_id, doctor_id, branch_id, starts_at,"
        " ends_at, status) values ('new-1', %s, %s, %s, %s, 'scheduled')",
        (doctor_id, branch_id, starts_at, ends_at),
    )
    clinic_conn.commit()
    assert _run("sberzdorovie").state == "success"
    after = received_free_slots("sberzdorovie", services["sberzdorovie"], clinic)
    assert (doctor_id, branch_id, starts_at, ends_at) not in after
    assert len(after) == len(slots) - 1


def test_open_lead_for_a_doctor_and_time_holds_that_time(services, clinic, clinic_conn):
    assert _run("32top").state == "success"
    slots = received_free_slots("32top", services["32top"], clinic)
    doctor_id, branch_id, starts_at, ends_at = slots[len(slots) // 3]
    clinic_conn.execute(
        "insert into integration.leads (source, external_id, created_at, doctor_id,"
        " requested_start, requested_end, raw) values"
        " ('32top', 'hold-1', now(), %s, %s, %s, '{}')",
        (doctor_id, starts_at, ends_at),
    )
    clinic_conn.commit()
    assert _run("32top").state == "success"
    held = received_free_slots("32top", services["32top"], clinic)
    assert (doctor_id, branch_id, starts_at, ends_at) not in held

    clinic_conn.execute("update integration.leads set status = 'done' where external_id = 'hold-1'")
    clinic_conn.commit()
    assert _run("32top").state == "success"
    released = received_free_slots("32top", services["32top"], clinic)
    assert (doctor_id, branch_id, starts_at, ends_at) in released


def test_server_errors_then_success(services, clinic_conn):
    server = services["prodoctorov"].server
    server.inject(Fault(status=502, times=2))
    assert _run("prodoctorov").state == "success"
    statuses = [
        r[0]
        for r in clinic_conn.execute(
            "select status from integration.publish_log where aggregator = 'prodoctorov'"
        )
    ]
    assert statuses == ["sent"]


def test_rate_limit_with_retry_after_is_honoured(services):
    server = services["sberzdorovie"].server
    server.inject(Fault(status=429, body="slow down", retry_after="2", times=1))
    assert _run("sberzdorovie").state == "success"
    first, second = server.received()[:2]
    assert first.received_at + 1.9 <= second.received_at


def test_wrong_token_fails_at_once_without_sending_more(services, monkeypatch, clinic_conn):
    service = services["prodoctorov"]
    service.secret = "wrong-token"
    monkeypatch.setenv(service.env_var, service.airflow_connection)
    assert _run("prodoctorov").state == "failed"
    assert len(service.server.received()) == 1
    status, error = clinic_conn.execute(
        "select status, error from integration.publish_log where aggregator = 'prodoctorov'"
    ).fetchone()
    assert status == "failed" and "401" in error and "wrong-token" not in error


def test_timeout_is_retried_then_reported(services, monkeypatch, clinic_conn):
    import json

    service = services["napopravku"]
    connection = json.loads(service.airflow_connection)
    connection["extra"] = json.dumps({"timeout": 0.5})
    monkeypatch.setenv(service.env_var, json.dumps(connection))
    service.server.inject(Fault(status=0, delay_seconds=1.0, times=1))  # one slow reply
    assert _run("napopravku").state == "success"
    assert len(service.server.received("clinics")) == 2  # timed out once, then sent


def test_nonsense_settings_stop_the_run_and_publish_nothing(services, clinic_conn):
    # The database refuses such a row; the DAG checks again in case settings reach it
    # some other way (an older schema, a hand-made view), so the constraint is lifted here.
    clinic_conn.execute(
        "alter table clinic.export_settings drop constraint export_settings_slot_minutes_check"
    )
    clinic_conn.execute(
        "insert into clinic.export_settings (aggregator, slot_minutes) values ('prodoctorov', 0)"
    )
    clinic_conn.commit()
    try:
        assert _run("prodoctorov").state == "failed"
        assert services["prodoctorov"].server.received() == []
        status, error = clinic_conn.execute(
            "select status, error from integration.publish_log where aggregator = 'prodoctorov'"
        ).fetchone()
        assert status == "failed" and "slot_minutes" in error
    finally:
        clinic_conn.rollback()
        clinic_conn.execute("delete from clinic.export_settings")
        clinic_conn.execute(
            "alter table clinic.export_settings add constraint"
            " export_settings_slot_minutes_check"
            " check (slot_minutes between 5 and 480)"
        )
        clinic_conn.commit()


A_NEW_IDENT_AGGREGATOR = """
clinic_timezone: Europe/Moscow
aggregators:
  docdoc:
    kind: ident_timetable
    title: DocDoc
    connection: docdoc
    interval_minutes: 10
"""


def test_a_new_aggregator_on_the_ident_protocol_is_configuration_only(
    clinic, clinic_conn, monkeypatch, airflow_db, tmp_path
):
    """A YAML entry and a connection: a DAG, the whole timetable sent, a label for staff."""
    from ident_hooks.config import parse_config

    config_file = tmp_path / "integrations.yaml"
    config_file.write_text(A_NEW_IDENT_AGGREGATOR)
    monkeypatch.setenv("IDENT_INTEGRATIONS_CONFIG", str(config_file))
    import yaml

    config = parse_config(yaml.safe_load(A_NEW_IDENT_AGGREGATOR))
    doctors = [(doctor_id, name) for doctor_id, name, *_ in clinic.doctors]
    branches = [branch_id for branch_id, *_ in clinic.branches]
    service = build_simulators(doctors, branches, config=config)["docdoc"]
    service.server.start()
    try:
        monkeypatch.setenv(service.env_var, service.airflow_connection)
        assert _run("docdoc").state == "success"
    finally:
        service.server.stop()

    received = service.server.snapshot
    assert service.server.accepted == 1  # the whole timetable, one request
    assert set(received.branches.values()) == {name for _, name, *_ in clinic.branches}
    active = clinic_conn.execute("select count(*) from clinic.doctors where is_active").fetchone()
    assert len(received.doctors) == active[0]
    assert received.intervals
    assert all(isinstance(interval["DoctorId"], int) for interval in received.intervals)
    logged, title = clinic_conn.execute(
        "select (select count(*) from integration.publish_log where aggregator = 'docdoc'"
        "        and status = 'sent'),"
        "       (select title from integration.integrations"
        "         where role = 'aggregator' and name = 'docdoc')"
    ).fetchone()
    assert (logged, title) == (1, "DocDoc")
