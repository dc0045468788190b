"""A lead pushed to the intake is matched to the clinic's patient cards in the transaction
that stores it: when the inbox hears of the lead, its matches are already there."""

from __future__ import annotations

import httpx
import psycopg

from ident_hooks.patients.rematch import rematch
from tests.intake.conftest import RECEIVED_AT, TILDA_SECRET, leads

TILDA_FORM = {
    "Name": "Анна Смирнова",
    "Phone": "8 (916) 123-45-67",
    "tranid": "467251:8442970",
    "formid": "form563432381",
}


def test_a_tilda_lead_is_matched_by_the_time_its_transaction_commits(
    intake, intake_db, clinic_db_url
):
    conn = intake_db
    conn.execute("truncate clinic.patients cascade")
    conn.execute(
        "insert into clinic.patients (patient_id, full_name, family_id) values"
        " ('p-anna', 'Смирнова Анна Олеговна', 'f1'), ('p-oleg', 'Смирнов Олег Иванович', 'f1')"
    )
    conn.execute(
        "insert into clinic.patient_phones (patient_id, phone) values"
        " ('p-anna', '+7 916 123 45 67'), ('p-oleg', '89161234567')"
    )
    conn.commit()
    rematch(conn, now=RECEIVED_AT)
    listener = psycopg.connect(clinic_db_url, autocommit=True)
    listener.execute("listen integration_leads")
    try:
        response = httpx.post(f"{intake.url}/tilda/tilda/{TILDA_SECRET}", data=TILDA_FORM)
        assert response.status_code == 200
        heard = list(listener.notifies(timeout=10, stop_after=1))
        seen_when_heard = listener.execute(
            "select patient_id, grade from integration.lead_patient_matches order by 1"
        ).fetchall()
    finally:
        listener.close()

    assert len(heard) == 1
    assert seen_when_heard == [("p-anna", "certain"), ("p-oleg", "possible")]
    (lead,) = leads(conn)
    same_transaction = conn.execute(
        "select bool_and(matched_at = %s) from integration.lead_patient_matches",
        (lead["loaded_at"],),
    ).fetchone()[0]
    assert same_transaction  # now() of the transaction that stored the lead
