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
    assert ByteBudget.for_instance(1_000_000, TICK, payload_bytes=610_000).per_hour == 1_000_000


@pytest.mark.parametrize("size", [2_000, 24_000, 150_000, 610_000])
def test_no_hour_carries_more_than_the_budget(size):
    """Changes at random moments, each as large as ``size``, sent as soon as the budget
    allows: every window of an hour stays within it (plus one send larger than the burst,
    which only goes once the budget is fully rested)."""
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
    for index, first in enumerate(sent):
        in_hour = bisect.bisect_left(sent, first + timedelta(hours=1)) - index
        assert in_hour * size <= budget.per_hour + oversize


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
    assert 4 <= burst <= 6  # two minutes' worth at once ...
    gaps = {round(b - a, 3) for a, b in zip(waits[burst:], waits[burst + 1 :], strict=False)}
    assert gaps == {round(small / budget.bytes_per_second, 3)}  # ... then evenly spaced
