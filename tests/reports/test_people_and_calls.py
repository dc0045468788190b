"""People, new versus returning patients and calls in the reports, and the clinic's numbers.

A hand-computed week (Monday 2026-11-02, clinic time). The map of numbers:

* +7 495 120-00-01 — ПроДокторов's profile of the clinic: ``aggregator``;
* +7 495 120-00-02 — the sign on the front: ``direct``.

Phones: A (one patient, came on 2026-10-01: an appointment naming no card), B (a family:
cards pB1, who came on 2026-10-20, and pB2, who never came), C (never came).

=====  ==========  =============  ==========================  ======================  =====
lead   source      when (11-..)   dialled / tags              channel                 card
=====  ==========  =============  ==========================  ======================  =====
C1     uis_calls   02 10:00 A     ПроДокторов, google/cpc      aggregator (map wins)   —
T1     tilda       02 10:05 A     google/cpc/brand            paid                    —
C2     uis_calls   02 11:00 C     unknown number, yandex/cpc  paid (rules)            —
U1     uis (pull)  02 11:30 C     yandex/cpc/brand            paid                    —
C3     uis_calls   03 09:00 B     the sign (8 495…), vk/social  direct (map wins)     pB1
C4     uis_calls   03 09:30 B     the sign (+7 (495)…)        direct                  pB2
N1     uis_calls   03 12:00 C     a site request, not a call  direct (no tags)        —
C5     uis_calls   03 13:00 B     ПроДокторов                 aggregator              —
=====  ==========  =============  ==========================  ======================  =====

People: A = C1, T1 (one phone, two sources); C = C2, U1, N1; pB1 = C3; pB2 = C4 (two
cards on one phone are two people); C5 has no choice and its phone two confirmed cards, so
it is the phone B — a third person.
Returning: A (visit 10-01, before), pB1 (10-20), phone B for C5 (pB1's visit was on
phone B); new: C, pB2 (pB1's visit names pB1, not pB2).
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal as D

import psycopg
import pytest
import yaml
from hand_dataset import msk

from ident_hooks.reports import channels
from ident_hooks.reports.channels import ChannelRulesError, dialled_number, load_numbers

WEEK = date(2026, 11, 2)
A, B, C = "+79160000011", "+79160000012", "+79160000013"
PRODOCTOROV, SIGN = "+74951200001", "+74951200002"
NUMBERS = """
numbers:
  - number: "+7 495 120-00-01"
    channel: aggregator
    label: "ПроДокторов: профиль клиники"
  - number: "8 (495) 120-00-02"
    channel: direct
    label: "Вывеска на фасаде"
