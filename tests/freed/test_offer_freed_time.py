"""Real dag.test() runs of offer_freed_time on a pinned clock: cancelled appointments'
time flagged on the open leads waiting for that doctor or specialty, and withdrawn when it
no longer holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest
import time_machine

pytestmark = pytest.mark.slow

MOSCOW = ZoneInfo("Europe/Moscow")
YEKATERINBURG = ZoneInfo("Asia/Yekaterinburg")
# Tuesday 10:00 in Moscow: with the default 2 hours, nothing before 12:00 today is offered.
NOW = datetime(2026, 12, 8, 10, 0, tzinfo=MOSCOW)


def msk(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=MOSCOW)


def ekb(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=YEKATERINBURG)


@pytest.fixture
def clinic(clinic_conn: psycopg.Connection, airflow_db) -> psycopg.Connection:
    """Two branches; two therapists and a surgeon, each working all week."""
    conn = clinic_conn
    conn.execute("truncate integration.leads, integration.freed_appointments cascade")
    conn.execute(
        "insert into clinic.branches (branch_id, name, timezone) values"
        " ('msk', 'Москва', 'Europe/Moscow'), ('ekb', 'Екатеринбург', 'Asia/Yekaterinburg')"
    )
    conn.execute(
        "insert into clinic.doctors (doctor_id, full_name, specialty) values"
        " ('ivanov', 'Иванов Иван', 'Терапевт'), ('petrova', 'Петрова Анна', 'Терапевт'),"
        " ('sidorov', 'Сидоров Олег', 'Хирург')"
    )
    for day in range(7, 15):
        for doctor in ("ivanov", "petrova", "sidorov"):
            conn.execute(
                "insert into clinic.work_intervals (doctor_id, branch_id, starts_at, ends_at)"
                " values (%s, 'msk', %s, %s)",
                (doctor, msk(f"2026-12-{day:02} 09:00"), msk(f"2026-12-{day:02} 18:00")),
            )
    conn.commit()
    return conn


def book(conn, appointment_id: str, doctor: str, start: datetime, *, branch: str = "msk"):
    conn.execute(
        "insert into clinic.appointments"
        " (appointment_id, doctor_id, branch_id, starts_at, ends_at) values (%s, %s, %s, %s, %s)",
        (appointment_id, doctor, branch, start, start + timedelta(minutes=30)),
    )
    conn.commit()


def cancel(conn, appointment_id: str) -> None:
    conn.execute(
        "update clinic.appointments set status = 'cancelled' where appointment_id = %s",
        (appointment_id,),
    )
    conn.commit()


def lead(
    conn,
    name: str,
    *,
    doctor: str | None = None,
    doctor_name: str | None = None,
    wants: datetime | None = None,
    branch: str | None = "msk",
    status: str = "new",
    created: datetime = NOW - timedelta(hours=1),
) -> int:
    (lead_id,) = conn.execute(
        "insert into integration.leads (source, external_id, created_at, name, doctor_id,"
        " doctor_name_raw, requested_start, branch_id, status, raw)"
        " values ('site_main', %s, %s, %s, %s, %s, %s, %s, %s, '{}') returning lead_id",
        (name, created, name, doctor, doctor_name, wants, branch, status),
    ).fetchone()
    conn.commit()
    return lead_id


def run_dag(at: datetime = NOW):
    from airflow.dag_processing.dagbag import DagBag

    with time_machine.travel(at, tick=True):
        run = DagBag().get_dag("offer_freed_time").test()
    assert run.state == "success"


def offers(conn) -> dict[int, tuple]:
    rows = conn.execute(
        "select lead_id, appointment_id, doctor_id, branch_id, starts_at, ends_at"
        " from integration.lead_freed_slots"
    ).fetchall()
    conn.commit()
    return {row[0]: row[1:] for row in rows}


def flag_times(conn) -> list[datetime]:
    rows = conn.execute("select flagged_at from integration.lead_freed_slots").fetchall()
    conn.commit()
    return [flagged_at for (flagged_at,) in rows]


def test_a_cancellation_flags_the_leads_waiting_for_that_doctor_or_specialty(clinic):
    book(clinic, "a1", "ivanov", msk("2026-12-09 12:00"))
    book(clinic, "a2", "sidorov", msk("2026-12-09 12:00"))
    for_ivanov = lead(clinic, "Ольга", doctor="ivanov", wants=msk("2026-12-10 15:00"))
    for_therapy = lead(clinic, "Павел", doctor_name=" терапевт ", wants=msk("2026-12-11 09:00"))
    any_time = lead(clinic, "Нина", doctor="ivanov", created=NOW - timedelta(days=2))
    lead(clinic, "Степан", doctor="sidorov", wants=msk("2026-12-09 12:00"))
    lead(clinic, "Ирина", doctor_name="Хирург", wants=msk("2026-12-09 12:00"))
    lead(clinic, "Закрытая", doctor="ivanov", wants=msk("2026-12-09 12:00"), status="done")
    lead(clinic, "Далеко", doctor="ivanov", wants=msk("2026-12-13 12:00"))
    lead(clinic, "Давняя", doctor="ivanov", created=NOW - timedelta(days=4))

    run_dag()
    assert offers(clinic) == {}

    cancel(clinic, "a1")
    run_dag()

    slot = ("a1", "ivanov", "msk", msk("2026-12-09 12:00"), msk("2026-12-09 12:30"))
    assert offers(clinic) == {for_ivanov: slot, for_therapy: slot, any_time: slot}
    assert all(NOW <= flagged < NOW + timedelta(minutes=1) for flagged in flag_times(clinic))


def test_a_deleted_appointment_frees_its_time_too(clinic):
    book(clinic, "a1", "petrova", msk("2026-12-09 16:00"))
    waiting = lead(clinic, "Ольга", doctor="petrova", wants=msk("2026-12-09 10:00"))
    clinic.execute("delete from clinic.appointments where appointment_id = 'a1'")
    clinic.commit()

    run_dag()

    assert list(offers(clinic)) == [waiting]
    assert offers(clinic)[waiting][3] == msk("2026-12-09 16:00")


def test_time_booked_again_is_not_offered_and_an_offer_is_withdrawn(clinic):
    book(clinic, "a1", "ivanov", msk("2026-12-09 12:00"))
    book(clinic, "a2", "ivanov", msk("2026-12-10 12:00"))
    waiting = lead(clinic, "Ольга", doctor="ivanov", wants=msk("2026-12-10 15:00"))
    cancel(clinic, "a1")
    run_dag()
    assert set(offers(clinic)) == {waiting}

    # a1's time taken by another patient; a2 cancelled and its time taken before any run.
    book(clinic, "a3", "ivanov", msk("2026-12-09 12:15"))
    cancel(clinic, "a2")
    book(clinic, "a4", "ivanov", msk("2026-12-10 12:00"))
    run_dag(NOW + timedelta(minutes=5))

    assert offers(clinic) == {}


def test_a_closed_lead_loses_its_offer(clinic):
    book(clinic, "a1", "ivanov", msk("2026-12-09 12:00"))
    waiting = lead(clinic, "Ольга", doctor="ivanov", wants=msk("2026-12-09 12:00"))
    cancel(clinic, "a1")
    run_dag()
    assert set(offers(clinic)) == {waiting}

    clinic.execute("update integration.leads set status = 'done' where lead_id = %s", (waiting,))
    clinic.commit()
    run_dag(NOW + timedelta(minutes=5))

    assert offers(clinic) == {}


def test_a_slot_started_or_too_close_is_not_offered(clinic):
    book(clinic, "started", "ivanov", msk("2026-12-08 09:30"))
    book(clinic, "too_close", "ivanov", msk("2026-12-08 11:30"))
    book(clinic, "after_cutoff", "ivanov", msk("2026-12-08 12:30"))
    lead(clinic, "Ольга", doctor="ivanov", wants=msk("2026-12-08 17:00"))
    for appointment in ("started", "too_close", "after_cutoff"):
        cancel(clinic, appointment)

    run_dag()
    assert [slot[0] for slot in offers(clinic).values()] == ["after_cutoff"]

    # Later the same day the remaining slot is itself too close: withdrawn.
    run_dag(msk("2026-12-08 10:31"))
    assert offers(clinic) == {}
    remaining = clinic.execute(
        "select appointment_id from integration.freed_appointments order by 1"
    ).fetchall()
    clinic.commit()
    assert remaining == [("after_cutoff",), ("too_close",)]  # the started one is forgotten


def test_running_again_keeps_each_offer_once_with_its_first_flag_time(clinic):
    book(clinic, "a1", "ivanov", msk("2026-12-09 12:00"))
    waiting = lead(clinic, "Ольга", doctor="ivanov", wants=msk("2026-12-09 12:00"))
    cancel(clinic, "a1")
    run_dag()
    first, first_flagged = offers(clinic), flag_times(clinic)

    run_dag(NOW + timedelta(minutes=5))
    # Reactivated and cancelled again: still one offer.
    clinic.execute("update clinic.appointments set status = 'scheduled'")
    clinic.execute("update clinic.appointments set status = 'cancelled'")
    clinic.commit()
    run_dag(NOW + timedelta(minutes=10))

    assert offers(clinic) == first
    assert flag_times(clinic) == first_flagged
    assert list(first) == [waiting]


def test_nearby_days_are_counted_in_the_branch_time_zone_just_after_midnight(clinic):
    clinic.execute(
        "insert into clinic.work_intervals (doctor_id, branch_id, starts_at, ends_at)"
        " values ('petrova', 'ekb', %s, %s)",
        (ekb("2026-12-18 09:00"), ekb("2026-12-18 18:00")),
    )
    clinic.commit()
    book(clinic, "a1", "petrova", ekb("2026-12-18 10:00"), branch="ekb")
    # 00:30 on the 15th in Yekaterinburg is still the 14th in Moscow and in UTC: three
    # days before the slot's day only in the branch's own zone.
    three_days_before = lead(
        clinic, "Ольга", doctor="petrova", wants=ekb("2026-12-15 00:30"), branch="ekb"
    )
    four_days_before = lead(
        clinic, "Пётр", doctor="petrova", wants=ekb("2026-12-14 23:30"), branch="ekb"
    )
    cancel(clinic, "a1")

    run_dag(ekb("2026-12-15 00:05").astimezone(UTC))

    assert set(offers(clinic)) == {three_days_before}
    assert four_days_before not in offers(clinic)


def test_nearby_days_come_from_the_airflow_variable(clinic, monkeypatch):
    book(clinic, "a1", "ivanov", msk("2026-12-09 12:00"))
    next_day = lead(clinic, "Ольга", doctor="ivanov", wants=msk("2026-12-10 12:00"))
    lead(clinic, "Пётр", doctor="ivanov", wants=msk("2026-12-11 12:00"))
    cancel(clinic, "a1")
    monkeypatch.setenv("AIRFLOW_VAR_FREED_TIME_NEARBY_DAYS", "1")

    run_dag()

    assert set(offers(clinic)) == {next_day}


def test_a_lead_gets_the_slots_closest_to_the_time_it_asked_for(clinic, monkeypatch):
    for hour in (9, 11, 13, 15):
        book(clinic, f"h{hour}", "petrova", msk(f"2026-12-10 {hour:02}:00"))
    waiting = lead(clinic, "Ольга", doctor_name="Терапевт", wants=msk("2026-12-10 14:00"))
    for hour in (9, 11, 13, 15):
        cancel(clinic, f"h{hour}")
    monkeypatch.setenv("AIRFLOW_VAR_FREED_TIME_SLOTS_PER_LEAD", "2")

    run_dag()

    offered = clinic.execute(
        "select appointment_id from integration.lead_freed_slots where lead_id = %s order by 1",
        (waiting,),
    ).fetchall()
    clinic.commit()
    assert offered == [("h13",), ("h15",)]
