"""Change-driven publishing (issue 11) against the simulators, with the clock passed as ``now``.

Each run after the first recomputes only the doctors the change log names and builds the
rest from the kept state; what it sends must be exactly what a full reread at the same
moment would send (the payload hash over every request of the run), and the services must
end up showing the change.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from ident_hooks import demo
from ident_hooks.http_client import ServiceError
from ident_hooks.schedule.aggregators import publisher
from ident_hooks.schedule.engine import compute_schedule
from ident_hooks.schedule.publish import publish_schedule, settings_for
from ident_hooks.schedule.reader import read_settings, read_snapshot
from ident_hooks.simulators.base import Fault
from ident_hooks.simulators.ident_timetable import IdentTimetableSimulator
from ident_hooks.simulators.napopravku import NapopravkuSimulator
from ident_hooks.simulators.prodoctorov import ProdoctorovSimulator

# 08:50 in Moscow. Publishing counts the cut-off from "now" rounded up to the half hour
# (09:00): runs a minute or two apart publish for the same moment, so any difference in
# what they send is the change itself.
NOW = datetime(2026, 12, 2, 5, 50, tzinfo=UTC)
NO_WAIT = {"backoff_seconds": 0, "sleep": lambda _seconds: None}


@pytest.fixture
def clinic(clinic_conn):
    demo.load(clinic_conn, demo.generate(6, 40, now=NOW))
    clinic_conn.execute(
        "truncate integration.publish_log, integration.publish_state, integration.leads,"
        " integration.schedule_state, integration.schedule_cells cascade"
    )
    clinic_conn.commit()
    return clinic_conn


class Clock:
    """The simulator's clock: the moment of the run being published."""

    now = NOW

    def __call__(self) -> datetime:
        return self.now


class Service:
    """One aggregator's simulator and a client pointed at it, with what it shows."""

    def __init__(self, name, server, client, clock):
        self.name, self.server, self.client, self.clock = name, server, client, clock

    def shows_free(self, conn, slot) -> bool:
        doctor, branch, day, start, _end = slot
        if self.name == "prodoctorov":
            cells = self.server.cells(branch, doctor)
            return any(c["dt"] == day and c["time_start"] == start and c["free"] for c in cells)
        if self.name == "napopravku":
            return any(s == start for s, _ in self.server.expanded_slots(branch, doctor, day))
        ids = dict(
            ((entity, clinic_id), ident_id)
            for entity, clinic_id, ident_id in conn.execute(
                "select entity, clinic_id, ident_id from integration.ident_ids"
            )
        )
        conn.commit()
        return any(
            interval["StartDateTime"][:16] == f"{day}T{start}" and not interval["IsBusy"]
            for interval in self.server.intervals(ids["branch", branch], ids["doctor", doctor])
        )


@pytest.fixture(params=["prodoctorov", "napopravku", "sberzdorovie"])
def service(request, started, service_connection):
    name, clock = request.param, Clock()
    if name == "prodoctorov":
        server = started(ProdoctorovSimulator(token="t"))
        url = server.base_url
    elif name == "napopravku":
        server = started(NapopravkuSimulator(token="t", clock=clock))
        url = f"{server.base_url}/api/v1"
    else:
        server = started(IdentTimetableSimulator(key="t"))
        url = server.base_url
    conn_id = service_connection(f"change_{name}", url, "t")
    return Service(name, server, publisher(name).client(conn_id, **NO_WAIT), clock)


def publish(conn, service, now, **options):
    service.clock.now = now
    return publish_schedule(service.name, conn=conn, client=service.client, now=now, **options)


