"""Fixtures for the report tests: the hand-computed clinic, builds, table reads."""

from __future__ import annotations

from datetime import datetime

import psycopg
import pytest
from hand_dataset import APPOINTMENTS, LEADS, NOW, YEKT, insert_appointment, insert_leads, msk


def reset_reports(conn: psycopg.Connection) -> None:
    conn.execute(
        "truncate integration.leads, report_build.lead_changes, report_build.lead_facts,"
        " report_build.appointment_phones, report.build_state, report.leads_daily,"
        " report.campaigns, report.response_time, report.doctor_demand, report.ad_costs,"
        " report.campaign_roi, report.patients_by_channel, report.calls_daily,"
        " integration.lead_patient_choices, clinic.patients restart identity cascade"
    )
    conn.commit()


@pytest.fixture
def bare_database(clinic_conn) -> psycopg.Connection:
    """No clinic data, no leads, no reports."""
    reset_reports(clinic_conn)
    return clinic_conn


@pytest.fixture
def empty_clinic(bare_database) -> psycopg.Connection:
    """Two branches, four doctors and their work time; no leads, no appointments."""
    conn = bare_database
    conn.execute(
        "insert into clinic.branches (branch_id, name, timezone) values"
        " ('msk', 'Москва', 'Europe/Moscow'), ('ekb', 'Екатеринбург', 'Asia/Yekaterinburg')"
    )
    conn.execute(
        "insert into clinic.doctors (doctor_id, full_name, specialty) values"
        " ('d1', 'Петров Геннадий Андреевич', 'Стоматолог-терапевт'),"
        " ('d2', 'Иванова Мария Сергеевна', 'Ортодонт'),"
        " ('d3', 'Семёнов Илья Игоревич', 'Хирург'),"
        " ('d4', 'Римская-Корсакова Ольга Павловна', 'Гигиенист')"
    )

    def yekt(hour: int) -> datetime:
        return datetime(2026, 11, 9, hour, tzinfo=YEKT)

    work = [
        ("d1", "msk", msk("2026-11-02 09:00"), msk("2026-11-02 10:00")),
        ("d1", "msk", msk("2026-11-05 09:00"), msk("2026-11-05 12:00")),
        ("d2", "msk", msk("2026-11-06 14:00"), msk("2026-11-06 16:00")),
        ("d3", "ekb", yekt(9), yekt(11)),
        ("d4", "msk", msk("2026-11-05 09:00"), msk("2026-11-05 12:00")),
    ]
    with conn.cursor() as cursor:
        cursor.executemany("insert into clinic.work_intervals values (%s, %s, %s, %s)", work)
    # ПроДокторов: d2 is shown with one-hour slots, d4 is not shown at all.
    conn.execute(
        "insert into clinic.export_rules (aggregator, doctor_id, publish, slot_minutes) values"
        " ('prodoctorov', 'd2', true, 60), ('prodoctorov', 'd4', false, null)"
    )
    conn.commit()
    return conn


@pytest.fixture
def clinic(empty_clinic) -> psycopg.Connection:
    """The clinic with every lead and appointment of the hand-computed dataset."""
    insert_leads(empty_clinic, LEADS)
    for row in APPOINTMENTS:
        insert_appointment(empty_clinic, row)
    empty_clinic.commit()
    return empty_clinic


@pytest.fixture
def build(clinic_db_url):
    """``build(full=False, now=NOW)``: one build on a connection of its own."""
    from ident_hooks.reports.build import build_reports

    def run(full: bool = False, now: datetime = NOW):
        with psycopg.connect(clinic_db_url) as conn:
            return build_reports(conn, clinic_timezone="Europe/Moscow", now=now, full=full)

    return run


def table(conn: psycopg.Connection, name: str) -> list[tuple]:
    """Every row of a report table, in a stable order (NULLs first)."""
    columns = conn.execute(
        "select count(*) from information_schema.columns"
        " where table_schema = 'report' and table_name = %s",
        (name,),
    ).fetchone()[0]
    order = ", ".join(f"{n} nulls first" for n in range(1, columns + 1))
    rows = conn.execute(f"select * from report.{name} order by {order}").fetchall()
    conn.commit()
    return rows


@pytest.fixture
def report_rows(clinic_conn):
    """``report_rows("leads_daily")``: the table's rows, sorted."""
    return lambda name: table(clinic_conn, name)
