"""Intake fixtures: the intake app under a real uvicorn on a loopback port, over the session's
clinic database, with its push tables emptied first and a pinned clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import psycopg
import pytest
from intake_server import RunningIntake

from ident_hooks.intake.app import IntakeSettings
from ident_hooks.intake.receive import IntakeSource

RECEIVED_AT = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
TILDA_SECRET = "t1lda-5ecret-abc"
SITE_SECRET = "s1te-5ecret-xyz"
UIS_SECRET = "u1s-5ecret-qrs"
TICKETS_KEY = "tickets-key-123"
SOURCES = {
    "tilda": IntakeSource("tilda", "tilda", "Tilda", TILDA_SECRET),
    "site_form": IntakeSource("site_form", "webhook", "Форма на сайте", SITE_SECRET),
}
UIS_SOURCE = IntakeSource("uis_calls", "uis_notification", "UIS: звонки", UIS_SECRET)
DOCTORS = [
    ("doc-0001", "Петров Геннадий Андреевич"),
    ("doc-0002", "Иванова Мария Сергеевна"),
]


def leads(conn: psycopg.Connection) -> list[dict]:
    """Every stored lead, as dicts (after committing what the test's connection holds)."""
    conn.commit()
    cursor = conn.cursor(row_factory=psycopg.rows.dict_row)
    return cursor.execute("select * from integration.leads order by lead_id").fetchall()


@pytest.fixture
def intake_db(clinic_conn: psycopg.Connection) -> psycopg.Connection:
    """The clinic database with two doctors and no pushed requests, leads or rejects."""
    clinic_conn.execute(
        "truncate integration.intake_requests, integration.leads, integration.lead_rejects cascade"
    )
    clinic_conn.cursor().executemany(
        "insert into clinic.doctors (doctor_id, full_name, specialty) values (%s, %s, 'терапевт')",
        DOCTORS,
    )
    clinic_conn.commit()
    return clinic_conn


@pytest.fixture
def base_settings(clinic_db_url: str) -> IntakeSettings:
    return IntakeSettings(
        sources=SOURCES,
        connect=lambda: psycopg.connect(clinic_db_url, connect_timeout=2),
        timezone=ZoneInfo("Europe/Moscow"),
        tickets_key=TICKETS_KEY,
        clock=lambda: RECEIVED_AT,
    )


@pytest.fixture
def start_intake() -> Iterator[Callable[[IntakeSettings], RunningIntake]]:
    running: list[RunningIntake] = []

    def start(settings: IntakeSettings) -> RunningIntake:
        running.append(RunningIntake(settings).start())
        return running[-1]

    yield start
    for server in running:
        server.stop()


@pytest.fixture
def intake(
    intake_db: psycopg.Connection, base_settings: IntakeSettings, start_intake
) -> RunningIntake:
    """The app with the default settings (generous rate limit) over the session database."""
    return start_intake(replace(base_settings, burst=1000, rate_per_second=1000))
