"""The lead cursor: which period to ask a source for, and how the cursor moves.

The cursor (Airflow Variable ``leads_cursor_<source>``) holds the source time of the
newest lead loaded from that source, ISO 8601 with offset. Each run asks from 00:00
(clinic time) of that lead's date until now; the overlap is harmless because storing
is idempotent, and it catches leads that show up late with an earlier time that day.
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo

from ident_hooks.errors import PermanentFailure


def cursor_variable(source: str) -> str:
    return f"leads_cursor_{source}"


class BadCursor(ValueError, PermanentFailure):
    """The Variable holds something that is not an ISO 8601 time with offset."""


def parse_cursor(value: str | None) -> datetime | None:
    if value is None or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip().strip('"'))
    except ValueError as exc:
        raise BadCursor(
            f"lead cursor {value!r} is not an ISO 8601 time such as 2026-11-20T00:00:00+03:00"
        ) from exc
    if moment.tzinfo is None:
        raise BadCursor(f"lead cursor {value!r} has no UTC offset, e.g. +03:00")
    return moment


# A lead stamped shortly before midnight may show up at the source after one stamped just
# past it; asking this far back from the cursor as well still finds it the next day.
LATE_LEAD_MARGIN = timedelta(hours=2)


def period_start(
    cursor: datetime | None, now: datetime, clinic_tz: tzinfo, initial_days: int
) -> datetime:
    """00:00 clinic time of the cursor's date (or of today minus ``initial_days``), moved
    back to ``cursor - LATE_LEAD_MARGIN`` when that is earlier (just after midnight)."""
    if cursor is None:
        day = now.astimezone(clinic_tz).date() - timedelta(days=initial_days)
        return datetime.combine(day, datetime.min.time(), clinic_tz)
    cursor = min(cursor, now)
    midnight = datetime.combine(cursor.astimezone(clinic_tz).date(), datetime.min.time(), clinic_tz)
    return min(midnight, (cursor - LATE_LEAD_MARGIN).astimezone(clinic_tz))


def advanced(cursor: datetime | None, newest: datetime | None, now: datetime) -> datetime | None:
    """The cursor after a committed batch: never backwards, never past now.

    A lead stamped in the future (a source's clock running fast) must not make the
    next period start tomorrow and skip today's leads.
    """
    candidates = [moment for moment in (cursor, newest and min(newest, now)) if moment]
    return max(candidates) if candidates else None