def a_free_slot(conn: psycopg.Connection, aggregator: str, now: datetime, days: int = 2) -> tuple:
    """(doctor, branch, local day, HH:MM start, HH:MM end, start, end) of a free slot
    ``days`` days ahead."""
    row = read_settings(conn, aggregator)
    settings = settings_for(aggregator, row)
    snapshot = read_snapshot(conn, aggregator, row, now=now, days_ahead=settings.days_ahead)
    conn.rollback()
    free = compute_schedule(
        snapshot.work, snapshot.busy, snapshot.doctors, snapshot.rules, settings, now
    ).free
    day = (now + timedelta(days=days)).astimezone(UTC).date().isoformat()
    cell = free[free["local_date"] == day].iloc[len(free[free["local_date"] == day]) // 2]
    return (
        str(cell.doctor_id),
        str(cell.branch_id),
        day,
        str(cell.local_start),
        str(cell.local_end),
        cell.starts_at,
        cell.ends_at,
    )


def book(conn, slot, appointment_id="change-test") -> None:
    doctor, branch, *_, starts_at, ends_at = slot
    conn.execute(
        "insert into clinic.appointments (appointment_id, doctor_id, branch_id, starts_at, ends_at)"
        " values (%s, %s, %s, %s, %s)",
        (appointment_id, doctor, branch, starts_at, ends_at),
    )
    conn.commit()


def log(conn, aggregator) -> list[tuple]:
    rows = conn.execute(
        "select mode, status, doctors_recomputed, requests_sent, changes"
        " from integration.publish_log where aggregator = %s order by publish_id",
        (aggregator,),
    ).fetchall()
    conn.commit()
    return rows


def test_a_booking_and_its_cancellation_reach_the_service_recomputing_one_doctor(clinic, service):
    first = publish(clinic, service, NOW)
    slot = a_free_slot(clinic, service.name, NOW)
    assert first.status == "sent" and service.shows_free(clinic, slot[:5])

    book(clinic, slot)
    booked = publish(clinic, service, NOW + timedelta(minutes=1))
    assert not service.shows_free(clinic, slot[:5])
    # What the change-driven run sent is what a full reread at its moment sends.
    reread = publish(clinic, service, NOW + timedelta(minutes=1), on_change=False)
    assert reread.payload_hash == booked.payload_hash

    clinic.execute(
        "update clinic.appointments set status = 'cancelled' where appointment_id = 'change-test'"
    )
    clinic.commit()
    cancelled = publish(clinic, service, NOW + timedelta(minutes=2))
    assert service.shows_free(clinic, slot[:5])
    reread = publish(clinic, service, NOW + timedelta(minutes=2), on_change=False)
    assert reread.payload_hash == cancelled.payload_hash

    modes = [m for m in log(clinic, service.name) if m[0] != "poll"]
    assert [m[:3] for m in modes] == [
        ("full", "sent", None),
        ("changes", "sent", 1),
        ("changes", "sent", 1),
    ]
    if service.name != "napopravku":  # one branch document of several; the one timetable
        assert modes[1][3] == modes[2][3] == 1


def test_nothing_changed_reads_nothing_and_sends_nothing(clinic, service):
    publish(clinic, service, NOW)
    idle = publish(clinic, service, NOW + timedelta(seconds=30))
    assert (idle.mode, idle.doctors_recomputed, idle.requests_sent) == ("idle", 0, 0)


def test_a_failing_service_keeps_the_changes_until_it_accepts_them(clinic, service):
    publish(clinic, service, NOW)
    slot = a_free_slot(clinic, service.name, NOW)
    book(clinic, slot)
    service.server.inject(Fault(status=503, times=100))
    with pytest.raises(ServiceError):
        publish(clinic, service, NOW + timedelta(minutes=1))
    service.server.clear_faults()
    assert service.shows_free(clinic, slot[:5])  # the service never got it

    later = publish(clinic, service, NOW + timedelta(minutes=2))
    assert (later.mode, later.doctors_recomputed) == ("changes", 1)
    assert not service.shows_free(clinic, slot[:5])
    assert [m[:2] for m in log(clinic, service.name)] == [
        ("full", "sent"),
        ("changes", "failed"),
        ("changes", "sent"),
    ]


def test_a_burst_of_a_hundred_changes_is_one_run(clinic, service):
    publish(clinic, service, NOW)
    doctors = [d for (d,) in clinic.execute("select doctor_id from clinic.doctors")]
    clinic.commit()
    for n in range(100):
        clinic.execute(
            "insert into clinic.appointments"
            " (appointment_id, doctor_id, branch_id, starts_at, ends_at)"
            " select %s, %s, branch_id, starts_at, starts_at + interval '15 minutes'"
            "   from clinic.work_intervals where doctor_id = %s and starts_at > %s"
            "  order by starts_at offset %s limit 1",
            (
                f"burst-{n}",
                doctors[n % len(doctors)],
                doctors[n % len(doctors)],
                NOW,
                n // len(doctors),
            ),
        )
        clinic.commit()
    run = publish(clinic, service, NOW + timedelta(minutes=1))
    assert (run.mode, run.doctors_recomputed) == ("changes", len(doctors))
    assert run.changes >= 1
    reread = publish(clinic, service, NOW + timedelta(minutes=1), on_change=False)
    assert reread.payload_hash == run.payload_hash
    assert publish(clinic, service, NOW + timedelta(minutes=1, seconds=5)).mode == "idle"


@pytest.mark.parametrize(
    "later",
    [
        datetime(2026, 12, 2, 21, 1, tzinfo=UTC),  # 00:01 in Moscow: a new day
        datetime(2026, 12, 31, 20, 58, tzinfo=UTC),  # 23:58 on New Year's Eve after a month
    ],
)
def test_the_first_run_of_a_new_local_day_is_a_full_snapshot(clinic, service, later):
    publish(clinic, service, NOW)
    run = publish(clinic, service, later)
    assert run.mode == "full" and run.requests_sent >= 1


def test_a_schedule_change_in_settings_or_branches_recomputes_everything(clinic, service):
    publish(clinic, service, NOW)
    clinic.execute(
        "update clinic.branches set name = name || ' (центр)'"
        " where branch_id = (select min(branch_id) from clinic.branches)"
    )
    clinic.commit()
    assert publish(clinic, service, NOW + timedelta(minutes=1)).mode == "full"


def test_a_stale_clinic_heartbeat_withdraws_the_near_days_until_it_is_back(clinic, service):
    clinic.execute("truncate clinic.sync_heartbeat")
    clinic.execute("insert into clinic.sync_heartbeat values ('ident', %s)", (NOW,))
    clinic.commit()
    publish(clinic, service, NOW)
    tomorrow = a_free_slot(clinic, service.name, NOW, days=1)
    later = a_free_slot(clinic, service.name, NOW, days=5)  # a Monday
    assert service.shows_free(clinic, tomorrow[:5]) and service.shows_free(clinic, later[:5])

    # The sync stops; 40 minutes on (the limit is 30) the near days are withdrawn.
    stale = publish(clinic, service, NOW + timedelta(minutes=40))
    assert not service.shows_free(clinic, tomorrow[:5])
    assert service.shows_free(clinic, later[:5])
    assert "clinic data stale" in " ".join(stale.notes)
    assert stale.mode == "idle"  # nothing in the clinic changed: nothing was read

    clinic.execute(
        "update clinic.sync_heartbeat set synced_at = %s", (NOW + timedelta(minutes=41),)
    )
    clinic.commit()
    back = publish(clinic, service, NOW + timedelta(minutes=42))
    assert service.shows_free(clinic, tomorrow[:5])
    assert back.notes == []
    clinic.execute("truncate clinic.sync_heartbeat")
    clinic.commit()
