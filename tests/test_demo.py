"""The demo clinic: deterministic, realistic, and loadable into the contract tables."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ident_dev import demo
from ident_hooks.config import load_config
from ident_hooks.leads.normalise import normalise_phone
from ident_hooks.reports.build import build_reports
from ident_hooks.reports.channels import classify
from ident_hooks.reports.weekly import read_weekly_charts

NOW = datetime(2026, 11, 26, 6, 0, tzinfo=ZoneInfo("UTC"))
START = date(2026, 11, 26)
MOSCOW = ZoneInfo("Europe/Moscow")
COLUMN = {name: index for index, name in enumerate(demo.LEAD_COLUMNS)}


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


def _assert_inside_shifts_without_overlap(work_intervals, appointments):
    shifts: dict[str, list] = {}
    for doctor_id, branch_id, starts, ends in work_intervals:
        shifts.setdefault(doctor_id, []).append((branch_id, starts, ends))
    last_end: dict[str, datetime] = {}
    for _, doctor_id, branch_id, starts, ends, *_ in sorted(
        appointments, key=lambda r: (r[1], r[3])
    ):
        assert any(b == branch_id and s <= starts and ends <= e for b, s, e in shifts[doctor_id])
        assert last_end.get(doctor_id, starts) <= starts
        last_end[doctor_id] = ends


def test_appointments_never_overlap_and_stay_inside_shifts(clinic):
    _assert_inside_shifts_without_overlap(clinic.work_intervals, clinic.appointments)


@pytest.fixture
def leads_conn(clinic_conn):
    """The clinic database with no leads before and after (others count theirs)."""
    clinic_conn.execute("truncate integration.leads, report_build.lead_changes cascade")
    clinic_conn.commit()
    yield clinic_conn
    clinic_conn.rollback()
    clinic_conn.execute("truncate integration.leads, report_build.lead_changes cascade")
    clinic_conn.commit()


def _counts(conn) -> tuple:
    row = conn.execute(
        "select (select count(*) from clinic.doctors), (select count(*) from clinic.appointments),"
        " (select count(*) from integration.leads)"
    ).fetchone()
    conn.commit()
    return row


def test_load_keeps_existing_data_unless_replaced(leads_conn, clinic):
    conn = leads_conn
    assert demo.load(conn, clinic) is True
    assert demo.load(conn, demo.generate(5, 3, start=START, now=NOW)) is False
    appointments = len(clinic.appointments) + len(clinic.past_appointments)
    assert _counts(conn) == (30, appointments, len(clinic.leads))

    # A lead pulled from a source survives a reload; the demo's own leads are replaced.
    conn.execute(
        "insert into integration.leads (source, external_id, created_at, raw)"
        " values ('uis', '5000001', %s, '{}')",
        (NOW,),
    )
    conn.commit()
    small = demo.generate(5, 3, start=START, now=NOW + timedelta(days=1))
    assert demo.load(conn, small, replace=True)
    small_appointments = len(small.appointments) + len(small.past_appointments)
    assert _counts(conn) == (5, small_appointments, len(small.leads) + 1)
    newest = conn.execute(
        "select max(created_at) from integration.leads where external_id like 'demo-%'"
    ).fetchone()[0]
    assert NOW + timedelta(days=1) - timedelta(minutes=10) < newest <= NOW + timedelta(days=1)
    conn.commit()


def test_large_network_for_benchmarks():
    big = demo.generate(300, 5, start=START, now=NOW, history_weeks=0)
    assert len(big.doctors) == 300
    assert len(big.branches) == 10
    assert len({branch_id for branch_id, *_ in big.branches}) == 10
    assert not (big.past_work_intervals or big.past_appointments or big.leads)


# -- the past: 12 weeks of leads, answers and visits ---------------------------------------
def _leads(clinic) -> list[dict]:
    return [dict(zip(demo.LEAD_COLUMNS, row, strict=True)) for row in clinic.leads]


def test_the_history_leaves_the_schedule_as_it_was(clinic):
    plain = demo.generate(30, 40, start=START, now=NOW, history_weeks=0)
    assert not plain.leads and not plain.past_appointments
    assert (plain.branches, plain.doctors) == (clinic.branches, clinic.doctors)
    assert plain.work_intervals == clinic.work_intervals
    # The same slots; a few (booked by recent leads) got the lead's phone and booking time.
    assert [row[:6] for row in plain.appointments] == [row[:6] for row in clinic.appointments]
    lead_phones = {lead["phone_e164"] for lead in _leads(clinic)}
    changed = [
        new for old, new in zip(plain.appointments, clinic.appointments, strict=True) if old != new
    ]
    assert 0 < len(changed) < len(clinic.appointments) / 100
    assert all(normalise_phone(row[6]) in lead_phones for row in changed)


def test_past_shifts_and_visits_fill_the_twelve_weeks_before(clinic):
    days = {starts.date() for _, _, starts, _ in clinic.past_work_intervals}
    assert min(days) == START - timedelta(weeks=12) and max(days) == START - timedelta(days=1)
    _assert_inside_shifts_without_overlap(
        clinic.past_work_intervals + clinic.work_intervals,
        clinic.past_appointments + clinic.appointments,
    )
    work = sum((e - s).total_seconds() for _, _, s, e in clinic.past_work_intervals)
    statuses = Counter(row[5] for row in clinic.past_appointments)
    assert set(statuses) == {"completed", "cancelled"}
    booked = sum(
        (row[4] - row[3]).total_seconds()
        for row in clinic.past_appointments
        if row[5] != "cancelled"
    )
    assert 0.5 < booked / work < 0.7
    assert all(row[7] < row[3] and row[7] <= NOW for row in clinic.past_appointments)


def test_leads_come_from_every_source_through_many_channels(clinic):
    leads = _leads(clinic)
    assert 900 < len(leads) < 1300
    configured = {source.name for source in load_config().lead_sources}
    sources = Counter(lead["source"] for lead in leads)
    assert set(sources) == configured and min(sources.values()) > 30
    assert len({lead["external_id"] for lead in leads}) == len(leads)
    channels = Counter(
        classify(lead["source"], lead["utm_source"], lead["utm_medium"], lead["referrer_host"])
        for lead in leads
    )
    assert {"paid", "organic", "aggregator", "social", "email", "referral", "direct"} <= set(
        channels
    )
    assert channels["paid"] == max(channels.values())
    campaigns = {lead["utm_campaign"] for lead in leads} - {None}
    assert 4 <= len(campaigns) <= 10
    for lead in leads:
        assert normalise_phone(lead["phone_raw"]) == lead["phone_e164"]
        assert lead["raw"]["demo"] is True
        if lead["utm_campaign"] and lead["landing_url"]:
            assert f"utm_campaign={lead['utm_campaign']}" in lead["landing_url"]
    doctors = {doctor_id for doctor_id, *_ in clinic.doctors}
    asked = [lead for lead in leads if lead["doctor_id"]]
    assert 0.1 < len(asked) / len(leads) < 0.5 and {lead["doctor_id"] for lead in asked} <= doctors
    booked = [lead for lead in leads if lead["source"] in ("napopravku", "32top")]
    assert all(lead["doctor_id"] and lead["requested_start"] for lead in booked)
    names = [lead["name"] for lead in leads if lead["name"]]
    assert len(names) > len(leads) / 2 and any(" " in name for name in names)
    phones = Counter(lead["phone_e164"] for lead in leads if lead["phone_e164"])
    assert 0.03 < sum(n - 1 for n in phones.values()) / len(leads) < 0.2  # repeat patients


def test_the_front_desk_answered_most_within_five_minutes_and_closed_all(clinic):
    leads = _leads(clinic)
    weeks = {(NOW - lead["created_at"]).days // 7 for lead in leads}
    assert weeks == set(range(12))
    for lead in leads:
        assert lead["created_at"] <= lead["loaded_at"] <= NOW
        if lead["taken_at"]:
            assert lead["loaded_at"] <= lead["taken_at"] <= NOW and lead["taken_by"]
        if lead["closed_at"]:
            assert lead["taken_at"] <= lead["closed_at"] <= NOW and lead["closed_by"]
        assert (lead["source"] == "napopravku") == lead["ack_required"]
        assert not lead["ack_required"] or lead["loaded_at"] < lead["acknowledged_at"] <= NOW
    open_leads = [lead for lead in leads if lead["status"] in ("new", "in_progress")]
    assert sorted(lead["status"] for lead in open_leads) == ["in_progress", "new"]
    assert all(NOW - lead["created_at"] < timedelta(minutes=10) for lead in open_leads)
    assert all(lead["requested_start"] is None for lead in open_leads)  # holds no slot
    statuses = Counter(lead["status"] for lead in leads)
    assert 0.02 < statuses["spam"] / len(leads) < 0.08
    answered = [
        (lead["taken_at"] - lead["created_at"]).total_seconds()
        for lead in leads
        if lead["status"] == "done"
    ]
    within = sum(seconds <= 300 for seconds in answered) / len(answered)
    assert 0.55 < within < 0.8
    assert sum(seconds > 3600 for seconds in answered) > 20  # night leads, slow days


def test_a_share_of_the_leads_became_visits(clinic):
    leads = _leads(clinic)
    visits: dict[str, list] = {}
    for row in clinic.past_appointments + clinic.appointments:
        if row[5] != "cancelled":
            visits.setdefault(normalise_phone(row[6]), []).append(row)
    converted = [
        lead
        for lead in leads
        if lead["status"] == "done"
        and any(
            lead["created_at"] < row[7] <= lead["created_at"] + timedelta(days=30)
            and lead["taken_at"] <= row[7] <= lead["closed_at"]
            for row in visits.get(lead["phone_e164"], [])
        )
    ]
    assert 0.2 < len(converted) / len(leads) < 0.5
    assert all(lead["close_comment"] in demo.CLOSED_AS_VISIT for lead in converted)
    # Most visits are already past; those of the last days may lie ahead.
    booked = {
        row[0]
        for lead in converted
        for row in visits[lead["phone_e164"]]
        if lead["taken_at"] <= row[7] <= lead["closed_at"]
    }
    past = {row[0] for row in clinic.past_appointments}
    assert len(booked & past) > 0.8 * len(booked)


def test_the_report_page_has_twelve_weeks_to_show(leads_conn):
    conn = leads_conn
    clinic = demo.generate(now=NOW)
    assert demo.load(conn, clinic) is True
    assert conn.execute("select count(*) from integration.leads").fetchone()[0] == len(clinic.leads)
    inbox = conn.execute("select status from integration.open_leads").fetchall()
    assert sorted(status for (status,) in inbox) == ["in_progress", "new"]
    conn.commit()

    summary = build_reports(conn, clinic_timezone="Europe/Moscow", now=NOW, full=True)
    assert summary.leads_recomputed == len(clinic.leads)
    charts = read_weekly_charts(conn, today=NOW.astimezone(MOSCOW).date())
    assert len(charts.weeks) == 12
    per_week = [sum(series[n] for series in charts.leads_by_channel.values()) for n in range(12)]
    assert all(leads > 20 for leads in per_week), per_week
    assert len(charts.leads_by_channel) >= 6
    shares = [share for share in charts.answered_in_5_min_share if share is not None]
    assert len(shares) >= 11 and all(0 < share < 1 for share in shares), shares
    rates = [c.conversion_rate for c in charts.conversion_by_campaign]
    # Most campaigns convert some of their leads (a small one may, by chance, convert none).
    assert sum(1 for rate in rates if rate and 0 < rate < 1) >= max(4, len(rates) - 1), rates
    converted, leads = conn.execute(
        "select sum(converted_leads), sum(leads) from report.leads_daily"
    ).fetchone()
    assert 0.2 < converted / leads < 0.5
    past_demand = conn.execute(
        "select count(*) from report.doctor_demand where week < %s and free_slots > 0",
        (charts.weeks[-1],),
    ).fetchone()[0]
    assert past_demand > 0  # the past weeks have shifts, so free slots were counted
    conn.commit()


def test_the_demos_patients_make_every_grade_families_and_returning_patients(leads_conn):
    conn = leads_conn
    clinic = demo.generate(10, 10, start=START, now=NOW)
    assert demo.load(conn, clinic, replace=True)

    grades = dict(
        conn.execute(
            "select grade, count(distinct lead_id) from integration.lead_patient_matches"
            " group by grade"
        ).fetchall()
    )
    assert set(grades) == {"certain", "probable", "possible"}
    unmatched = conn.execute(
        "select count(*) from integration.leads l where not exists"
        " (select 1 from integration.lead_patient_matches m where m.lead_id = l.lead_id)"
    ).fetchone()[0]
    assert unmatched > 0  # new patients
    families = conn.execute(
        "select count(*) from (select phone_e164 from integration.patient_phone_index"
        " group by phone_e164 having count(*) = 3) f"
    ).fetchone()[0]
    two_phones = conn.execute(
        "select count(*) from (select patient_id from clinic.patient_phones"
        " group by patient_id having count(*) = 2) p"
    ).fetchone()[0]
    returning = conn.execute(
        "select count(distinct patient_id) from clinic.appointments"
        " where patient_id is not null and status = 'completed'"
    ).fetchone()[0]
    conn.commit()
    assert families > 0 and two_phones > 0 and returning > 0
