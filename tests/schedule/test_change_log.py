"""The change log the clinic tables' statement triggers write (migration 0013)."""

from __future__ import annotations

import datetime as dt
import threading

import psycopg
import pytest

from ident_hooks.schedule.changes import read_changes

MSK_NOON = dt.datetime(2026, 12, 2, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def clinic(clinic_conn: psycopg.Connection) -> psycopg.Connection:
    clinic_conn.execute("truncate integration.leads, integration.schedule_state cascade")
    clinic_conn.execute(
        "insert into clinic.branches (branch_id, name, timezone) values"
        " ('msk', 'Москва', 'Europe/Moscow'), ('ekb', 'Екатеринбург', 'Asia/Yekaterinburg')"
    )
    clinic_conn.execute(
        "insert into clinic.doctors (doctor_id, full_name)"
        " values ('d1', 'Иванов'), ('d2', 'Петров')"
    )
    clinic_conn.commit()
    clinic_conn.execute("delete from integration.schedule_changes")
    clinic_conn.commit()
    return clinic_conn


def logged(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute(
        "select source_table, doctor_id, branch_id, local_day::text, aggregator"
        " from integration.schedule_changes order by change_id"
    ).fetchall()


def test_an_appointment_is_logged_with_its_branch_local_day(clinic):
    # 21:30 UTC on 1 December is 02:30 on 2 December in Yekaterinburg.
    clinic.execute(
        "insert into clinic.appointments (appointment_id, doctor_id, branch_id, starts_at, ends_at)"
        " values ('a1', 'd1', 'ekb', '2026-12-01 21:30Z', '2026-12-01 22:00Z'),"
        "        ('a2', 'd2', 'msk', '2026-12-01 21:30Z', '2026-12-01 22:00Z')"
    )
    clinic.commit()
    assert sorted(logged(clinic)) == [
        ("appointments", "d1", "ekb", "2026-12-02", None),
        ("appointments", "d2", "msk", "2026-12-02", None),
    ]


def test_an_update_that_changes_nothing_published_logs_nothing(clinic):
    clinic.execute(
        "insert into clinic.appointments (appointment_id, doctor_id, branch_id, starts_at, ends_at)"
        " values ('a1', 'd1', 'msk', '2026-12-03 07:00Z', '2026-12-03 07:30Z')"
    )
    clinic.commit()
    clinic.execute("delete from integration.schedule_changes")
    # The sync rewrites the row as it was, then marks the patient arrived: time still held.
    clinic.execute("update clinic.appointments set starts_at = starts_at")
    clinic.execute("update clinic.appointments set status = 'arrived', patient_phone = '+7900'")
    clinic.commit()
    assert logged(clinic) == []
    clinic.execute("update clinic.appointments set status = 'cancelled'")
    clinic.commit()
    assert logged(clinic) == [("appointments", "d1", "msk", "2026-12-03", None)]


def test_a_moved_appointment_logs_the_old_and_the_new_day(clinic):
    clinic.execute(
        "insert into clinic.appointments (appointment_id, doctor_id, branch_id, starts_at, ends_at)"
        " values ('a1', 'd1', 'msk', '2026-12-03 07:00Z', '2026-12-03 07:30Z')"
    )
    clinic.commit()
    clinic.execute("delete from integration.schedule_changes")
    clinic.execute(
        "update clinic.appointments set starts_at = starts_at + interval '1 day',"
        " ends_at = ends_at + interval '1 day'"
    )
    clinic.commit()
    assert sorted(logged(clinic)) == [
        ("appointments", "d1", "msk", "2026-12-03", None),
        ("appointments", "d1", "msk", "2026-12-04", None),
    ]


def test_doctors_rules_settings_branches_and_leads_are_logged(clinic):
    clinic.execute("update clinic.doctors set full_name = 'Иванов И. И.' where doctor_id = 'd1'")
    clinic.execute(
        "insert into clinic.export_rules (aggregator, doctor_id, publish)"
        " values ('32top', 'd2', false)"
    )
    clinic.execute(
        "insert into clinic.export_settings (aggregator, days_ahead) values ('prodoctorov', 14)"
    )
    clinic.execute("update clinic.branches set name = 'Москва, центр' where branch_id = 'msk'")
    clinic.execute(
        "insert into integration.leads (source, external_id, created_at, raw, doctor_id,"
        " branch_id, requested_start) values"
        " ('napopravku', 'x1', now(), '{}', 'd2', 'msk', '2026-12-05 08:00Z'),"
        " ('flexbe', 'x2', now(), '{}', null, null, null)"
    )
    clinic.commit()
    assert logged(clinic) == [
        ("doctors", "d1", None, None, None),
        ("export_rules", "d2", None, None, "32top"),
        ("export_settings", None, None, None, "prodoctorov"),
        ("branches", None, "msk", None, None),
        ("leads", "d2", "msk", "2026-12-05", None),
    ]
    clinic.execute("delete from integration.schedule_changes")
    clinic.execute("update integration.leads set status = 'in_progress'")  # taken: still held
    clinic.commit()
    assert logged(clinic) == []
    clinic.execute("update integration.leads set status = 'done'")  # answered: time freed
    clinic.commit()
    assert logged(clinic) == [("leads", "d2", "msk", "2026-12-05", None)]


def test_a_notification_follows_each_changing_statement(clinic, clinic_db_url):
    with psycopg.connect(clinic_db_url, autocommit=True) as listener:
        listener.execute("listen clinic_schedule")
        clinic.execute("update clinic.doctors set is_active = is_active")  # nothing changed
        clinic.execute("update clinic.doctors set is_active = false where doctor_id = 'd2'")
        clinic.commit()
        # Notifications arrive in commit order: everything the updates sent comes before
        # this marker, however long a busy machine takes to deliver it.
        clinic.execute("notify clinic_schedule, 'end of test'")
        clinic.commit()
        payloads = []
        for notification in listener.notifies(timeout=30):
            if notification.payload == "end of test":
                break
            payloads.append(notification.payload)
    assert payloads == ["doctors"]


def test_a_change_committed_late_is_not_skipped_by_a_run_between(clinic, clinic_db_url):
    """Identity values are taken at insert: a run must not pass a change still in flight."""
    with psycopg.connect(clinic_db_url) as slow_writer:
        slow_writer.execute(
            "update clinic.doctors set full_name = 'Медленный' where doctor_id = 'd1'"
        )
        # A later writer commits first.
        clinic.execute("update clinic.doctors set full_name = 'Быстрый' where doctor_id = 'd2'")
        clinic.commit()
        first = read_changes(clinic, "prodoctorov", after=None)
        clinic.commit()
        assert first.doctors == {"d2"} or first.full
        committed = threading.Event()
        slow_writer.commit()
        committed.set()
    second = read_changes(clinic, "prodoctorov", after=first.snapshot)
    clinic.commit()
    assert second.doctors == {"d1"} and not second.full
    third = read_changes(clinic, "prodoctorov", after=second.snapshot)
    clinic.commit()
    assert third.empty
