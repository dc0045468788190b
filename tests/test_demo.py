"""The demo clinic: deterministic, realistic, and loadable into the contract tables."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from ident_hooks import demo

NOW = datetime(2026, 11, 26, 6, 0, tzinfo=ZoneInfo("UTC"))
START = date(2026, 11, 26)


@pytest.fixture(scope="module")
def clinic():
    return demo.generate(30, 40, start=START, now=NOW)


def test_same_seed_same_clinic(clinic):
    again = demo.generate(30, 40, start=START, now=NOW)
    assert again == clinic
    other = demo.generate(30, 40, start=START, now=NOW, seed=1)
    assert other.appointments != clinic.appointments


def test_network_shape(clinic):
    assert len(clinic.branches) == 3
    zones = {zone for _, _, zone, _ in clinic.branches}
    assert "Europe/Moscow" in zones and zones - {"Europe/Moscow"}
    assert len(clinic.doctors) == 30
    assert len({specialty for _, _, specialty, _ in clinic.doctors}) >= 6
    for _, full_name, _, _ in clinic.doctors:
        assert len(full_name.split()) == 3  # surname, name, patronymic


def test_shifts_have_lunch_breaks_on_working_days(clinic):
    per_day: dict[tuple[str, date], list] = {}
    for doctor_id, _, starts, ends in clinic.work_intervals:
        per_day.setdefault((doctor_id, starts.date()), []).append((starts, ends))
    with_break = [v for v in per_day.values() if len(v) == 2 and v[0][1] < v[1][0]]
    assert len(with_break) > len(per_day) / 2
    assert {starts.date() for _, _, starts, _ in clinic.work_intervals} <= {
        date.fromordinal(START.toordinal() + n) for n in range(40)
    }


def test_appointments_fill_about_sixty_percent(clinic):
    work = sum((e - s).total_seconds() for _, _, s, e in clinic.work_intervals)
    booked = sum(
        (row[4] - row[3]).total_seconds() for row in clinic.appointments if row[5] != "cancelled"
    )
    assert 0.5 < booked / work < 0.7
    cancelled = [row for row in clinic.appointments if row[5] == "cancelled"]
    assert 0.03 < len(cancelled) / len(clinic.appointments) < 0.15
    assert all(row[7] <= NOW for row in clinic.appointments)


def test_appointments_never_overlap_and_stay_inside_shifts(clinic):
    shifts: dict[str, list] = {}
    for doctor_id, branch_id, starts, ends in clinic.work_intervals:
        shifts.setdefault(doctor_id, []).append((branch_id, starts, ends))
    last_end: dict[str, datetime] = {}
    for _, doctor_id, branch_id, starts, ends, *_ in sorted(
        clinic.appointments, key=lambda r: (r[1], r[3])
    ):
        assert any(b == branch_id and s <= starts and ends <= e for b, s, e in shifts[doctor_id])
        assert last_end.get(doctor_id, starts) <= starts
        last_end[doctor_id] = ends


def test_load_keeps_existing_data_unless_replaced(clinic_conn, clinic):
    assert demo.load(clinic_conn, clinic) is True
    assert demo.load(clinic_conn, demo.generate(5, 3, start=START, now=NOW)) is False
    counts = clinic_conn.execute(
        "select (select count(*) from clinic.doctors), (select count(*) from clinic.appointments)"
    ).fetchone()
    assert counts == (30, len(clinic.appointments))
    assert demo.load(clinic_conn, demo.generate(5, 3, start=START, now=NOW), replace=True)
    assert clinic_conn.execute("select count(*) from clinic.doctors").fetchone()[0] == 5


def test_large_network_for_benchmarks():
    big = demo.generate(300, 5, start=START, now=NOW)
    assert len(big.doctors) == 300
    assert len(big.branches) == 10
    assert len({branch_id for branch_id, *_ in big.branches}) == 10
