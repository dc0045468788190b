"""Fixtures for the conversion tests: a migrated clinic database without leads, visits or
sent conversions, and a way to put leads and appointments into it."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from decimal import Decimal

import psycopg
import pytest

from ident_hooks.leads.normalise import normalise_phone


class ClinicData:
    """Inserts leads and appointments as the lead store and the clinic's sync write them:
    a lead's phone in E.164 (and as received), an appointment's phone as typed."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def lead(
        self,
        created_at: datetime,
        phone: str | None = None,
        *,
        source: str = "tilda",
        status: str = "new",
        external_id: str | None = None,
        ym_client_id: str | None = None,
        yclid: str | None = None,
        gclid: str | None = None,
    ) -> int:
        """A lead; returns its lead_id."""
        (lead_id,) = self.conn.execute(
            "insert into integration.leads (source, external_id, created_at, phone_raw,"
            " phone_e164, status, ym_client_id, yclid, gclid, raw)"
            " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) returning lead_id",
            (
                source,
                external_id or uuid.uuid4().hex,
                created_at,
                phone,
                normalise_phone(phone),
                status,
                ym_client_id,
                yclid,
                gclid,
                json.dumps({}),
            ),
        ).fetchone()
        self.conn.commit()
        return lead_id

    def appointment(
        self,
        starts_at: datetime,
        phone: str | None,
        *,
        status: str = "completed",
        amount: Decimal | str | None = None,
        appointment_id: str | None = None,
    ) -> str:
        """A half-hour appointment of doctor d1 at branch msk; returns its id."""
        appointment_id = appointment_id or uuid.uuid4().hex
        self.conn.execute(
            "insert into clinic.appointments (appointment_id, doctor_id, branch_id, starts_at,"
            " ends_at, status, patient_phone, created_at, amount)"
            " values (%s, 'd1', 'msk', %s, %s, %s, %s, %s, %s)",
            (
                appointment_id,
                starts_at,
                starts_at + timedelta(minutes=30),
                status,
                phone,
                starts_at - timedelta(days=1),
                amount,
            ),
        )
        self.conn.commit()
        return appointment_id


@pytest.fixture
def conversions_db(clinic_conn: psycopg.Connection) -> psycopg.Connection:
    """The clinic database with one branch (msk) and one doctor (d1), and no leads,
    appointments, sent conversions or uploads."""
    clinic_conn.execute(
        "truncate integration.leads, integration.conversions_sent,"
        " integration.conversion_uploads restart identity cascade"
    )
    clinic_conn.execute(
        "insert into clinic.branches (branch_id, name, timezone)"
        " values ('msk', 'Москва', 'Europe/Moscow')"
    )
    clinic_conn.execute(
        "insert into clinic.doctors (doctor_id, full_name, specialty)"
        " values ('d1', 'Петров Геннадий Андреевич', 'Стоматолог-терапевт')"
    )
    clinic_conn.commit()
    return clinic_conn


@pytest.fixture
def clinic_data(conversions_db: psycopg.Connection) -> ClinicData:
    return ClinicData(conversions_db)
