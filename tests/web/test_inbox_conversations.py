"""One person, one conversation: the inbox groups a person's open leads from any source,
shows their patient card, visits, family and freed time, and acts on them all at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from ident_hooks.inbox import store
from ident_hooks.inbox.store import LeadFilter

INBOX = "/inbox"
PHONE = "+7 916 555-12-34"


@pytest.fixture
def cards(inbox_conn: psycopg.Connection):
    """``cards(patient_id, full_name, *phones, birth_date=None)``: one patient card, with its
    phones typed the way a clinic's system may keep them (committed)."""
    inbox_conn.execute("truncate clinic.patients cascade")
    inbox_conn.commit()

    def add(patient_id: str, full_name: str, *phones: str, birth_date=None) -> str:
        inbox_conn.execute(
            "insert into clinic.patients (patient_id, full_name, birth_date) values (%s, %s, %s)",
            (patient_id, full_name, birth_date),
        )
        for phone in phones:
            inbox_conn.execute(
                "insert into clinic.patient_phones (patient_id, phone) values (%s, %s)",
                (patient_id, phone),
            )
        inbox_conn.commit()
        return patient_id

    return add


def _match(conn, lead_id: int, patient_id: str, grade: str) -> None:
    conn.execute(
        "insert into integration.lead_patient_matches (lead_id, patient_id, grade, reason)"
        " values (%s, %s, %s, 'test')",
        (lead_id, patient_id, grade),
    )
    conn.commit()


def _appointment(conn, appointment_id: str, starts_at: datetime, status: str, **columns) -> None:
    row = {
        "appointment_id": appointment_id,
        "doctor_id": "doc-1",
        "branch_id": "msk",
        "starts_at": starts_at,
        "ends_at": starts_at + timedelta(minutes=30),
        "status": status,
        **columns,
    }
    names = ", ".join(row)
    values = ", ".join(f"%({name})s" for name in row)
    conn.execute(f"insert into clinic.appointments ({names}) values ({values})", row)
    conn.commit()


def _rows(conn, **filters) -> list[dict]:
    rows, _total = store.list_open_leads(conn, LeadFilter(**filters))
    return rows


def _one_person_through_three_sources(add_lead, phone: str = PHONE) -> list[int]:
    return [
        add_lead(minutes_ago=50, source="tilda", phone=phone, comment="Болит зуб"),
        add_lead(minutes_ago=30, source="uis", phone="8 (916) 555-12-34", name=None),
        add_lead(minutes_ago=10, source="napopravku", phone=phone, doctor_id="doc-1"),
    ]


def test_one_phone_through_three_sources_is_one_row_timed_from_the_first(inbox_conn, add_lead):
    lead_ids = _one_person_through_three_sources(add_lead)
    other = add_lead(minutes_ago=5, name="Другой Человек", phone="+7 903 111-22-33")
    rows = _rows(inbox_conn)
    assert [row["lead_ids"] for row in rows] == [[other], lead_ids]
    person = rows[1]
    assert person["lead_id"] == lead_ids[0] and person["newest_lead_id"] == lead_ids[2]
    assert [s["source"] for s in person["sources"]] == ["tilda", "uis", "napopravku"]
    assert [s["comment"] for s in person["sources"]] == ["Болит зуб", None, None]
    assert person["sources"][2]["doctor_name"] == "Петров Геннадий Андреевич"
    assert 50 * 60 - 10 <= person["waiting_seconds"] <= 50 * 60 + 10  # from the first lead
    assert person["name"] == "Смирнова Ольга"


def test_leads_further_apart_than_the_window_are_two_rows(inbox_conn, add_lead):
    older = add_lead(minutes_ago=26 * 60, source="tilda", phone=PHONE)
    newer = add_lead(minutes_ago=10, source="uis", phone=PHONE)
    assert [row["lead_ids"] for row in _rows(inbox_conn)] == [[newer], [older]]
    rows, _ = store.list_open_leads(inbox_conn, LeadFilter(), window=timedelta(hours=48))
    assert [row["lead_ids"] for row in rows] == [[older, newer]]


