"""The clinic tables reject nonsense with errors a person can act on."""

from __future__ import annotations

import psycopg
import pytest


@pytest.fixture
def clinic(clinic_conn):
    clinic_conn.execute(
        "insert into clinic.branches (branch_id, name, timezone) values"
        " ('msk', 'Москва', 'Europe/Moscow'), ('ekb', 'Екатеринбург', 'Asia/Yekaterinburg')"
    )
    clinic_conn.execute(
        "insert into clinic.doctors (doctor_id, full_name, specialty) values"
        " ('d1', 'Петров Геннадий Андреевич', 'Уролог')"
    )
    clinic_conn.execute(
        "insert into clinic.work_intervals values"
        " ('d1', 'msk', '2026-12-01 09:00+03', '2026-12-01 13:00+03')"
    )
    clinic_conn.commit()
    return clinic_conn


def _fails(conn, statement, error, message):
    with pytest.raises(error, match=message):
        conn.execute(statement)
    conn.rollback()


def test_branch_time_zone_defaults_to_moscow(clinic):
    clinic.execute("insert into clinic.branches (branch_id, name) values ('spb', 'СПб')")
    zone = clinic.execute("select timezone from clinic.branches where branch_id = 'spb'")
    assert zone.fetchone()[0] == "Europe/Moscow"


def test_unknown_time_zone_is_rejected(clinic):
    _fails(
        clinic,
        "insert into clinic.branches values ('x', 'X', 'Moscow/Time', null)",
        psycopg.errors.CheckViolation,
        'unknown time zone "Moscow/Time"',
    )


def test_interval_ending_before_it_starts_is_rejected(clinic):
    _fails(
        clinic,
        "insert into clinic.work_intervals values"
        " ('d1', 'msk', '2026-12-02 18:00+03', '2026-12-02 09:00+03')",
        psycopg.errors.CheckViolation,
        "work_interval_ends_after_start",
    )
    _fails(
        clinic,
        "insert into clinic.appointments (appointment_id, doctor_id, branch_id,"
        " starts_at, ends_at) values ('a1', 'd1', 'msk', '2026-12-01 10:30+03',"
        " '2026-12-01 10:00+03')",
        psycopg.errors.CheckViolation,
        "appointment_ends_after_start",
    )


def test_unknown_doctor_or_branch_is_rejected(clinic):
    _fails(
        clinic,
        "insert into clinic.work_intervals values"
        " ('nobody', 'msk', '2026-12-02 09:00+03', '2026-12-02 13:00+03')",
        psycopg.errors.ForeignKeyViolation,
        "doctor_id",
    )
    _fails(
        clinic,
        "insert into clinic.appointments (appointment_id, doctor_id, branch_id,"
        " starts_at, ends_at) values ('a1', 'd1', 'nowhere', '2026-12-01 10:00+03',"
        " '2026-12-01 10:30+03')",
        psycopg.errors.ForeignKeyViolation,
        "branch_id",
    )


def test_doctor_cannot_work_in_two_places_at_once(clinic):
    _fails(
        clinic,
        "insert into clinic.work_intervals values"
        " ('d1', 'ekb', '2026-12-01 12:00+03', '2026-12-01 15:00+03')",
        psycopg.errors.ExclusionViolation,
        "doctor d1 already works",
    )
    # Back to back is fine: the afternoon shift in another branch.
    clinic.execute(
        "insert into clinic.work_intervals values"
        " ('d1', 'ekb', '2026-12-01 13:00+03', '2026-12-01 17:00+03')"
    )
    clinic.commit()


def test_export_settings_reject_nonsense(clinic):
    _fails(
        clinic,
        "insert into clinic.export_settings (aggregator, days_ahead) values ('prodoctorov', -1)",
        psycopg.errors.CheckViolation,
        "days_ahead",
    )
    _fails(
        clinic,
        "insert into clinic.export_settings (aggregator, slot_minutes) values ('prodoctorov', 0)",
        psycopg.errors.CheckViolation,
        "slot_minutes",
    )
    clinic.execute("insert into clinic.export_settings (aggregator) values ('napopravku')")
    row = clinic.execute(
        "select days_ahead, skip_hours_today, slot_minutes, enabled from clinic.export_settings"
    ).fetchone()
    assert row == (30, 2, 30, True)
