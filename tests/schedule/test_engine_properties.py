"""Slot engine against a minute-by-minute reference, on random clinics (hypothesis)."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from ident_hooks.schedule.aggregators import publisher
from ident_hooks.schedule.engine import compute_schedule, resolve_settings

ZONES = {"msk": "Europe/Moscow", "ekb": "Asia/Yekaterinburg"}
UTC_OFFSET_MINUTES = {"msk": 180, "ekb": 300}  # neither zone has DST
DOCTORS = ("d1", "d2")
BASE = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
SPAN_MINUTES = 4 * 24 * 60
BRANCHES = pd.DataFrame(
    {"branch_id": list(ZONES), "name": ["Москва", "Екатеринбург"], "address": ["", ""]}
)


def minute(value: int) -> pd.Timestamp:
    return pd.Timestamp(BASE + dt.timedelta(minutes=value))


def spans(max_size: int):
    return st.lists(
        st.tuples(
            st.sampled_from(DOCTORS),
            st.integers(0, SPAN_MINUTES),
            st.integers(1, 16 * 60),
        ),
        max_size=max_size,
    )


@st.composite
def clinics(draw):
    work = []
    for doctor, start, length in draw(spans(6)):
        branch = draw(st.sampled_from(sorted(ZONES)))
        end = start + length
        if draw(st.booleans()):  # a shift from a whole hour to the local midnight
            start -= start % 60
            end = start + 24 * 60 - (start + UTC_OFFSET_MINUTES[branch]) % (24 * 60)
        work.append((doctor, branch, start, min(end, SPAN_MINUTES + 24 * 60)))
    busy = [(doctor, start, start + length // 4 + 1) for doctor, start, length in draw(spans(12))]
    row = {
        "days_ahead": draw(st.integers(0, 3)),
        "skip_hours_today": draw(st.sampled_from([0, 1, 2, 1.5, 24])),
        "slot_minutes": draw(st.sampled_from([5, 15, 20, 30, 45, 60])),
    }
    now = draw(st.integers(0, 2 * 24 * 60))
    excluded = draw(st.sampled_from([(), ("d2",)]))
    return work, busy, row, now, excluded


def reference(work, busy, row, now_minute, excluded):
    """Free slots the rules ask for, found minute by minute: {(doctor, branch, start, end)}."""
    now = BASE + dt.timedelta(minutes=now_minute)
    slot = row["slot_minutes"]
    expected = set()
    for doctor in DOCTORS:
        if doctor in excluded:
            continue
        busy_minutes = {m for d, s, e in busy if d == doctor for m in range(s, e)}
        for branch, zone_name in ZONES.items():
            working = {m for d, b, s, e in work if (d, b) == (doctor, branch) for m in range(s, e)}
            zone = ZoneInfo(zone_name)
            today = now.astimezone(zone).date()
            for day in range(row["days_ahead"] + 1):
                local_midnight = dt.datetime.combine(
                    today + dt.timedelta(days=day), dt.time(), zone
                )
                day_start = int((local_midnight - BASE).total_seconds() // 60)
                day_end = day_start + 24 * 60  # neither zone has DST
                cut_off = day_start
                if day == 0:
                    cut_off = min(now_minute + round(row["skip_hours_today"] * 60), day_end)
                run_start = None
                for m in range(day_start, day_end + 1):
                    free = day_start <= m < day_end and m in working and m not in busy_minutes
                    if free and run_start is None:
                        run_start = m
                    elif not free and run_start is not None:
                        for start in range(run_start, m - slot + 1, slot):
                            # A slot ending at the local midnight is not offered.
                            if start >= cut_off and start + slot != day_end:
                                expected.add((doctor, branch, start, start + slot))
                        run_start = None
    return expected


def as_frames(work, busy, excluded):
    work_frame = pd.DataFrame(
        {
            "doctor_id": [w[0] for w in work],
            "branch_id": [w[1] for w in work],
            "starts_at": pd.to_datetime([minute(w[2]) for w in work], utc=True),
            "ends_at": pd.to_datetime([minute(w[3]) for w in work], utc=True),
            "timezone": [ZONES[w[1]] for w in work],
        }
    )
    busy_frame = pd.DataFrame(
        {
            "doctor_id": [b[0] for b in busy],
            "starts_at": pd.to_datetime([minute(b[1]) for b in busy], utc=True),
            "ends_at": pd.to_datetime([minute(b[2]) for b in busy], utc=True),
        }
    )
    doctors = pd.DataFrame(
        {
            "doctor_id": list(DOCTORS),
            "full_name": ["A", "B"],
            "specialty": ["x", "y"],
            "is_active": [True, True],
        }
    )
    rules = pd.DataFrame(
        {"doctor_id": list(excluded), "publish": [False] * len(excluded), "slot_minutes": None}
    )
    return work_frame, busy_frame, doctors, rules


def minutes_of(column: pd.Series) -> list[int]:
    return [int((t - pd.Timestamp(BASE)).total_seconds() // 60) for t in column]


@settings(max_examples=60, deadline=None)
@given(clinics())
def test_free_slots_are_exactly_what_the_rules_ask_for(clinic):
    work, busy, row, now, excluded = clinic
    schedule = compute_schedule(
        *as_frames(work, busy, excluded),
        resolve_settings("prodoctorov", row),
        BASE + dt.timedelta(minutes=now),
    )
    free = schedule.free
    got = set(
        zip(
            free["doctor_id"].astype(str),
            free["branch_id"].astype(str),
            minutes_of(free["starts_at"]),
            minutes_of(free["ends_at"]),
            strict=True,
        )
    )
    assert len(got) == len(free)  # no duplicates
    assert got == reference(work, busy, row, now, excluded)
    assert (free["length_minutes"] == row["slot_minutes"]).all()


@settings(max_examples=60, deadline=None)
@given(clinics())
def test_busy_cells_are_work_time_taken_by_busy_time_from_now_on(clinic):
    work, busy, row, now, excluded = clinic
    schedule = compute_schedule(
        *as_frames(work, busy, excluded),
        resolve_settings("prodoctorov", row),
        BASE + dt.timedelta(minutes=now),
    )
    cells = schedule.busy
    starts, ends = minutes_of(cells["starts_at"]), minutes_of(cells["ends_at"])
    for doctor, branch, start, end in zip(
        cells["doctor_id"].astype(str), cells["branch_id"].astype(str), starts, ends, strict=True
    ):
        assert now <= start < end
        for m in range(start, end):
            assert any(d == doctor and s <= m < e for d, s, e in busy)
            assert any((d, b) == (doctor, branch) and s <= m < e for d, b, s, e in work)
    # Free slots and busy cells never overlap for a doctor.
    free = schedule.free
    for doctor in DOCTORS:
        taken = [
            (s, e) for d, s, e in zip(cells["doctor_id"], starts, ends, strict=True) if d == doctor
        ]
        for s, e in zip(
            minutes_of(free.loc[free["doctor_id"] == doctor, "starts_at"]),
            minutes_of(free.loc[free["doctor_id"] == doctor, "ends_at"]),
            strict=True,
        ):
            assert all(e <= ts or te <= s for ts, te in taken)


@settings(max_examples=60, deadline=None)
@given(clinics())
def test_nothing_ends_at_midnight_or_at_or_before_its_start(clinic):
    work, busy, row, now, excluded = clinic
    schedule = compute_schedule(
        *as_frames(work, busy, excluded),
        resolve_settings("prodoctorov", row),
        BASE + dt.timedelta(minutes=now),
    )
    cells = schedule.cells
    start, end = cells["local_start"].astype(str), cells["local_end"].astype(str)
    assert (cells["ends_at"] > cells["starts_at"]).all()
    assert (end > start).all() and not end.eq("24:00").any()
    for zone_name, ends in cells.groupby("timezone", observed=True)["ends_at"]:
        local = ends.dt.tz_convert(zone_name)
        assert not ((local.dt.hour == 0) & (local.dt.minute == 0) & (local.dt.second == 0)).any()
    # ... and so in the HH:MM payloads built from them. (НаПоправку's builder raises
    # IndexError on a schedule without any free slot, so it is asked only when there is one.)
    aggregators = ["prodoctorov", "napopravku"] if len(schedule.free) else ["prodoctorov"]
    for aggregator in aggregators:
        for request in publisher(aggregator).build_requests(schedule, BRANCHES):
            assert b"24:00" not in request.body
            for begin, finish in re.findall(
                rb'"(?:time_start|from)":"([^"]+)","(?:time_end|to)":"([^"]+)"', request.body
            ):
                assert begin < finish
