"""The byte budget of a change-driven aggregator instance (issue 17).

Publishing on every change sends far more than the service ever got from IDENT's own
10-minute polling when the clinic changes often: a snapshot protocol (IDENT
``PostTimeTable``) resends the whole timetable — 43 MB at 2,000 doctors — on each change.
So each change-driven instance has a budget of bytes per hour. By default it is what
polling every ``interval_minutes`` puts on the wire: the whole payload, uncompressed, as
IDENT sends it, once an interval. Every send counts at its size on the wire, so with
``gzip`` a change costs what its compressed body costs.

The budget is a token bucket in its "virtual scheduling" form (GCRA, as ATM cell rate
policing and many rate limiters keep it): one instant per instance, ``spent_until``, the
moment the bucket would be full again had nothing more been sent. A send of ``b`` bytes
moves it on by ``b / rate``. A send that the budget governs goes when
``spent_until + b / rate - burst <= now``, so any window of ``T`` carries at most
``rate * (T + burst)``. The rate is ``per_hour * interval / (interval + burst)``: then no
window of one interval or longer — an hour, or the 20 minutes a benchmark measures —
carries more than the budget's share of it. The burst (a fifth of the interval) lets a
quiet clinic's change go at once; under a steady stream of changes sends are spaced
evenly rather than spent in one go and then starved for most of an hour. A single send
larger than the burst (an uncompressed snapshot) waits until the bucket is full.

What the service's own rules demand (the daily snapshot, НаПоправку's slots every 10
minutes) goes regardless and is counted, so changes then wait longer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

BURST_SHARE_OF_INTERVAL = 0.2


@dataclass(frozen=True)
class ByteBudget:
    per_hour: int
    interval: timedelta

    @property
    def burst(self) -> timedelta:
        return self.interval * BURST_SHARE_OF_INTERVAL

    @classmethod
    def for_instance(
        cls, configured_per_hour: int | None, interval: timedelta, payload_bytes: int
    ) -> ByteBudget:
        """The instance's budget: ``configured_per_hour``, else what polling every
        ``interval`` sends when each tick carries the whole ``payload_bytes``."""
        per_hour = configured_per_hour or round(payload_bytes * timedelta(hours=1) / interval)
        return cls(max(per_hour, 1), interval)

    @property
    def bytes_per_second(self) -> float:
        share = self.interval / (self.interval + self.burst)
        return self.per_hour * share / timedelta(hours=1).total_seconds()

    def _cost(self, size: int) -> timedelta:
        return timedelta(seconds=size / self.bytes_per_second)

    def spend(self, spent_until: datetime | None, now: datetime, size: int) -> datetime:
        """``spent_until`` after sending ``size`` bytes at ``now``."""
        start = now if spent_until is None or spent_until < now else spent_until
        return start + self._cost(size)

    def earliest(self, spent_until: datetime | None, now: datetime, size: int) -> datetime:
        """The first moment, ``now`` or later, at which ``size`` bytes may go."""
        if spent_until is None or size == 0:
            return now
        cost = self._cost(size)
        ready = spent_until + cost - self.burst if cost <= self.burst else spent_until
        return max(ready, now)


def load_spent_until(conn: psycopg.Connection, aggregator: str) -> datetime | None:
    row = conn.execute(
        "select spent_until from integration.publish_budget where aggregator = %s",
        (aggregator,),
    ).fetchone()
    return row[0] if row else None


def save_spent_until(conn: psycopg.Connection, aggregator: str, spent_until: datetime) -> None:
    """The caller commits (with the record of the send it accounts for)."""
    conn.execute(
        "insert into integration.publish_budget (aggregator, spent_until) values (%s, %s)"
        " on conflict (aggregator) do update set spent_until = excluded.spent_until",
        (aggregator, spent_until),
    )