def test_the_same_card_joins_leads_of_different_phones(inbox_conn, add_lead, cards):
    cards("p-1", "Смирнова Ольга Викторовна", PHONE, "+7 926 000-00-01")
    first = add_lead(minutes_ago=20, phone=PHONE)
    second = add_lead(minutes_ago=5, phone="+7 926 000-00-01", source="uis")
    assert len(_rows(inbox_conn)) == 2  # two phones, no card yet: a phone alone decides
    _match(inbox_conn, first, "p-1", "certain")
    _match(inbox_conn, second, "p-1", "certain")
    (row,) = _rows(inbox_conn)
    assert row["lead_ids"] == [first, second]
    assert row["patient"]["state"] == "certain"
    assert row["patient"]["card"]["full_name"] == "Смирнова Ольга Викторовна"


def test_taking_a_conversation_takes_all_its_leads_and_a_second_admin_is_refused(
    inbox_conn, add_lead
):
    lead_ids = _one_person_through_three_sources(add_lead)
    state = store.take_lead(inbox_conn, lead_ids[1], "anna")
    assert state.lead_ids == tuple(lead_ids)
    statuses = inbox_conn.execute(
        "select status, taken_by from integration.leads where lead_id = any(%s)", (lead_ids,)
    ).fetchall()
    assert statuses == [("in_progress", "anna")] * 3
    with pytest.raises(store.LeadUnavailable) as refused:
        store.take_lead(inbox_conn, lead_ids[2], "boris")
    assert refused.value.state.taken_by == "anna"

    # A lead arriving later joins the taken conversation, and closing closes all four.
    late = add_lead(minutes_ago=1, source="site_main", phone=PHONE)
    (row,) = _rows(inbox_conn)
    assert row["lead_ids"] == [*lead_ids, late] and row["status"] == "in_progress"
    closed = store.close_lead(inbox_conn, lead_ids[0], "anna", "done", "Записана")
    assert set(closed.lead_ids) == {*lead_ids, late}
    assert inbox_conn.execute(
        "select count(*) from integration.leads where status = 'done' and closed_by = 'anna'"
    ).fetchone() == (4,)
    assert _rows(inbox_conn) == []


def test_two_admins_taking_one_conversation_at_once_one_wins(inbox_conn, add_lead, clinic_db_url):
    lead_ids = _one_person_through_three_sources(add_lead)

    def take(user: str, lead_id: int):
        with psycopg.connect(clinic_db_url) as conn:
            try:
                return store.take_lead(conn, lead_id, user).taken_by
            except store.LeadUnavailable as refused:
                return f"refused: {refused.state.taken_by}"

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(take, ["anna", "boris"], [lead_ids[0], lead_ids[2]]))
    winner = next(result for result in results if not result.startswith("refused"))
    assert sorted(results) == sorted([winner, f"refused: {winner}"])
    assert inbox_conn.execute(
        "select distinct taken_by from integration.leads where lead_id = any(%s)", (lead_ids,)
    ).fetchall() == [(winner,)]


def test_a_family_on_one_phone_is_possible_with_three_names(inbox_conn, add_lead, cards):
    for patient_id, name in [
        ("p-1", "Кузнецова Анна Петровна"),
        ("p-2", "Кузнецов Пётр Ильич"),
        ("p-3", "Кузнецова Мария Петровна"),
    ]:
        cards(patient_id, name, "8 (916) 555-12-34")
    lead_id = add_lead(name="Кузнецова", phone=PHONE)
    for patient_id in ("p-1", "p-2", "p-3"):
        _match(inbox_conn, lead_id, patient_id, "possible")
    (row,) = _rows(inbox_conn)
    patient = row["patient"]
    assert patient["state"] == "possible" and patient["card"] is None
    assert [c["full_name"] for c in patient["candidates"]] == [
        "Кузнецов Пётр Ильич",
        "Кузнецова Анна Петровна",
        "Кузнецова Мария Петровна",
    ]
    assert {m["patient_id"] for m in patient["family"]} == {"p-1", "p-2", "p-3"}
    assert inbox_conn.execute("select count(*) from clinic.patients").fetchone() == (3,)


