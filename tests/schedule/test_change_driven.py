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

from ident_dev.simulators.base import Fault
from ident_dev.simulators.ident_timetable import IdentTimetableSimulator
from ident_dev.simulators.napopravku import NapopravkuSimulator
from ident_dev.simulators.prodoctorov import ProdoctorovSimulator
from ident_hooks.http_client import ServiceError
from ident_hooks.schedule.aggregators import publisher
from ident_hooks.schedule.engine import compute_schedule
from ident_hooks.schedule.publish import publish_schedule, settings_for
from ident_hooks.schedule.reader import read_settings, read_snapshot

# 08:50 in Moscow, the moment of the demo (conftest's ``unpublished_demo``). Today's
# cut-off counts from each run's moment exactly; the demo's slots start on the half hour,
# so runs a minute or two apart cross none of them: any difference in what they send is
# the change itself.
NOW = datetime(2026, 12, 2, 5, 50, tzinfo=UTC)
NO_WAIT = {"backoff_seconds": 0, "sleep": lambda _seconds: None}
SECRET = "change-test-secret"


@pytest.fixture
def clinic(unpublished_demo):
    return unpublished_demo


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
        server = started(ProdoctorovSimulator(token=SECRET))
        url = server.base_url
    elif name == "napopravku":
        server = started(NapopravkuSimulator(token=SECRET, clock=clock))
        url = f"{server.base_url}/api/v1"
    else:
        server = started(IdentTimetableSimulator(key=SECRET))
        url = server.base_url
    conn_id = service_connection(f"change_{name}", url, SECRET)
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


# -- exact at every send (issue 17) ------------------------------------------------------

# 14:13 in Moscow. With "no slots in the next 2 hours" a 16:20 slot is bookable now: IDENT
# applies the rule at the moment of each send; rounding "now" up to the half hour withheld it.
AFTERNOON = datetime(2026, 12, 2, 11, 13, tzinfo=UTC)


def a_doctor_from(conn, start: str, end: str, doctor_id: str = "d-afternoon") -> tuple:
    """A new doctor working ``start``-``end`` (Moscow, 2026-12-02) in a Moscow branch:
    the slot tuple of their first 30-minute slot."""
    (branch,) = conn.execute(
        "select min(branch_id) from clinic.branches where timezone = 'Europe/Moscow'"
    ).fetchone()
    conn.execute(
        "insert into clinic.doctors (doctor_id, full_name, specialty)"
        " values (%s, 'Дневная Анна Сергеевна', 'Терапевт')",
        (doctor_id,),
    )
    conn.execute(
        "insert into clinic.work_intervals (doctor_id, branch_id, starts_at, ends_at)"
        " values (%s, %s, %s::timestamp at time zone 'Europe/Moscow',"
        " %s::timestamp at time zone 'Europe/Moscow')",
        (doctor_id, branch, f"2026-12-02 {start}", f"2026-12-02 {end}"),
    )
    conn.commit()
    first_end = (datetime.fromisoformat(f"2026-12-02T{start}") + timedelta(minutes=30)).strftime(
        "%H:%M"
    )
    return (doctor_id, branch, "2026-12-02", start, first_end)


def test_todays_first_bookable_slot_goes_at_the_exact_cut_off(clinic, service):
    slot = a_doctor_from(clinic, "16:20", "17:20")
    publish(clinic, service, AFTERNOON)
    assert service.shows_free(clinic, slot)


