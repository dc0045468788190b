"""Appointments as the reports see them: which ones changed, with phones in E.164.

``clinic.appointments`` has no "updated" column and the practice-management system may
rewrite it in any way, so each build compares it with the copy the previous build kept
(``report_build.appointment_phones``): new, changed (phone, creation time, cancelled or
not, start, completed or not, amount, card) and deleted appointments come out of one set-based
join. Phones are normalised with
the same function as the leads' (``ident_hooks.leads.normalise.normalise_phone``), once
per distinct new value.
"""

from __future__ import annotations

import psycopg

from ident_hooks.leads.normalise import normalise_phone

# Appointments whose copy differs from the clinic's row, or that one side lacks.
_DIFF_SQL = """
insert into pg_temp.appointment_changes
select coalesce(a.appointment_id, s.appointment_id),
       a.appointment_id is null,
       a.patient_phone, a.created_at, a.status <> 'cancelled',
       a.starts_at, a.status = 'completed', a.amount, a.patient_id,
       s.phone_e164, s.created_at, s.is_active, s.starts_at, s.is_completed, s.patient_id
  from clinic.appointments a
  full join report_build.appointment_phones s on s.appointment_id = a.appointment_id
 where a.appointment_id is null
    or s.appointment_id is null
    or (s.patient_phone, s.created_at, s.is_active, s.starts_at, s.is_completed, s.amount,
        s.patient_id)
       is distinct from (a.patient_phone, a.created_at, a.status <> 'cancelled',
                         a.starts_at, a.status = 'completed', a.amount, a.patient_id)
"""
_APPLY_SQL = (
    """
delete from report_build.appointment_phones s
 using pg_temp.appointment_changes c
 where s.appointment_id = c.appointment_id
""",
    """
insert into report_build.appointment_phones
       (appointment_id, patient_phone, phone_e164, created_at, is_active, starts_at,
        is_completed, amount, patient_id)
select c.appointment_id, c.patient_phone, m.phone_e164, c.created_at, c.is_active,
       c.starts_at, c.is_completed, c.amount, c.patient_id
  from pg_temp.appointment_changes c
  left join pg_temp.appointment_phone_map m on m.patient_phone = c.patient_phone
 where not c.deleted
""",
    # Each active version (before and after the change) may convert the leads of its
    # phone made in the 30 days before it.
    """
insert into pg_temp.appointment_events (phone_e164, created_at)
select old_phone_e164, old_created_at
  from pg_temp.appointment_changes
 where old_is_active and old_phone_e164 is not null
union
select m.phone_e164, c.created_at
  from pg_temp.appointment_changes c
  join pg_temp.appointment_phone_map m on m.patient_phone = c.patient_phone
 where not c.deleted and c.is_active and m.phone_e164 is not null
""",
    # Each completed version (before and after the change) may be the visit of the leads
    # of its phone in the 30 days before it, and decides whether the later visits of that
    # phone are a new patient's and whether the later leads of its phone and its card are
    # a returning patient's.
    """
insert into pg_temp.visit_events (phone_e164, patient_id, starts_at)
select old_phone_e164, old_patient_id, old_starts_at
  from pg_temp.appointment_changes
 where old_is_completed and (old_phone_e164 is not null or old_patient_id is not null)
union
select m.phone_e164, c.patient_id, c.starts_at
  from pg_temp.appointment_changes c
  left join pg_temp.appointment_phone_map m on m.patient_phone = c.patient_phone
 where not c.deleted and c.is_completed and (m.phone_e164 is not null or c.patient_id is not null)
""",
)
SQL_TEXTS = (_DIFF_SQL, *_APPLY_SQL)


def sync_appointments(conn: psycopg.Connection) -> int:
    """Bring the copy up to date in the caller's transaction; return how many changed.

    Leaves ``pg_temp.appointment_events (phone_e164, created_at)``: the phone and creation
    time of every active appointment version that appeared or disappeared — the leads of
    that phone in the 30 days before it may have changed their conversion; and
    ``pg_temp.visit_events (phone_e164, patient_id, starts_at)``: the same for completed
    versions, their card and their start — the leads of that phone from 30 days before it
    on may have changed their visit, and the later leads of its card whether they return.
    """
    conn.execute(
        """
        create temp table appointment_changes (
            appointment_id text, deleted boolean,
            patient_phone text, created_at timestamptz, is_active boolean,
            starts_at timestamptz, is_completed boolean, amount numeric, patient_id text,
            old_phone_e164 text, old_created_at timestamptz, old_is_active boolean,
            old_starts_at timestamptz, old_is_completed boolean, old_patient_id text
        ) on commit drop
        """
    )
    conn.execute(
        "create temp table appointment_phone_map (patient_phone text, phone_e164 text)"
        " on commit drop"
    )
    conn.execute(
        "create temp table appointment_events (phone_e164 text, created_at timestamptz)"
        " on commit drop"
    )
    conn.execute(
        "create temp table visit_events (phone_e164 text, patient_id text, starts_at timestamptz)"
        " on commit drop"
    )
    changed = conn.execute(_DIFF_SQL).rowcount
    if not changed:
        return 0
    phones = conn.execute(
        "select distinct patient_phone from pg_temp.appointment_changes"
        " where not deleted and patient_phone is not null"
    ).fetchall()
    with conn.cursor().copy(
        "copy pg_temp.appointment_phone_map (patient_phone, phone_e164) from stdin"
    ) as copy:
        for (raw,) in phones:
            copy.write_row((raw, normalise_phone(raw)))
    for statement in _APPLY_SQL:
        conn.execute(statement)
    return changed