def test_a_booked_appointment_and_the_last_visit_show_on_the_row(inbox_conn, add_lead, cards):
    now = datetime.now(UTC)
    cards("p-1", "Смирнова Ольга Викторовна", PHONE)
    lead_id = add_lead(phone=PHONE)
    _match(inbox_conn, lead_id, "p-1", "probable")
    _appointment(inbox_conn, "a-past", now - timedelta(days=40), "completed", patient_id="p-1")
    _appointment(inbox_conn, "a-gone", now - timedelta(days=3), "cancelled", patient_id="p-1")
    thursday = (now + timedelta(days=3)).replace(microsecond=0)
    _appointment(inbox_conn, "a-next", thursday, "scheduled", patient_id="p-1", doctor_id="doc-2")
    _appointment(inbox_conn, "a-later", now + timedelta(days=9), "scheduled", patient_id="p-1")
    (row,) = _rows(inbox_conn)
    patient = row["patient"]
    assert patient["state"] == "probable" and patient["visitor"] == "returning"
    assert patient["next_appointment"] == {
        "starts_at": thursday,
        "doctor_name": "Иванова Мария Сергеевна",
        "branch_name": "Москва, Тверская",
    }
    assert patient["last_visit"]["doctor_name"] == "Петров Геннадий Андреевич"


def test_without_a_card_the_visits_are_found_by_the_phone(inbox_conn, add_lead, cards):
    now = datetime.now(UTC)
    add_lead(phone=PHONE, name="Новый Пациент")
    returning = add_lead(phone="+7 903 222-33-44", name="Старый Пациент")
    _appointment(
        inbox_conn, "a-1", now - timedelta(days=100), "completed", patient_phone="8-903-222-33-44"
    )
    _appointment(
        inbox_conn, "a-2", now + timedelta(days=1), "scheduled", patient_phone="+7 (903) 2223344"
    )
    by_name = {row["name"]: row["patient"] for row in _rows(inbox_conn)}
    assert by_name["Новый Пациент"]["state"] == "none"
    assert by_name["Новый Пациент"]["visitor"] == "new"
    assert by_name["Новый Пациент"]["next_appointment"] is None
    assert by_name["Старый Пациент"]["visitor"] == "returning"
    assert by_name["Старый Пациент"]["next_appointment"]["doctor_name"] == (
        "Петров Геннадий Андреевич"
    )
    assert returning


def test_a_card_without_a_completed_visit_is_a_new_patient(inbox_conn, add_lead, cards):
    cards("p-9", "Орлова Анна", PHONE)
    lead_id = add_lead(phone=PHONE, name="Орлова Анна")
    _match(inbox_conn, lead_id, "p-9", "certain")
    _appointment(
        inbox_conn, "a-9", datetime.now(UTC) - timedelta(days=5), "cancelled", patient_id="p-9"
    )
    (row,) = _rows(inbox_conn)
    assert row["patient"]["card"]["patient_id"] == "p-9"
    assert row["patient"]["visitor"] == "new"


def test_a_confirmed_card_is_written_for_every_lead_and_outlives_new_matches(
    inbox_conn, add_lead, cards
):
    for patient_id, name in [("p-1", "Кузнецова Анна"), ("p-2", "Кузнецов Пётр")]:
        cards(patient_id, name, PHONE)
    lead_ids = _one_person_through_three_sources(add_lead)
    _match(inbox_conn, lead_ids[0], "p-1", "possible")
    _match(inbox_conn, lead_ids[0], "p-2", "possible")
    state = store.choose_patient(inbox_conn, lead_ids[2], "p-2", "anna")
    assert state.lead_ids == tuple(lead_ids)
    assert inbox_conn.execute(
        "select lead_id, patient_id, chosen_by from integration.lead_patient_choices"
        " order by lead_id"
    ).fetchall() == [(lead_id, "p-2", "anna") for lead_id in lead_ids]
    # Matching runs again and finds the other card certain: the admin's choice stands.
    _match(inbox_conn, lead_ids[1], "p-1", "certain")
    (row,) = _rows(inbox_conn)
    assert row["patient"]["state"] == "chosen" and row["patient"]["chosen_by"] == "anna"
    assert row["patient"]["card"]["full_name"] == "Кузнецов Пётр"

    store.choose_patient(inbox_conn, lead_ids[0], None, "boris")  # none of them: new
    (row,) = _rows(inbox_conn)
    assert (row["patient"]["state"], row["patient"]["visitor"]) == ("new_patient", "new")
    with pytest.raises(store.UnknownPatient):
        store.choose_patient(inbox_conn, lead_ids[0], "p-404", "anna")


