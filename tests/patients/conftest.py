"""Fixtures for matching tests: the migrated session database with no cards and no leads,
and helpers that write cards the way the clinic's sync does and store leads the way every
source does (``store_leads``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import psycopg
import pytest

from ident_hooks.leads.normalise import Lead, normalise_phone
from ident_hooks.leads.store import store_leads

NOW = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)


@pytest.fixture
def db(clinic_conn: psycopg.Connection) -> psycopg.Connection:
    clinic_conn.execute(
        "truncate integration.leads, clinic.patients, clinic.patient_phones,"
        " integration.patient_phone_index restart identity cascade"
    )
    clinic_conn.execute("truncate integration.patient_changes")  # the truncate noted itself
    clinic_conn.commit()
    return clinic_conn


def add_card(
    conn: psycopg.Connection,
    patient_id: str,
    full_name: str,
    phones: Sequence[str] = (),
    *,
    email: str | None = None,
    family_id: str | None = None,
) -> None:
    conn.execute(
        "insert into clinic.patients (patient_id, full_name, email, family_id)"
        " values (%s, %s, %s, %s)",
        (patient_id, full_name, email, family_id),
    )
    for phone in phones:
        conn.execute(
            "insert into clinic.patient_phones (patient_id, phone) values (%s, %s)",
            (patient_id, phone),
        )


def store(
    conn: psycopg.Connection,
    external_id: str,
    *,
    name: str | None = None,
    phone: str | None = None,
    email: str | None = None,
    source: str = "site_main",
) -> int:
    """Store one lead and commit; its lead_id."""
    lead = Lead(
        source=source,
        external_id=external_id,
        created_at=NOW,
        name=name,
        phone_raw=phone,
        phone_e164=normalise_phone(phone),
        email=email,
        raw={"id": external_id},
    )
    store_leads(conn, [lead])
    conn.commit()
    (lead_id,) = conn.execute(
        "select lead_id from integration.leads where source = %s and external_id = %s",
        (source, external_id),
    ).fetchone()
    conn.commit()
    return lead_id


def matches(conn: psycopg.Connection, lead_id: int) -> dict[str, str]:
    """``{patient_id: grade}`` of the lead."""
    rows = conn.execute(
        "select patient_id, grade from integration.lead_patient_matches where lead_id = %s",
        (lead_id,),
    ).fetchall()
    conn.commit()
    return dict(rows)


def rematch(conn: psycopg.Connection, **options):
    from ident_hooks.patients.rematch import rematch as run

    return run(conn, now=NOW, **options)
