"""Doctors' free slots per week, counted by the schedule engine, for report.doctor_demand.

"Free slots" use the same rule as publishing (``ident_hooks.schedule``) with the export
rules of the aggregator the registry names for it (``sets_demand_rules``: ПроДокторов's) —
its slot length, per-doctor slot lengths and hidden doctors: work time minus
appointments that are not cancelled (any branch) minus the time open leads hold, cut into
slots. Unlike a publishing run it covers whole weeks (Monday to Sunday, each slot in its
branch's local date) with no "not in the next N hours" cut-off, so a past week counts
the slots that stayed free and a coming week the slots free now.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import psycopg

from ident_hooks.config import load_config
from ident_hooks.schedule.engine import compute_schedule, resolve_settings
from ident_hooks.schedule.reader import read_settings, read_snapshot

WEEK = timedelta(days=7)
# Matches no clinic.export_settings or export_rules row: the default rules, for a clinic that
# configures no aggregator of the demand-rules kind.
NO_AGGREGATOR = ""


def demand_aggregator() -> str:
    """The configured aggregator whose export rules count the free slots (the instance of
    the registry's ``sets_demand_rules`` kind), else :data:`NO_AGGREGATOR`."""
    return load_config().demand_aggregator or NO_AGGREGATOR


def monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def weeks_between(first: date, last: date) -> list[date]:
    """The Mondays from ``first``'s week to ``last``'s week, inclusive."""
    first, last = monday(first), monday(last)
    return [first + n * WEEK for n in range((last - first) // WEEK + 1)]


def horizon_weeks(conn: psycopg.Connection, now: datetime, clinic_timezone: str) -> list[date]:
    """Last week, this week and every week the aggregator's export horizon reaches.

    Their free slots change with every booking, so each build recounts them; last week is
    included so that a finished week's count is settled by the first build after it.
    """
    aggregator = demand_aggregator()
    settings = resolve_settings(aggregator, read_settings(conn, aggregator))
    today = now.astimezone(ZoneInfo(clinic_timezone)).date()
    return weeks_between(today - WEEK, today + timedelta(days=settings.days_ahead))


def _runs(weeks: Iterable[date]) -> list[tuple[date, date]]:
    """Consecutive weeks grouped: [w1, w2, w3, w7] -> [(w1, w3), (w7, w7)]."""
    runs: list[tuple[date, date]] = []
    for week in sorted(set(weeks)):
        if runs and week - runs[-1][1] == WEEK:
            runs[-1] = (runs[-1][0], week)
        else:
            runs.append((week, week))
    return runs


def free_slots_by_week(
    conn: psycopg.Connection, weeks: Iterable[date], clinic_timezone: str
) -> list[tuple[date, str, int]]:
    """``(week, doctor_id, free_slots)`` for every doctor with free slots in ``weeks``.

    One engine run per stretch of consecutive weeks. Starts a day early so that every
    branch's local Monday is inside the engine's horizon, then keeps the asked weeks.
    """
    aggregator = demand_aggregator()
    settings_row = read_settings(conn, aggregator)
    rules = resolve_settings(aggregator, settings_row)
    zone = ZoneInfo(clinic_timezone)
    rows: list[tuple[date, str, int]] = []
    for first, last in _runs(weeks):
        start = datetime.combine(first - timedelta(days=1), time(), zone)
        days_ahead = (last + WEEK - first).days + 1
        settings = dataclasses.replace(rules, days_ahead=days_ahead, skip_hours_today=0)
        snapshot = read_snapshot(conn, aggregator, settings_row, now=start, days_ahead=days_ahead)
        free = compute_schedule(
            snapshot.work, snapshot.busy, snapshot.doctors, snapshot.rules, settings, start
        ).free
        if free.empty:
            continue
        local_date = pd.to_datetime(free["local_date"].astype(str))
        week = (local_date - pd.to_timedelta(local_date.dt.day_of_week, unit="D")).dt.date
        counts = (
            pd.DataFrame({"week": week, "doctor_id": free["doctor_id"].astype(str)})
            .groupby(["week", "doctor_id"])
            .size()
        )
        rows += [
            (week_start, doctor_id, int(count))
            for (week_start, doctor_id), count in counts.items()
            if first <= week_start <= last
        ]
    return rows