def test_the_latest_freed_slot_shows_on_the_row(inbox_conn, add_lead):
    lead_ids = _one_person_through_three_sources(add_lead)
    slot = datetime(2026, 12, 10, 11, 0, tzinfo=UTC)
    for appointment_id, doctor_id, starts_at, flagged_minutes_ago in [
        ("a-1", "doc-2", slot - timedelta(days=1), 30),
        ("a-2", "doc-1", slot, 5),
    ]:
        inbox_conn.execute(
            "insert into integration.lead_freed_slots (lead_id, appointment_id, doctor_id,"
            " branch_id, starts_at, ends_at, flagged_at)"
            " values (%s, %s, %s, 'msk', %s, %s, now() - %s * interval '1 minute')",
            (
                lead_ids[1],
                appointment_id,
                doctor_id,
                starts_at,
                starts_at + timedelta(hours=1),
                flagged_minutes_ago,
            ),
        )
    inbox_conn.commit()
    (row,) = _rows(inbox_conn)
    assert row["freed_slot"] == {
        "doctor_name": "Петров Геннадий Андреевич",
        "branch_name": "Москва, Тверская",
        "starts_at": slot,
        "ends_at": slot + timedelta(hours=1),
    }


def test_filters_and_search_find_the_whole_conversation(inbox_conn, add_lead):
    lead_ids = _one_person_through_three_sources(add_lead)
    add_lead(name="Лебедев Игорь", phone="+7 999 135-79-11")
    for filters in ({"search": "8 916 555-12"}, {"source": "uis"}, {"search": "Смирнова"}):
        assert [row["lead_ids"] for row in _rows(inbox_conn, **filters)] == [lead_ids]


# -- through the real api-server -------------------------------------------------------------
def test_the_api_takes_and_confirms_a_conversation_and_refuses_a_second_admin(
    airflow_web, inbox_conn, add_lead, cards
):
    cards("p-1", "Смирнова Ольга Викторовна", PHONE)
    lead_ids = _one_person_through_three_sources(add_lead)
    _match(inbox_conn, lead_ids[0], "p-1", "probable")
    anna = airflow_web.bearer_session("anna")
    listing = anna.get(airflow_web.url(f"{INBOX}/api/leads"), params={"q": "9165551234"})
    (row,) = listing.json()["leads"]
    assert row["lead_ids"] == lead_ids
    assert [s["source_label"] for s in row["sources"]] == ["Tilda", "UIS", "НаПоправку"]
    assert row["patient"]["card"]["full_name"] == "Смирнова Ольга Викторовна"

    taken = anna.post(airflow_web.url(f"{INBOX}/api/leads/{lead_ids[0]}/take"), json={})
    assert taken.status_code == 200 and taken.json()["lead_ids"] == lead_ids
    refused = airflow_web.bearer_session("admin").post(
        airflow_web.url(f"{INBOX}/api/leads/{lead_ids[2]}/take"), json={}
    )
    assert refused.status_code == 409
    assert refused.json()["detail"] == "Заявка уже в работе у anna"

    chosen = anna.post(
        airflow_web.url(f"{INBOX}/api/leads/{lead_ids[1]}/patient"), json={"patient_id": "p-1"}
    )
    assert chosen.status_code == 200 and chosen.json()["lead_ids"] == lead_ids
    unknown = anna.post(
        airflow_web.url(f"{INBOX}/api/leads/{lead_ids[1]}/patient"), json={"patient_id": "x"}
    )
    assert unknown.status_code == 404
    assert inbox_conn.execute(
        "select count(*) from integration.lead_patient_choices where patient_id = 'p-1'"
    ).fetchone() == (3,)
    (row,) = anna.get(airflow_web.url(f"{INBOX}/api/leads")).json()["leads"]
    assert row["patient"]["state"] == "chosen" and row["status"] == "in_progress"


def test_confirming_a_card_needs_the_forgery_check(airflow_web, inbox_conn, add_lead, cards):
    cards("p-1", "Смирнова Ольга Викторовна", PHONE)
    lead_id = add_lead(phone=PHONE)
    session = airflow_web.cookie_session("anna")
    forged = session.post(
        airflow_web.url(f"{INBOX}/api/leads/{lead_id}/patient"), json={"patient_id": "p-1"}
    )
    assert forged.status_code == 403
    page = session.get(airflow_web.url(f"{INBOX}/"))
    headers = airflow_web.page_headers(airflow_web.csrf_token_in(page.text))
    confirmed = session.post(
        airflow_web.url(f"{INBOX}/api/leads/{lead_id}/patient"),
        json={"patient_id": "p-1"},
        headers=headers,
    )
    assert confirmed.status_code == 200
    assert inbox_conn.execute(
        "select patient_id, chosen_by from integration.lead_patient_choices"
    ).fetchall() == [("p-1", "anna")]
