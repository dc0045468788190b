"""Leads matched to patient cards on real PostgreSQL: on arrival through ``store_leads`` and
again by the re-match after the clinic's sync changes cards."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from ident_hooks.patients.matching import (
    Card,
    agrees_loosely,
    agrees_strictly,
    close_name,
    grade,
    name_words,
    one_edit_apart,
)
from tests.patients.conftest import NOW, add_card, matches, rematch, store

FAMILY_PHONE = "+7 916 555-12-34"


def _family(conn) -> None:
    add_card(conn, "p-mother", "Смирнова Ольга Петровна", [FAMILY_PHONE], family_id="f1")
    add_card(conn, "p-son", "Смирнов Артём Игоревич", ["89165551234"], family_id="f1")
    add_card(conn, "p-daughter", "Смирнова Алёна Игоревна", ["8 (916) 555-12-34"], family_id="f1")
    conn.commit()
    rematch(conn)


def _cards(conn) -> list[tuple]:
    rows = conn.execute(
        "select p.*, array_agg(ph.phone order by ph.phone) from clinic.patients p"
        " left join clinic.patient_phones ph using (patient_id)"
        " group by p.patient_id order by p.patient_id"
    ).fetchall()
    conn.commit()
    return rows


def test_a_family_of_three_on_one_phone_is_possible_with_three_names_and_no_card_changed(db):
    _family(db)
    cards_before = _cards(db)

    lead_id = store(db, "l1", name="Здравствуйте", phone="+79165551234")

    assert matches(db, lead_id) == {
        "p-mother": "possible",
        "p-son": "possible",
        "p-daughter": "possible",
    }
    names = db.execute(
        "select p.full_name from integration.lead_patient_matches m"
        " join clinic.patients p using (patient_id) where m.lead_id = %s order by 1",
        (lead_id,),
    ).fetchall()
    assert [n for (n,) in names] == [
        "Смирнов Артём Игоревич",
        "Смирнова Алёна Игоревна",
        "Смирнова Ольга Петровна",
    ]
    assert _cards(db) == cards_before


def test_on_a_shared_phone_the_card_whose_name_agrees_is_certain(db):
    _family(db)

    lead_id = store(db, "l1", name="алена смирнова", phone="+79165551234")

    assert matches(db, lead_id) == {
        "p-daughter": "certain",
        "p-mother": "possible",
        "p-son": "possible",
    }


def test_a_surname_shared_by_the_family_confirms_nobody(db):
    _family(db)

    lead_id = store(db, "l1", name="Смирнова", phone="+79165551234")

    assert set(matches(db, lead_id).values()) == {"possible"}


def test_phone_and_name_of_one_card_is_certain(db):
    add_card(db, "p1", "Иванова Мария Сергеевна", ["+79161234567"])
    db.commit()
    rematch(db)

    lead_id = store(db, "l1", name="Мария", phone="8 916 123 45 67")

    assert matches(db, lead_id) == {"p1": "certain"}
    reason = db.execute(
        "select reason from integration.lead_patient_matches where lead_id = %s", (lead_id,)
    ).fetchone()[0]
    assert reason == "телефон и имя совпадают с картой"
    db.commit()


@pytest.mark.parametrize("name", ["Пётр", None, ""])
def test_the_phone_of_one_card_with_another_name_or_none_is_probable(db, name):
    add_card(db, "p1", "Иванова Мария Сергеевна", ["+79161234567"])
    db.commit()
    rematch(db)

    lead_id = store(db, "l1", name=name, phone="+79161234567")

    assert matches(db, lead_id) == {"p1": "probable"}


def test_phones_typed_any_way_on_the_card_match(db):
    add_card(db, "p1", "Кузнецов Олег Павлович", ["8 (916) 123-45-67"])
    add_card(db, "p2", "Орлова Нина Львовна", ["+7(903)765 43 21 моб."])
    db.commit()
    rematch(db)

    assert matches(db, store(db, "l1", name="Олег", phone="+79161234567")) == {"p1": "certain"}
    assert matches(db, store(db, "l2", name="Нина", phone="79037654321")) == {"p2": "certain"}


def test_a_card_with_two_phones_is_found_by_either(db):
    add_card(db, "p1", "Кузнецов Олег Павлович", ["+79161234567", "+74951234567"])
    db.commit()
    rematch(db)

    assert matches(db, store(db, "l1", phone="+74951234567")) == {"p1": "probable"}
    assert matches(db, store(db, "l2", phone="+79161234567")) == {"p1": "probable"}


def test_a_close_name_with_the_same_email_is_possible_without_a_phone_match(db):
    add_card(db, "p1", "Кузнецов Олег Павлович", ["+79161234567"], email=" Oleg@Example.org")
    add_card(db, "p2", "Кузнецова Ольга Ивановна", [], email="oleg@example.org")
    db.commit()
    rematch(db)

    lead_id = store(db, "l1", name="Олег Кузнецов", phone="+79990001122", email="oleg@example.org")
    assert matches(db, lead_id) == {"p1": "possible"}

    # Without the e-mail a name alone matches nobody.
    assert matches(db, store(db, "l2", name="Олег Кузнецов", phone="+79990001122")) == {}


def test_a_card_added_after_the_lead_is_matched_by_the_re_match(db):
    lead_id = store(db, "l1", name="Мария", phone="+79161234567")
    assert matches(db, lead_id) == {}

    add_card(db, "p1", "Иванова Мария Сергеевна", ["8 916 123-45-67"])
    db.commit()
    summary = rematch(db)

    assert (summary.full, summary.cards, summary.leads) == (False, 1, 1)
    assert matches(db, lead_id) == {"p1": "certain"}
    assert db.execute("select count(*) from integration.patient_changes").fetchone()[0] == 0
    db.commit()


def test_a_phone_removed_from_a_card_takes_the_match_away(db):
    add_card(db, "p1", "Иванова Мария Сергеевна", ["+79161234567"])
    db.commit()
    rematch(db)
    lead_id = store(db, "l1", phone="+79161234567")
    assert matches(db, lead_id) == {"p1": "probable"}

    db.execute("delete from clinic.patient_phones where patient_id = 'p1'")
    db.commit()
    rematch(db)

    assert matches(db, lead_id) == {}


def test_a_renamed_card_is_graded_again(db):
    add_card(db, "p1", "Иванова Мария Сергеевна", ["+79161234567"])
    db.commit()
    rematch(db)
    lead_id = store(db, "l1", name="Мария Петрова", phone="+79161234567")
    assert matches(db, lead_id) == {"p1": "probable"}

    db.execute("update clinic.patients set full_name = 'Петрова Мария Сергеевна'")
    db.commit()
    rematch(db)

    assert matches(db, lead_id) == {"p1": "certain"}


def test_a_changed_lead_is_matched_again_when_stored(db):
    add_card(db, "p1", "Иванова Мария Сергеевна", ["+79161234567"])
    add_card(db, "p2", "Орлова Нина Львовна", ["+79037654321"])
    db.commit()
    rematch(db)
    lead_id = store(db, "l1", name="Нина", phone="+79161234567")
    assert matches(db, lead_id) == {"p1": "probable"}

    assert store(db, "l1", name="Нина", phone="+79037654321") == lead_id

    assert matches(db, lead_id) == {"p2": "certain"}


def test_re_matching_leaves_the_front_desks_choice_alone(db):
    _family(db)
    lead_id = store(db, "l1", phone="+79165551234")
    db.execute(
        "insert into integration.lead_patient_choices (lead_id, patient_id, chosen_by)"
        " values (%s, 'p-son', 'admin')",
        (lead_id,),
    )
    db.commit()
    choice = db.execute("select * from integration.lead_patient_choices").fetchall()
    db.commit()

    db.execute("delete from clinic.patients where patient_id = 'p-mother'")
    db.commit()
    rematch(db)
    rematch(db, full=True)

    assert matches(db, lead_id) == {"p-son": "possible", "p-daughter": "possible"}
    assert db.execute("select * from integration.lead_patient_choices").fetchall() == choice
    db.commit()


def test_bad_card_data_never_breaks_storing_a_lead(db):
    add_card(db, "p-bad", "", ["не указан", "000", "+7 (916) 123-45-67 доб. 5 или 6 или 7"])
    add_card(db, "p-blank", "   ", ["+79161234567"])
    add_card(db, "p-good", "Орлова Нина Львовна", ["+79161234567"])
    db.commit()
    rematch(db)

    lead_id = store(db, "l1", name="Нина", phone="+79161234567")

    assert matches(db, lead_id) == {"p-blank": "possible", "p-good": "certain"}
    assert matches(db, store(db, "l2", name="Nobody", phone="не телефон")) == {}


def test_truncated_cards_rebuild_the_index_and_clear_the_matches(db):
    _family(db)
    lead_id = store(db, "l1", phone="+79165551234")
    assert len(matches(db, lead_id)) == 3

    db.execute("truncate clinic.patients cascade")
    db.commit()
    summary = rematch(db)

    assert summary.full
    assert matches(db, lead_id) == {}


def test_the_dag_re_matches_after_cards_change(db, airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    lead_id = store(db, "l1", name="Мария Иванова", phone="+79161234567")
    add_card(db, "p1", "Иванова Мария Сергеевна", ["8 (916) 123-45-67"])
    db.commit()
    assert matches(db, lead_id) == {}

    run = DagBag().get_dag("match_patients").test()

    assert run.state == "success"
    assert matches(db, lead_id) == {"p1": "certain"}


def test_a_lead_stored_while_the_re_match_runs_is_never_left_unmatched(db, clinic_db_url):
    from ident_hooks.leads.normalise import Lead
    from ident_hooks.leads.store import store_leads

    add_card(db, "p1", "Иванова Мария Сергеевна", ["8 916 123-45-67"])
    db.commit()  # noted, not indexed yet
    arriving = psycopg.connect(clinic_db_url)
    lead = Lead("site_main", "l1", NOW, name="Мария", phone_e164="+79161234567", raw={})
    store_leads(arriving, [lead])  # matched against the index as it was: nothing yet
    with ThreadPoolExecutor(1) as pool, psycopg.connect(clinic_db_url) as rematching:
        summary = pool.submit(rematch, rematching)
        deadline = time.monotonic() + 30
        while not _waiting_for_an_advisory_lock(db):
            assert time.monotonic() < deadline and not summary.done()
        arriving.commit()
        arriving.close()
        assert summary.result(timeout=30).leads == 1

    lead_id = db.execute("select lead_id from integration.leads").fetchone()[0]
    assert matches(db, lead_id) == {"p1": "certain"}


def _waiting_for_an_advisory_lock(conn) -> bool:
    waiting = conn.execute(
        "select exists (select 1 from pg_locks where locktype = 'advisory' and not granted)"
    ).fetchone()[0]
    conn.commit()
    return waiting


# -- the rules themselves -----------------------------------------------------------------
CARD = Card("p1", name_words("Иванова-Седых  Мария Сергеевна"))


def test_name_words_ignore_case_yo_and_extra_spaces():
    assert name_words("  ПЁТР   Иванов-Седых, ") == ("петр", "иванов-седых")
    assert name_words(None) == name_words("") == name_words("123 !") == ()


@pytest.mark.parametrize(
    "name",
    ["Мария", "мария иванова-седых", "Иванова-Седых М.", "Мария Сергеевна", "МАРИЯ  СЕРГЕЕВНА"],
)
def test_names_that_agree(name):
    assert agrees_strictly(name_words(name), CARD)


@pytest.mark.parametrize("name", ["Сергеевна", "М. С.", "Мария Петровна", "Ирина", ""])
def test_names_that_do_not_agree_strictly(name):
    assert not agrees_strictly(name_words(name), CARD)


def test_surname_and_given_name_agree_loosely_whatever_else_is_there():
    assert agrees_loosely(name_words("Иванова-Седых Мария (мама)"), CARD)
    assert not agrees_loosely(name_words("Мария (мама)"), CARD)


def test_a_strict_agreement_wins_over_a_loose_one():
    father = Card("p-father", name_words("Иванов Иван Петрович"))
    son = Card("p-son", name_words("Иванов Иван Сергеевич"))
    graded = grade("Иван Иванов Петрович", [father, son])
    assert {m.patient_id: m.grade for m in graded} == {
        "p-father": "certain",
        "p-son": "possible",
    }


@pytest.mark.parametrize(
    ("a", "b", "close"),
    [
        ("кузнецов", "кузнецов", True),
        ("кузнецов", "кузнецев", True),  # one letter replaced
        ("кузнецов", "кузнецовв", True),  # one added
        ("кузнецов", "кузнеов", True),  # one dropped
        ("кузнецов", "кузницев", False),  # two
        ("олег", "олга", False),  # two
        ("яна", "ява", False),  # short words must be equal
    ],
)
def test_one_edit_apart(a, b, close):
    assert one_edit_apart(a, b) is close
    assert one_edit_apart(b, a) is close


def test_a_close_name_needs_both_surname_and_given_name_in_distinct_words():
    card = Card("p1", name_words("Кузнецов Олег Павлович"))
    assert close_name(name_words("Олег Кузнецев"), card)
    assert not close_name(name_words("Кузнецов"), card)
    assert not close_name(name_words("Кузнецов Кузнецов"), card)
