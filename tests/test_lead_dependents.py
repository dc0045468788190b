"""What is kept per lead (its card matches, the front desk's choice, freed slots offered to
it) goes with the lead, whether it is deleted or the whole table is emptied — and emptying
the table needs no knowledge of those tables."""

from __future__ import annotations

import json
from datetime import UTC, datetime

DEPENDENTS = (
    "integration.lead_patient_matches",
    "integration.lead_patient_choices",
    "integration.lead_freed_slots",
)
AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _lead_with_dependents(conn, external_id: str) -> int:
    (lead_id,) = conn.execute(
        "insert into integration.leads (source, external_id, created_at, raw)"
        " values ('tilda', %s, %s, %s) returning lead_id",
        (external_id, AT, json.dumps({})),
    ).fetchone()
    conn.execute(
        "insert into integration.lead_patient_matches (lead_id, patient_id, grade, reason)"
        " values (%s, 'p1', 'probable', 'phone')",
        (lead_id,),
    )
    conn.execute(
        "insert into integration.lead_patient_choices (lead_id, patient_id, chosen_by)"
        " values (%s, 'p1', 'admin')",
        (lead_id,),
    )
    conn.execute(
        "insert into integration.lead_freed_slots"
        " (lead_id, appointment_id, doctor_id, starts_at, ends_at)"
        " values (%s, 'a1', 'd1', %s, %s)",
        (lead_id, AT, AT.replace(hour=10)),
    )
    return lead_id


def _kept(conn) -> dict[str, list[int]]:
    return {
        table: [row[0] for row in conn.execute(f"select lead_id from {table} order by 1")]
        for table in DEPENDENTS
    }


def test_deleting_a_lead_forgets_its_rows_and_keeps_the_others(clinic_conn):
    clinic_conn.execute("truncate integration.leads")
    gone = _lead_with_dependents(clinic_conn, "t-1")
    kept = _lead_with_dependents(clinic_conn, "t-2")

    clinic_conn.execute("delete from integration.leads where lead_id = %s", (gone,))

    assert _kept(clinic_conn) == {table: [kept] for table in DEPENDENTS}
    clinic_conn.rollback()


def test_emptying_the_leads_table_empties_them_too(clinic_conn):
    clinic_conn.execute("truncate integration.leads")
    _lead_with_dependents(clinic_conn, "t-3")

    clinic_conn.execute("truncate integration.leads")

    assert _kept(clinic_conn) == {table: [] for table in DEPENDENTS}
    clinic_conn.rollback()


def test_emptying_the_leads_table_together_with_them_works_too(clinic_conn):
    clinic_conn.execute("truncate integration.leads")
    _lead_with_dependents(clinic_conn, "t-4")

    clinic_conn.execute(f"truncate integration.leads, {', '.join(DEPENDENTS)}")

    assert _kept(clinic_conn) == {table: [] for table in DEPENDENTS}
    clinic_conn.rollback()
