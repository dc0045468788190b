"""The byte budget's arithmetic (ident_hooks.schedule.budget), without I/O."""

from __future__ import annotations

import bisect
import random
from datetime import UTC, datetime, timedelta

import pytest

from ident_hooks.schedule.budget import ByteBudget

START = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)
TICK = timedelta(minutes=10)


def test_the_default_is_what_polling_every_interval_sends():
    budget = ByteBudget.for_instance(None, TICK, payload_bytes=610_000)
    assert budget.per_hour == 6 * 610_000 and budget.burst == timedelta(minutes=2)
    # Steady sending stays within the budget's share of any window of an interval or more.
    assert budget.bytes_per_second * (TICK + budget.burst).total_seconds() == pytest.approx(610_000)
    assert ByteBudget.for_instance(1_000_000, TICK, payload_bytes=610_000).per_hour == 1_000_000


@pytest.mark.parametrize("window_minutes", [10, 20, 60])
@pytest.mark.parametrize("size", [2_000, 24_000, 150_000, 610_000])
def test_no_window_carries_more_than_the_budgets_share(size, window_minutes):
    """Changes at random moments, each as large as ``size``, sent as soon as the budget
    allows: every window of an interval or longer stays within its share of the budget
    (plus one send larger than the burst, which only goes once the budget is rested)."""
    budget = ByteBudget.for_instance(None, TICK, payload_bytes=610_000)
    rng, spent_until, sent = random.Random(size), None, []
    moment = START
    for _ in range(3_000):
        moment += timedelta(seconds=rng.expovariate(1 / 20))
        ready = budget.earliest(spent_until, moment, size)
        at = max(ready, moment)
        spent_until = budget.spend(spent_until, at, size)
        sent.append(at)
    oversize = size if size / budget.bytes_per_second > budget.burst.total_seconds() else 0
    window = timedelta(minutes=window_minutes)
    share = budget.per_hour * (window / timedelta(hours=1))
    for index, first in enumerate(sent):
        in_window = bisect.bisect_left(sent, first + window) - index
        assert in_window * size <= share + oversize


def test_a_quiet_instance_sends_at_once_and_a_busy_one_evenly():
    budget = ByteBudget.for_instance(None, TICK, payload_bytes=610_000)
    small = 24_000  # a gzipped 30-doctor timetable
    assert budget.earliest(None, START, small) == START
    spent_until, waits = None, []
    for _ in range(40):  # forty changes in the same second
        ready = budget.earliest(spent_until, START, small)
        waits.append((ready - START).total_seconds())
        spent_until = budget.spend(spent_until, ready, small)
    burst = sum(1 for wait in waits if wait == 0)
    credit = budget.bytes_per_second * budget.burst.total_seconds()
    assert burst == int(credit // small) >= 4  # two minutes' worth at once ...
    gaps = {round(b - a, 3) for a, b in zip(waits[burst:], waits[burst + 1 :], strict=False)}
    assert gaps == {round(small / budget.bytes_per_second, 3)}  # ... then evenly spaced