def test_time_alone_resends_on_the_timer_once_a_slot_crossed_the_cut_off(clinic, service):
    slot = a_doctor_from(clinic, "16:20", "17:20")
    publish(clinic, service, AFTERNOON)
    assert service.shows_free(clinic, slot)
    # 14:15, a timer tick: time moved, but nothing offered is inside the window yet (busy
    # time in progress alone is no reason to resend).
    early = publish(clinic, service, AFTERNOON + timedelta(minutes=2))
    assert (early.mode, early.requests_sent) == ("idle", 0)
    # 14:21, a run started by a change elsewhere: 16:20 is inside the window now, yet time
    # alone never resends on such a run; the slot lingers until the timer's tick.
    nudged = publish(clinic, service, AFTERNOON + timedelta(minutes=8), on_timer=False)
    assert service.shows_free(clinic, slot)
    assert nudged.requests_sent == 0
    tick = publish(clinic, service, AFTERNOON + timedelta(minutes=17))  # 14:30
    assert tick.requests_sent >= 1
    assert not service.shows_free(clinic, slot)
    assert service.shows_free(clinic, (*slot[:3], "16:50", "17:20"))


def test_changes_past_the_byte_budget_wait_for_the_timers_tick(clinic, service):
    """Without gzip a change resends a whole body: after the first run's full send, the
    budget (what polling every 10 minutes sends) has nothing left for early sends, so the
    changes coalesce and go with the next tick, as polling's would."""
    publish(clinic, service, NOW)  # 08:50 Moscow, a tick: the daily full snapshot
    first = a_free_slot(clinic, service.name, NOW)
    second = a_free_slot(clinic, service.name, NOW, days=5)
    book(clinic, first, "budget-1")
    waiting = publish(clinic, service, NOW + timedelta(minutes=1), on_timer=False)
    book(clinic, second, "budget-2")
    still = publish(clinic, service, NOW + timedelta(minutes=2), on_timer=False)
    for run in (waiting, still):
        assert run.status == "deferred" and run.deferred_until is None
        assert run.requests_sent == 0 or service.name == "napopravku"
        assert "timer's next tick" in run.notes[-1]
    assert service.shows_free(clinic, first[:5]) and service.shows_free(clinic, second[:5])

    tick = publish(clinic, service, NOW + timedelta(minutes=10))  # 09:00
    assert (tick.mode, tick.status) == ("changes", "sent") and tick.changes >= 2
    assert not service.shows_free(clinic, first[:5])
    assert not service.shows_free(clinic, second[:5])


@pytest.fixture
def gzipped(service, aggregator_options):
    """Every aggregator instance sends gzip, and the service's receiver inflates it."""
    aggregator_options(gzip=True)
    service.server.accepts_gzip = True
    return service


def test_with_gzip_changes_go_at_once_until_the_budget_paces_them(clinic, gzipped):
    service = gzipped
    first = publish(clinic, service, NOW)  # the daily snapshot, gzipped
    received = service.server.received()[-1]
    assert received.headers["content-encoding"] == "gzip"
    assert first.bytes_sent < sum(len(r.body) for r in service.server.received()) / 5

    # Bookings one after another in the same minute, each its own change-started run: the
    # first few go at once; then the budget spaces them, and the run says until when.
    runs, moment = [], NOW + timedelta(minutes=1)
    for n in range(60):
        book(clinic, a_free_slot(clinic, service.name, moment, days=5), f"paced-{n}")
        runs.append(publish(clinic, service, moment, on_timer=False))
        if runs[-1].status == "deferred":
            break
    went, waiting = runs[:-1], runs[-1]
    assert len(went) >= 3 and all(run.status == "sent" for run in went)
    assert waiting.status == "deferred" and waiting.requests_sent == 0
    assert moment < waiting.deferred_until < NOW + timedelta(minutes=10)
    # Rescheduled then, the run sends the booking that waited.
    again = publish(clinic, service, waiting.deferred_until, on_timer=False)
    assert (again.status, again.mode) == ("sent", "changes")
    assert service.server.received()[-1].headers["content-encoding"] == "gzip"


def test_a_receiver_that_does_not_inflate_refuses_gzip_clearly(clinic, gzipped):
    gzipped.server.accepts_gzip = False
    with pytest.raises(ServiceError, match=r'HTTP 415: unsupported content encoding "gzip"'):
        publish(clinic, gzipped, NOW)
