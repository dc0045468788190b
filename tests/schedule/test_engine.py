"""Slot engine: edge cases of work time minus busy time, in branch-local time."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pandas as pd
import pytest

from ident_hooks.schedule.engine import (
    CELL_COLUMNS,
    ExportSettings,
    InvalidExportSettings,
    compute_schedule,
    resolve_settings,
)

TOMORROW = "2026-12-02"


def test_a_free_day_is_cut_into_whole_slots_and_the_remainder_dropped(clinic):
    clinic.work("d1", "b1", f"{TOMORROW} 09:00", f"{TOMORROW} 10:50")
    schedule = clinic.schedule()
    assert clinic.labels(schedule.free) == [
        ("b1", TOMORROW, "09:00-09:30"),
        ("b1", TOMORROW, "09:30-10:00"),
        ("b1", TOMORROW, "10:00-10:30"),
    ]
    assert schedule.busy.empty
    assert set(schedule.free["length_minutes"]) == {30}
    assert list(schedule.free.columns) == list(CELL_COLUMNS)
    first = schedule.free.iloc[0]
    assert first["starts_at"] == clinic.at(f"{TOMORROW} 09:00")
    assert first["utc_offset_minutes"] == 180


def test_overlapping_appointments_and_ones_over_the_shift_edges(clinic):
    clinic.work("d1", "b1", f"{TOMORROW} 09:00", f"{TOMORROW} 13:00")
    clinic.busy("d1", f"{TOMORROW} 08:30", f"{TOMORROW} 09:20")  # over the start
    clinic.busy("d1", f"{TOMORROW} 10:00", f"{TOMORROW} 10:45")
    clinic.busy("d1", f"{TOMORROW} 10:30", f"{TOMORROW} 11:00")  # overlaps the previous one
    clinic.busy("d1", f"{TOMORROW} 12:50", f"{TOMORROW} 13:30")  # over the end
    schedule = clinic.schedule()
    assert clinic.labels(schedule.free) == [
        ("b1", TOMORROW, "09:20-09:50"),  # 09:50-10:00 is too short
        ("b1", TOMORROW, "11:00-11:30"),
        ("b1", TOMORROW, "11:30-12:00"),
        ("b1", TOMORROW, "12:00-12:30"),  # 12:30-12:50 is too short
    ]
    assert clinic.labels(schedule.busy) == [
        ("b1", TOMORROW, "09:00-09:20"),
        ("b1", TOMORROW, "10:00-11:00"),
        ("b1", TOMORROW, "12:50-13:00"),
    ]
    assert list(schedule.busy["length_minutes"]) == [20, 60, 10]


def test_back_to_back_appointments_make_one_busy_stretch(clinic):
    clinic.work("d1", "b1", f"{TOMORROW} 09:00", f"{TOMORROW} 12:00")
    clinic.busy("d1", f"{TOMORROW} 09:30", f"{TOMORROW} 10:00")
    clinic.busy("d1", f"{TOMORROW} 10:00", f"{TOMORROW} 10:15")
    clinic.busy("d1", f"{TOMORROW} 10:15", f"{TOMORROW} 11:00")
    schedule = clinic.schedule()
    assert clinic.labels(schedule.busy) == [("b1", TOMORROW, "09:30-11:00")]
    assert clinic.labels(schedule.free) == [
        ("b1", TOMORROW, "09:00-09:30"),
        ("b1", TOMORROW, "11:00-11:30"),
        ("b1", TOMORROW, "11:30-12:00"),
    ]


def test_busy_time_in_one_branch_blocks_that_time_in_every_branch(clinic):
    clinic.work("d1", "b1", f"{TOMORROW} 09:00", f"{TOMORROW} 11:00")
    clinic.work("d1", "b2", f"{TOMORROW} 12:00", f"{TOMORROW} 14:00")
    # Booked while the doctor is expected in b2 (e.g. entered for b1 by mistake or a home
    # visit): the doctor is busy then, wherever the appointment was registered.
    clinic.busy("d1", f"{TOMORROW} 12:00", f"{TOMORROW} 13:00")
    clinic.busy("d1", f"{TOMORROW} 09:30", f"{TOMORROW} 10:00")
    schedule = clinic.schedule()
    assert clinic.labels(schedule.free) == [
        ("b1", TOMORROW, "09:00-09:30"),
        ("b1", TOMORROW, "10:00-10:30"),
        ("b1", TOMORROW, "10:30-11:00"),
        ("b2", TOMORROW, "13:00-13:30"),
        ("b2", TOMORROW, "13:30-14:00"),
    ]
    assert clinic.labels(schedule.busy) == [
        ("b1", TOMORROW, "09:30-10:00"),
        ("b2", TOMORROW, "12:00-13:00"),
    ]
    assert schedule.assignments.values.tolist() == [["d1", "b1"], ["d1", "b2"]]


def test_a_lunch_gap_is_not_offered_and_the_grid_restarts_after_it(clinic):
    clinic.work("d1", "b1", f"{TOMORROW} 09:00", f"{TOMORROW} 10:00")
    clinic.work("d1", "b1", f"{TOMORROW} 10:45", f"{TOMORROW} 12:00")
    assert clinic.labels(clinic.schedule().free) == [
        ("b1", TOMORROW, "09:00-09:30"),
        ("b1", TOMORROW, "09:30-10:00"),
        ("b1", TOMORROW, "10:45-11:15"),
        ("b1", TOMORROW, "11:15-11:45"),
    ]


def test_touching_work_intervals_form_one_stretch(clinic):
    clinic.work("d1", "b1", f"{TOMORROW} 09:00", f"{TOMORROW} 09:40")
    clinic.work("d1", "b1", f"{TOMORROW} 09:40", f"{TOMORROW} 10:00")
    clinic.rule("d1", slot_minutes=20)
    assert clinic.labels(clinic.schedule().free) == [
        ("b1", TOMORROW, "09:00-09:20"),
        ("b1", TOMORROW, "09:20-09:40"),
        ("b1", TOMORROW, "09:40-10:00"),
    ]


def test_a_branch_in_yekaterinburg_uses_its_own_clock_and_its_own_today(clinic):
    yekt = clinic.YEKT
    # 05:00 UTC is 08:00 in Moscow but 10:00 in Yekaterinburg: the cut-off there is 12:00.
    clinic.work("d1", "ekb", "2026-12-01 09:00", "2026-12-01 14:00", yekt)
    clinic.busy("d1", "2026-12-01 13:00", "2026-12-01 13:30", yekt)
    schedule = clinic.schedule()
    assert clinic.labels(schedule.free) == [
        ("ekb", "2026-12-01", "12:00-12:30"),
        ("ekb", "2026-12-01", "12:30-13:00"),
        ("ekb", "2026-12-01", "13:30-14:00"),
    ]
    assert set(schedule.free["utc_offset_minutes"]) == {300}
    assert set(schedule.free["timezone"]) == {yekt}
    assert schedule.free["starts_at"].iloc[0] == pd.Timestamp("2026-12-01 07:00", tz="UTC")
    # Busy cells start no earlier than now (10:00 local).
    assert clinic.labels(schedule.busy) == [("ekb", "2026-12-01", "13:00-13:30")]


def test_today_is_the_branch_local_date(clinic):
    # 20:30 UTC: still Dec 1 in Moscow (23:30), already Dec 2 in Yekaterinburg (01:30).
    now = dt.datetime(2026, 12, 1, 20, 30, tzinfo=dt.UTC)
    clinic.work("d1", "msk", "2026-12-31 09:00", "2026-12-31 10:00")
    clinic.work("d2", "ekb", "2027-01-01 09:00", "2027-01-01 10:00", clinic.YEKT)
    schedule = clinic.schedule(now=now)  # 30 days: Moscow to Dec 31, Yekaterinburg to Jan 1
    assert clinic.labels(schedule.free) == [
        ("ekb", "2027-01-01", "09:00-09:30"),
        ("ekb", "2027-01-01", "09:30-10:00"),
        ("msk", "2026-12-31", "09:00-09:30"),
        ("msk", "2026-12-31", "09:30-10:00"),
    ]


def test_the_cut_off_counts_from_now_and_keeps_the_slot_grid(clinic):
    clinic.work("d1", "b1", "2026-12-01 07:00", "2026-12-01 12:00")
    clinic.busy("d1", "2026-12-01 07:00", "2026-12-01 09:00")
    now = clinic.at("2026-12-01 08:10")
    schedule = clinic.schedule(now=now)
    # Cut-off 10:10; the grid runs from 09:00 (end of the busy stretch), so 10:30 is first.
    assert clinic.labels(schedule.free) == [
        ("b1", "2026-12-01", "10:30-11:00"),
        ("b1", "2026-12-01", "11:00-11:30"),
        ("b1", "2026-12-01", "11:30-12:00"),
    ]
    # The past is not published: the busy cell starts at now.
    assert clinic.labels(schedule.busy) == [("b1", "2026-12-01", "08:10-09:00")]
    fractional = clinic.schedule(settings={"skip_hours_today": Decimal("0.5")}, now=now)
    assert clinic.labels(fractional.free)[0] == ("b1", "2026-12-01", "09:00-09:30")


def test_busy_cells_clipped_at_now_span_whole_minutes(clinic):
    # Found by the ПроДокторов simulator on the demo: an appointment running at 10:39:07
    # became a busy cell 10:39-10:39, which no aggregator accepts.
    today = "2026-12-01"
    clinic.work("d1", "b1", f"{today} 08:00", f"{today} 12:00")
    clinic.busy("d1", f"{today} 10:30", f"{today} 10:40")
    clinic.busy("d1", f"{today} 11:00", f"{today} 11:00:20")
    now = clinic.at(f"{today} 10:39:07").to_pydatetime()
    schedule = clinic.schedule(now=now)
    assert clinic.labels(schedule.busy) == [
        ("b1", today, "10:39-10:40"),
        ("b1", today, "11:00-11:01"),
    ]
    assert (schedule.busy["length_minutes"] >= 1).all()
    assert (schedule.busy["starts_at"] <= pd.Timestamp(now)).any()


def test_the_cut_off_applies_to_today_only(clinic):
    clinic.work("d1", "b1", "2026-12-01 22:00", "2026-12-02 02:00")
    schedule = clinic.schedule(now=clinic.at("2026-12-01 23:00"))
    # now + 2 h is 01:00 tomorrow, but tomorrow's slots are not cut.
    assert clinic.labels(schedule.free) == [
        ("b1", "2026-12-02", "00:00-00:30"),
        ("b1", "2026-12-02", "00:30-01:00"),
        ("b1", "2026-12-02", "01:00-01:30"),
        ("b1", "2026-12-02", "01:30-02:00"),
    ]


def test_a_night_shift_is_split_at_local_midnight(clinic):
    clinic.work("d1", "b1", f"{TOMORROW} 23:00", "2026-12-03 01:00")
    clinic.rule("d1", slot_minutes=40)
    assert clinic.labels(clinic.schedule().free) == [
        ("b1", TOMORROW, "23:00-23:40"),  # 23:40-24:00 is too short
        ("b1", "2026-12-03", "00:00-00:40"),
    ]
    clinic.rule_rows.clear()
    # With 30-minute slots 23:30-24:00 would end at midnight, which HH:MM cannot say.
    assert clinic.labels(clinic.schedule().free)[:2] == [
        ("b1", TOMORROW, "23:00-23:30"),
        ("b1", "2026-12-03", "00:00-00:30"),
    ]


def test_the_horizon_ends_with_its_last_local_day(clinic):
    for day in ("2026-12-03", "2026-12-04"):
        clinic.work("d1", "b1", f"{day} 09:00", f"{day} 10:00")
    clinic.work("d1", "b1", "2026-12-03 23:00", "2026-12-04 01:00")
    schedule = clinic.schedule(settings={"days_ahead": 2})
    assert {date for _, date, _ in clinic.labels(schedule.free)} == {"2026-12-03"}
    assert clinic.labels(schedule.free)[-1] == ("b1", "2026-12-03", "23:00-23:30")
    # НаПоправку always looks 32 days ahead, whatever the row says.
    clinic.work("d1", "b1", "2027-01-02 09:00", "2027-01-02 09:30")
    clinic.work("d1", "b1", "2027-01-03 09:00", "2027-01-03 09:30")
    dates = set(clinic.schedule("napopravku", {"days_ahead": 2}).free["local_date"])
    assert "2027-01-02" in dates and "2027-01-03" not in dates


def test_cancelled_appointments_are_left_out_by_the_caller(clinic):
    clinic.work("d1", "b1", f"{TOMORROW} 09:00", f"{TOMORROW} 10:00")
    appointments = pd.DataFrame(
        {
            "doctor_id": ["d1", "d1"],
            "starts_at": [clinic.at(f"{TOMORROW} 09:00"), clinic.at(f"{TOMORROW} 09:30")],
            "ends_at": [clinic.at(f"{TOMORROW} 09:30"), clinic.at(f"{TOMORROW} 10:00")],
            "status": ["cancelled", "scheduled"],
        }
    )
    work, _, doctors, rules = clinic.frames()
    busy = appointments.loc[
        appointments["status"] != "cancelled", ["doctor_id", "starts_at", "ends_at"]
    ]
    schedule = compute_schedule(
        work, busy, doctors, rules, resolve_settings("prodoctorov", None), clinic.NOW
    )
    assert clinic.labels(schedule.free) == [("b1", TOMORROW, "09:00-09:30")]
    assert clinic.labels(schedule.busy) == [("b1", TOMORROW, "09:30-10:00")]


def test_lead_holds_are_busy_time_like_appointments(clinic):
    clinic.work("d1", "b1", f"{TOMORROW} 09:00", f"{TOMORROW} 10:00")
    clinic.busy("d1", f"{TOMORROW} 09:30", f"{TOMORROW} 10:00")  # an open lead for 09:30
    assert clinic.labels(clinic.schedule().free) == [("b1", TOMORROW, "09:00-09:30")]


def test_rules_exclude_doctors_and_override_the_slot_length(clinic):
    for doctor in ("d1", "d2", "d3", "d4"):
        clinic.work(doctor, "b1", f"{TOMORROW} 09:00", f"{TOMORROW} 10:00")
    clinic.doctor("d3", active=False)
    clinic.rule("d1", publish=False).rule("d2", slot_minutes=20)
    schedule = clinic.schedule()
    assert sorted(set(schedule.free["doctor_id"])) == ["d2", "d4"]
    assert clinic.labels(schedule.free, "d2") == [
        ("b1", TOMORROW, "09:00-09:20"),
        ("b1", TOMORROW, "09:20-09:40"),
        ("b1", TOMORROW, "09:40-10:00"),
    ]
    assert dict(
        zip(schedule.doctors["doctor_id"], schedule.doctors["slot_minutes"], strict=True)
    ) == {
        "d2": 20,
        "d4": 30,
    }


def test_a_fully_booked_doctor_is_still_assigned_to_the_branch(clinic):
    clinic.work("d1", "b1", f"{TOMORROW} 09:00", f"{TOMORROW} 10:00")
    clinic.busy("d1", f"{TOMORROW} 08:00", f"{TOMORROW} 11:00")
    schedule = clinic.schedule()
    assert schedule.free.empty
    assert clinic.labels(schedule.busy) == [("b1", TOMORROW, "09:00-10:00")]
    assert schedule.assignments.values.tolist() == [["d1", "b1"]]


def test_no_input_gives_empty_frames_with_the_contract_columns(clinic):
    schedule = clinic.schedule()
    assert schedule.free.empty and schedule.busy.empty and schedule.assignments.empty
    assert list(schedule.cells.columns) == list(CELL_COLUMNS)


def test_a_bad_rule_is_refused_with_the_doctor_named(clinic):
    clinic.work("d1", "b1", f"{TOMORROW} 09:00", f"{TOMORROW} 10:00")
    clinic.rule("d1", slot_minutes=0)
    with pytest.raises(InvalidExportSettings, match="slot_minutes = 0 for doctor d1"):
        clinic.schedule()


def test_naive_timestamps_are_refused(clinic):
    clinic.work("d1", "b1", f"{TOMORROW} 09:00", f"{TOMORROW} 10:00")
    work, busy, doctors, rules = clinic.frames()
    settings = resolve_settings("prodoctorov", None)
    with pytest.raises(ValueError, match="now must be time-zone aware"):
        compute_schedule(work, busy, doctors, rules, settings, dt.datetime(2026, 12, 1))
    naive = work.assign(starts_at=work["starts_at"].dt.tz_localize(None))
    with pytest.raises(ValueError, match="work.starts_at must hold time-zone-aware"):
        compute_schedule(naive, busy, doctors, rules, settings, clinic.NOW)


def test_settings_take_defaults_and_a_fixed_horizon_wins():
    assert resolve_settings("prodoctorov", None) == ExportSettings("prodoctorov", 30, 2, 30, True)
    row = {"days_ahead": 14, "skip_hours_today": None, "slot_minutes": 15, "enabled": False}
    assert resolve_settings("32top", row) == ExportSettings("32top", 14, 2, 15, False)
    assert resolve_settings("napopravku", {"days_ahead": 5}, fixed_days_ahead=32).days_ahead == 32
    assert (
        resolve_settings("sberzdorovie", {"skip_hours_today": Decimal("1.5")}).skip_hours_today
        == 1.5
    )


@pytest.mark.parametrize(
    ("aggregator", "row", "named"),
    [
        ("prodoctorov", {"days_ahead": -1}, "days_ahead"),
        ("prodoctorov", {"slot_minutes": 0}, "slot_minutes"),
        ("napopravku", {"slot_minutes": -30}, "slot_minutes"),
        ("32top", {"slot_minutes": 12.5}, "slot_minutes"),
        ("32top", {"skip_hours_today": -2}, "skip_hours_today"),
        ("prodoctorov", {"days_ahead": True}, "days_ahead"),
        ("prodoctorov", {"enabled": "yes"}, "enabled"),
    ],
)
def test_settings_that_make_no_sense_are_refused(aggregator, row, named):
    with pytest.raises(InvalidExportSettings, match=named):
        resolve_settings(aggregator, row)
    assert issubclass(InvalidExportSettings, ValueError)


def test_napopravku_horizon_never_passes_the_services_date_east_of_it(clinic):
    """23:58 Moscow is 01:58 the next day in Yekaterinburg: by the service's own (UTC) date
    today + 32 is still a day earlier there, and a later date would be refused (422)."""
    now = dt.datetime(2026, 12, 1, 20, 58, tzinfo=dt.UTC)  # 23:58 MSK, 01:58 YEKT on Dec 2
    for day in ("2027-01-02", "2027-01-03"):
        clinic.work("d1", "ekb", f"{day} 09:00", f"{day} 10:00", clinic.YEKT)
        clinic.work("d2", "b1", f"{day} 09:00", f"{day} 10:00")
    napopravku = clinic.schedule("napopravku", now=now)
    assert set(napopravku.free["local_date"]) == {"2027-01-02"}
    # Others count the horizon by each branch's own date: 30 days from Dec 2 in Yekaterinburg.
    clinic.work("d1", "ekb", "2027-01-01 09:00", "2027-01-01 10:00", clinic.YEKT)
    clinic.work("d2", "b1", "2027-01-01 09:00", "2027-01-01 10:00")
    prodoctorov = clinic.schedule("prodoctorov", {"days_ahead": 30}, now=now)
    published = set(
        zip(
            prodoctorov.free["branch_id"].astype(str),
            prodoctorov.free["local_date"].astype(str),
            strict=True,
        )
    )
    assert ("ekb", "2027-01-01") in published and ("b1", "2027-01-01") not in published