"""

# name, source, created (Moscow), phone, raw, (utm_source, utm_medium, utm_campaign)
LEADS = [
    ("C1", "uis_calls", "2026-11-02 10:00", A,
     {"call_session_id": 1, "virtual_phone_number": "74951200001"}, ("google", "cpc", "brand")),
    ("T1", "tilda", "2026-11-02 10:05", A, {}, ("google", "cpc", "brand")),
    ("C2", "uis_calls", "2026-11-02 11:00", C,
     {"call_session_id": 2, "virtual_phone_number": "+7 (495) 999-99-99"},
     ("yandex", "cpc", "brand")),
    ("U1", "uis", "2026-11-02 11:30", C, {}, ("yandex", "cpc", "brand")),
    ("C3", "uis_calls", "2026-11-03 09:00", B,
     {"call_session_id": 3, "virtual_phone_number": 84951200002}, ("vk", "social", None)),
    ("C4", "uis_calls", "2026-11-03 09:30", B,
     {"call_session_id": 4, "virtual_phone_number": "+7 (495) 120-00-02"}, (None, None, None)),
    ("N1", "uis_calls", "2026-11-03 12:00", C,
     {"communication_id": 5, "virtual_phone_number": "74951200001"}, (None, None, None)),
    ("C5", "uis_calls", "2026-11-03 13:00", B,
     {"call_session_id": 6, "virtual_phone_number": "74951200001"}, (None, None, None)),
]  # fmt: skip


def _rules_with_numbers(tmp_path, monkeypatch, numbers: str):
    """The shipped rules with ``numbers`` (YAML) as the clinic's numbers, as a deployment's
    own file."""
    rules = yaml.safe_load(channels.RULES_PATH.read_text(encoding="utf-8"))
    rules["numbers"] = yaml.safe_load(numbers)["numbers"]
    path = tmp_path / "marketing_channels.yaml"
    path.write_text(yaml.safe_dump(rules, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv(channels.RULES_PATH_VARIABLE, str(path))
    channels._numbers.cache_clear()
    return path


@pytest.fixture
def numbers_map(tmp_path, monkeypatch):
    """The shipped rules plus the two numbers."""
    yield _rules_with_numbers(tmp_path, monkeypatch, NUMBERS)
    channels._numbers.cache_clear()


def _insert(conn: psycopg.Connection, leads) -> dict[str, int]:
    ids = {}
    for name, source, created, phone, raw, utm in leads:
        ids[name] = conn.execute(
            "insert into integration.leads (source, external_id, created_at, phone_raw,"
            " phone_e164, utm_source, utm_medium, utm_campaign, raw, status)"
            " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, 'done') returning lead_id",
            (source, name, msk(created), phone, phone, *utm, json.dumps(raw)),
        ).fetchone()[0]
    return ids


def _cards_and_visits(conn: psycopg.Connection) -> None:
    conn.execute(
        "insert into clinic.patients (patient_id, full_name, family_id) values"
        " ('pA', 'Андреев Антон', null), ('pB1', 'Борисова Вера', 'fB'),"
        " ('pB2', 'Борисов Гриша', 'fB')"
    )
    for appointment_id, starts, phone, patient in (
        ("visit-A", "2026-10-01 10:00", "8 (916) 000-00-11", None),
        ("visit-B1", "2026-10-20 10:00", "+7 916 000 00 12", "pB1"),
    ):
        begins = msk(starts)
        conn.execute(
            "insert into clinic.appointments (appointment_id, doctor_id, branch_id, starts_at,"
            " ends_at, status, patient_phone, created_at, patient_id)"
            " values (%s, 'd1', 'msk', %s, %s, 'completed', %s, %s, %s)",
            (appointment_id, begins, begins + timedelta(minutes=30), phone,
             begins - timedelta(days=3), patient),
        )  # fmt: skip


def _choose(conn: psycopg.Connection, lead_id: int, patient_id: str | None) -> None:
    conn.execute(
        "insert into integration.lead_patient_choices (lead_id, patient_id, chosen_by)"
        " values (%s, %s, 'admin') on conflict (lead_id) do update"
        " set patient_id = excluded.patient_id",
        (lead_id, patient_id),
    )


@pytest.fixture
def calls_week(empty_clinic, numbers_map) -> dict[str, int]:
    conn = empty_clinic
    _cards_and_visits(conn)
    ids = _insert(conn, LEADS)
    _choose(conn, ids["C3"], "pB1")
    _choose(conn, ids["C4"], "pB2")
    conn.commit()
    return ids


# week, channel, utm_campaign, leads, people, leads per person, new, returning
PATIENTS_BY_CHANNEL = [
    # C1: A came on 10-01.
    (WEEK, "aggregator", None, 1, 1, D("1.00"), 0, 1),  # C5: the phone B, pB1 came on it
    (WEEK, "aggregator", "brand", 1, 1, D("1.00"), 0, 1),
    # C3 (pB1, returning), C4 (pB2, new), N1 (phone C, new): 3 leads, 3 people.
    (WEEK, "direct", None, 3, 3, D("1.00"), 2, 1),
    # T1 (A, returning), C2 and U1 (C, new): 3 leads, 2 people, 3 / 2 = 1.50.
    (WEEK, "paid", "brand", 3, 2, D("1.50"), 1, 1),
]
# day, channel, calls, callers: U1 (the pull) and N1 (a request) are not calls.
CALLS_DAILY = [
    (date(2026, 11, 2), "aggregator", 1, 1),  # C1
    (date(2026, 11, 2), "paid", 1, 1),  # C2: an unknown number, the rules decide
    (date(2026, 11, 3), "aggregator", 1, 1),  # C5
    (date(2026, 11, 3), "direct", 2, 2),  # C3, C4: one phone, two cards, two callers
]


def test_people_new_returning_and_calls_equal_the_hand_computed_ones(
    calls_week, build, report_rows
):
    assert build().mode == "full"
    assert report_rows("patients_by_channel") == PATIENTS_BY_CHANNEL
    assert report_rows("calls_daily") == CALLS_DAILY


def test_without_the_map_a_call_is_classified_by_the_rules(
    empty_clinic, build, report_rows, monkeypatch, tmp_path
):
    """No numbers in the map, and no card is chosen: C1's tags make it paid, C3's
    social; C4 and C5 (no tags) are direct, one phone and no cards: one caller."""
    _rules_with_numbers(tmp_path, monkeypatch, "numbers: []")
    _insert(empty_clinic, LEADS)
    empty_clinic.commit()
    build()
    assert report_rows("calls_daily") == [
        (date(2026, 11, 2), "paid", 2, 2),  # C1 (A), C2 (C)
        (date(2026, 11, 3), "direct", 2, 1),  # C4, C5: the phone B
        (date(2026, 11, 3), "social", 1, 1),  # C3
    ]


def test_the_numbers_map_reads_any_spelling(numbers_map):
    for spelling in ("+7 495 120-00-01", "8 (495) 120-00-01", "74951200001", 84951200001):
        found = dialled_number(spelling)
        assert found is not None, spelling
        assert (found.number, found.channel, found.label) == (
            PRODOCTOROV,
            "aggregator",
            "ПроДокторов: профиль клиники",
        )
    assert dialled_number("+7 495 120-00-02").label == "Вывеска на фасаде"
    assert dialled_number("+7 495 999-99-99") is None
    assert dialled_number(None) is None
    assert channels.classify("uis_calls", "google", "cpc", None, "74951200001") == "aggregator"
    assert channels.classify("uis_calls", "google", "cpc", None, "74959999999") == "paid"
    # Only a call's number counts: a site's lead keeps its tags' channel.
    assert channels.classify("site_main", "google", "cpc", None, "74951200001") == "paid"


@pytest.mark.parametrize(
    ("numbers", "message"),
    [
        ('  - {number: "+74951200001", channel: ads, label: x}\n', "number 1: channel must be"),
        ('  - {number: "12-34", channel: aggregator, label: x}\n', "number 1: '12-34' is not a"),
        ('  - {number: "+74951200001", channel: aggregator}\n', "number 1: a number has a number"),
        (
            '  - {number: "+74951200001", channel: aggregator, label: " "}\n',
            "number 1: the label says",
        ),
        (
            '  - {number: "+74951200001", channel: aggregator, label: a}\n'
            '  - {number: "8 495 120 00 01", channel: direct, label: b}\n',
            "number 2: \\+74951200001 is already number 1",
        ),
    ],
)
def test_mistakes_in_the_numbers_are_refused_with_a_reason(tmp_path, numbers, message):
    path = tmp_path / "marketing_channels.yaml"
    path.write_text("numbers:\n" + numbers, encoding="utf-8")
    with pytest.raises(ChannelRulesError, match=f"marketing_channels.yaml: {message}"):
        load_numbers(path)


def test_choices_and_visits_arriving_later_end_where_a_full_build_does(
    calls_week, build, report_rows, clinic_db_url
):
    """The front desk confirms cards after the first build and a visit is recorded: the
    incremental build's tables equal a full build's, and the numbers moved as computed."""
    build()
    conn = psycopg.connect(clinic_db_url)
    with conn:
        # C5 is pB1's call: phone B now has C3 and C5 as pB1 — still two cards on it.
        _choose(conn, calls_week["C5"], "pB1")
        # T1 is confirmed as card pA, which joins C1 (one card on phone A) — still 1 person.
        _choose(conn, calls_week["T1"], "pA")
        # pB2 came on 2026-11-03 09:10, between C3 and C4: C4 becomes returning.
        conn.execute(
            "insert into clinic.appointments (appointment_id, doctor_id, branch_id, starts_at,"
            " ends_at, status, patient_phone, created_at, patient_id)"
            " values ('visit-B2', 'd1', 'msk', %s, %s, 'completed', %s, %s, 'pB2')",
            (msk("2026-11-03 09:10"), msk("2026-11-03 09:20"), B, msk("2026-11-01 09:00")),
        )
    conn.close()
    assert build().mode == "incremental"
    incremental = (report_rows("patients_by_channel"), report_rows("calls_daily"))
    assert incremental[0] == [
        (WEEK, "aggregator", None, 1, 1, D("1.00"), 0, 1),  # C5: now pB1, returning
        (WEEK, "aggregator", "brand", 1, 1, D("1.00"), 0, 1),  # C1: card pA
        # C3 (pB1), C4 (pB2, came at 09:10, returning now), N1 (C, new)
        (WEEK, "direct", None, 3, 3, D("1.00"), 1, 2),
        (WEEK, "paid", "brand", 3, 2, D("1.50"), 1, 1),
    ]
    build(full=True)
    assert (report_rows("patients_by_channel"), report_rows("calls_daily")) == incremental
