"""Reading what the slot engine needs from the clinic database.

A fixed handful of set-based queries per run, whatever the number of doctors:
settings, branches, doctors with this aggregator's rules, work time in the horizon,
and busy time (appointments not cancelled, plus open leads holding a doctor's time).
Times come out as epoch seconds, which pandas turns into UTC timestamps cheaply.

Branches and doctors come with ``ident_id``, their integer alias for the IDENT HTTP
protocol (СберЗдоровье, 32top), whose ids are integers — real IDENT sends ``"Id": 2129``,
``"BranchId": 1`` and partner receivers answer 400 to anything else (``brearey/smmikod``,
``src/index.ts`` and ``__tests__/posttimetable.json``; integrations.md, Corrections,
"IDENT HTTP protocol"). The clinic's ids are text, so each one gets a number in
``integration.ident_ids`` the first time it is read (one set-based insert of the missing
ones); the number never changes and is never reused, also after the doctor is deleted.
The payload builders stay pure: they only read the column.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import psycopg

# A lead that gave a start but no end holds this long (32top sends only the start).
LEAD_HOLD_MINUTES = 30

WORK_SQL = """
select w.doctor_id, w.branch_id,
       extract(epoch from w.starts_at)::bigint as starts_at,
       extract(epoch from w.ends_at)::bigint as ends_at,
       b.timezone
  from clinic.work_intervals w
  join clinic.branches b using (branch_id)
 where w.ends_at > %(window_start)s and w.starts_at < %(window_end)s{only_doctors}
"""
BUSY_SQL = """
select doctor_id,
       extract(epoch from starts_at)::bigint as starts_at,
       extract(epoch from ends_at)::bigint as ends_at
  from clinic.appointments
 where status <> 'cancelled'
   and ends_at > %(window_start)s and starts_at < %(window_end)s{only_doctors}
union all
select doctor_id,
       extract(epoch from requested_start)::bigint,
       extract(epoch from coalesce(requested_end,
                                   requested_start + make_interval(mins => %(hold)s)))::bigint
  from integration.leads
 where status in ('new', 'in_progress') and source_state is null
   and doctor_id is not null and requested_start is not null
   and coalesce(requested_end, requested_start + make_interval(mins => %(hold)s))
       > %(window_start)s
   and requested_start < %(window_end)s{only_doctors}
"""
# Appended to both queries when a run recomputes only the doctors the change log names.
ONLY_DOCTORS = " and {column} = any(%(doctors)s)"
# Missing aliases only: a conflicting insert would still use up a sequence number, and
# receivers keep ids as 32-bit INT (brearey/smmikod, src/database/init.sql). Ordered, so
# two runs adding the same new doctors take the row locks in the same order.
ASSIGN_IDENT_IDS_SQL = """
insert into integration.ident_ids (entity, clinic_id)
select entity, clinic_id
  from (select 'branch' as entity, branch_id as clinic_id from clinic.branches
        union all
        select 'doctor', doctor_id from clinic.doctors) clinic
 where not exists (select 1 from integration.ident_ids i
                    where i.entity = clinic.entity and i.clinic_id = clinic.clinic_id)
 order by entity, clinic_id
on conflict (entity, clinic_id) do nothing
"""
BRANCHES_SQL = """
select b.branch_id, b.name, b.timezone, b.address, i.ident_id
  from clinic.branches b
  join integration.ident_ids i on i.entity = 'branch' and i.clinic_id = b.branch_id
"""
DOCTORS_SQL = """
select d.doctor_id, d.full_name, d.specialty, d.is_active, i.ident_id
  from clinic.doctors d
  join integration.ident_ids i on i.entity = 'doctor' and i.clinic_id = d.doctor_id
"""


@dataclass
class ClinicSnapshot:
    """Everything one aggregator's export reads, as DataFrames with UTC timestamps."""

    settings_row: dict[str, Any] | None
    branches: pd.DataFrame  # branch_id, name, timezone, address, ident_id
    doctors: pd.DataFrame  # doctor_id, full_name, specialty, is_active, ident_id
    rules: pd.DataFrame  # doctor_id, publish, slot_minutes
    work: pd.DataFrame  # doctor_id, branch_id, starts_at, ends_at, timezone
    busy: pd.DataFrame  # doctor_id, starts_at, ends_at


def read_settings(conn: psycopg.Connection, aggregator: str) -> dict[str, Any] | None:
    cursor = conn.execute(
        "select aggregator, days_ahead, skip_hours_today, slot_minutes, enabled"
        " from clinic.export_settings where aggregator = %s",
        (aggregator,),
    )
    row = cursor.fetchone()
    return dict(zip([c.name for c in cursor.description], row, strict=True)) if row else None


def _frame(cursor: psycopg.Cursor, time_columns: tuple[str, ...] = ()) -> pd.DataFrame:
    frame = pd.DataFrame(cursor.fetchall(), columns=[c.name for c in cursor.description])
    for column in time_columns:
        frame[column] = pd.to_datetime(frame[column].astype("int64"), unit="s", utc=True)
    return frame


def read_snapshot(
    conn: psycopg.Connection,
    aggregator: str,
    settings_row: dict[str, Any] | None,
    *,
    now: datetime,
    days_ahead: int,
    doctor_ids: Iterable[str] | None = None,
) -> ClinicSnapshot:
    """Read the clinic for an export of ``days_ahead`` days from ``now``.

    The window reaches a day either side of the horizon so that branch-local dates in
    any time zone are covered; the engine cuts the exact horizon. Missing IDENT aliases
    are inserted in the caller's transaction (committed with the run's next commit).
    With ``doctor_ids``, work and busy time are read for those doctors only (the rest of
    the clinic is still read: a few thousand rows at most).
    """
    window = {
        "window_start": now - timedelta(days=1),
        "window_end": now + timedelta(days=days_ahead + 2),
        "hold": LEAD_HOLD_MINUTES,
        "doctors": sorted(doctor_ids) if doctor_ids is not None else None,
    }

    def only(column: str) -> str:
        return "" if doctor_ids is None else ONLY_DOCTORS.format(column=column)

    conn.execute(ASSIGN_IDENT_IDS_SQL)
    branches = _frame(conn.execute(BRANCHES_SQL))
    doctors = _frame(conn.execute(DOCTORS_SQL))
    rules = _frame(
        conn.execute(
            "select doctor_id, publish, slot_minutes from clinic.export_rules"
            " where aggregator = %s",
            (aggregator,),
        )
    )
    work = _frame(
        conn.execute(WORK_SQL.format(only_doctors=only("w.doctor_id")), window),
        ("starts_at", "ends_at"),
    )
    busy = _frame(
        conn.execute(BUSY_SQL.format(only_doctors=only("doctor_id")), window),
        ("starts_at", "ends_at"),
    )
    return ClinicSnapshot(settings_row, branches, doctors, rules, work, busy)
