"""The lead cursor: which period a run asks for, and how the cursor may move."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ident_hooks.leads.cursor import BadCursor, advanced, parse_cursor, period_start

MSK = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=MSK)


def test_no_cursor_starts_initial_days_back_at_midnight():
    assert period_start(None, NOW, MSK, 7) == datetime(2026, 11, 19, tzinfo=MSK)
    assert period_start(None, NOW, MSK, 0) == datetime(2026, 11, 26, tzinfo=MSK)


def test_period_starts_at_midnight_of_the_newest_leads_day():
    cursor = datetime(2026, 11, 25, 17, 30, tzinfo=MSK)
    assert period_start(cursor, NOW, MSK, 7) == datetime(2026, 11, 25, tzinfo=MSK)


def test_midnight_is_clinic_time_whatever_the_cursors_offset():
    cursor = datetime(2026, 11, 25, 22, 30, tzinfo=UTC)  # 01:30 on the 26th in Moscow
    assert period_start(cursor, NOW, MSK, 7) == datetime(2026, 11, 25, 23, 30, tzinfo=MSK)


def test_just_after_midnight_the_late_leads_of_yesterday_evening_are_asked_for_again():
    cursor = datetime(2026, 11, 26, 0, 1, tzinfo=MSK)
    assert period_start(cursor, NOW, MSK, 7) == datetime(2026, 11, 25, 22, 1, tzinfo=MSK)


def test_a_cursor_in_the_future_counts_as_now():
    cursor = NOW + timedelta(days=3)
    assert period_start(cursor, NOW, MSK, 7) == datetime(2026, 11, 26, tzinfo=MSK)


def test_the_cursor_never_moves_backwards_nor_past_now():
    cursor = datetime(2026, 11, 26, 10, 0, tzinfo=MSK)
    assert advanced(cursor, cursor - timedelta(hours=1), NOW) == cursor
    assert advanced(cursor, cursor + timedelta(minutes=5), NOW) == cursor + timedelta(minutes=5)
    assert advanced(cursor, NOW + timedelta(hours=5), NOW) == NOW
    assert advanced(None, None, NOW) is None
    assert advanced(cursor, None, NOW) == cursor


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("2026-11-20T14:05:00+03:00", datetime(2026, 11, 20, 14, 5, tzinfo=MSK)),
        ('"2026-11-20T14:05:00+03:00"', datetime(2026, 11, 20, 14, 5, tzinfo=MSK)),
    ],
)
def test_cursor_values_a_person_may_type(value, expected):
    assert parse_cursor(value) == expected


@pytest.mark.parametrize("value", ["вчера", "2026-11-20 14:05", "2026-13-01T00:00:00+03:00"])
def test_a_cursor_that_cannot_work_is_refused_with_an_example(value):
    with pytest.raises(BadCursor, match="ISO 8601|offset"):
        parse_cursor(value)
