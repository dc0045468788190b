"""Freed time offered to those waiting: a cancelled appointment's time, while it is really
free, is flagged on the open leads that asked for that doctor or that specialty.

Migration 0026 queues every appointment that stops holding its time (cancelled, or deleted
while active) in ``integration.freed_appointments``. :func:`offer_freed_time` recomputes
the offers from that queue in one statement and makes ``integration.lead_freed_slots``
equal to them: new offers are added (``flagged_at`` = the run's moment), offers that no
longer hold are removed, the rest stay untouched. So a run can be repeated any time and
heals whatever changed since: a slot booked again, a lead taken or closed, a slot now too
close.

A freed time is offered while:

* no active appointment of the doctor overlaps it (``status <> 'cancelled'``) — a
  cancellation re-booked, or the appointment reactivated, is no longer offered;
* it lies inside one of the doctor's work intervals and the doctor is active;
* it starts after the cut-off: now + the export rules' "no slots in the next N hours"
  (the smallest ``skip_hours_today`` of the enabled ``clinic.export_settings``, 2 without
  any), the time the clinic still lets patients book.

It is offered to a lead that is open (``status`` new or in_progress, still active at its
source) and either

* asked for that doctor (``leads.doctor_id``), or
* named no known doctor but a specialty: its ``doctor_name_raw`` is, ignoring case and
  surrounding spaces, the freed doctor's ``clinic.doctors.specialty`` (forms offering a
  choice of specialty send it there; nothing else in a lead tells a specialty),

and is near it: the lead's requested day is within ``nearby_days`` of the slot's day, both
days counted in the branch's time zone (the lead's branch, else the slot's), or the lead
named no time and was created within the last ``nearby_days`` days. A lead is offered at
most ``per_lead`` slots, those closest to its requested time (the soonest when it named
none): a specialty can free many.

Cost: the queue holds only cancellations not yet passed, and a run is one statement over
it, the open leads and the doctors' appointments and work around the queued times
(``bench/freed_time.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

DEFAULT_NEARBY_DAYS = 3
DEFAULT_PER_LEAD = 3
DEFAULT_SKIP_HOURS = 2

_OFFERS_SQL = """
create temporary table freed_offers on commit drop as
with cutoff as (
    select %(now)s + make_interval(secs => 3600 * coalesce(
               min(skip_hours_today) filter (where enabled), %(default_skip_hours)s)) as at
      from clinic.export_settings
),
freed as (
    select f.appointment_id, f.doctor_id, f.branch_id, f.starts_at, f.ends_at,
           lower(btrim(d.specialty)) as specialty, b.timezone,
           (f.starts_at at time zone b.timezone)::date as day
      from integration.freed_appointments f
      join clinic.doctors d on d.doctor_id = f.doctor_id and d.is_active
      join clinic.branches b on b.branch_id = f.branch_id
     where f.starts_at >= (select at from cutoff)
       and exists (select 1 from clinic.work_intervals w
                    where w.doctor_id = f.doctor_id
                      and w.starts_at <= f.starts_at and w.ends_at >= f.ends_at)
       and not exists (select 1 from clinic.appointments a
                        where a.doctor_id = f.doctor_id and a.status <> 'cancelled'
                          and a.starts_at < f.ends_at and a.ends_at > f.starts_at)
),
waiting as (
    select l.lead_id, l.doctor_id,
           case when l.doctor_id is null then lower(btrim(l.doctor_name_raw)) end as specialty,
           l.requested_start, l.created_at, lb.timezone
      from integration.leads l
      left join clinic.branches lb on lb.branch_id = l.branch_id
     where l.status in ('new', 'in_progress') and l.source_state is null
       and (l.doctor_id is not null or l.doctor_name_raw is not null)
),
-- Two equi-joins rather than one join on "doctor or specialty", so that each is a hash join.
pairs as (
    select w.*, f.appointment_id, f.doctor_id as freed_doctor_id, f.branch_id, f.starts_at,
           f.ends_at, f.timezone as freed_timezone, f.day
      from waiting w join freed f on f.doctor_id = w.doctor_id
    union all
    select w.*, f.appointment_id, f.doctor_id, f.branch_id, f.starts_at,
           f.ends_at, f.timezone, f.day
      from waiting w join freed f on f.specialty = w.specialty
)
select lead_id, appointment_id, doctor_id, branch_id, starts_at, ends_at
  from (select lead_id, appointment_id, freed_doctor_id as doctor_id, branch_id, starts_at,
               ends_at,
               row_number() over (
                   partition by lead_id
                   order by abs(extract(epoch from starts_at - coalesce(requested_start, %(now)s))),
                            starts_at, appointment_id) as rank
          from pairs
         where case when requested_start is not null
                    then abs((requested_start at time zone coalesce(timezone, freed_timezone))::date
                             - day) <= %(nearby_days)s
                    else created_at >= %(now)s - make_interval(days => %(nearby_days)s)
               end) near
 where rank <= %(per_lead)s
"""

_WITHDRAW_SQL = """
delete from integration.lead_freed_slots s
 where not exists (select 1 from freed_offers o
                    where o.lead_id = s.lead_id and o.appointment_id = s.appointment_id
                      and o.doctor_id = s.doctor_id
                      and o.branch_id is not distinct from s.branch_id
                      and o.starts_at = s.starts_at and o.ends_at = s.ends_at)
"""

_OFFER_SQL = """
insert into integration.lead_freed_slots
    (lead_id, appointment_id, doctor_id, branch_id, starts_at, ends_at, flagged_at)
select lead_id, appointment_id, doctor_id, branch_id, starts_at, ends_at, %(now)s
  from freed_offers
on conflict (lead_id, appointment_id) do nothing
"""

# Queued times that have passed can never be offered again.
_FORGET_SQL = "delete from integration.freed_appointments where ends_at <= %(now)s"


@dataclass(frozen=True)
class FreedTimeResult:
    offered: int  # offers added by this run
    withdrawn: int  # offers removed: slot taken again or too close, lead closed...
    standing: int  # offers in place after the run
    forgotten: int  # queued cancellations whose time has passed

    def as_dict(self) -> dict[str, int]:
        return {
            "offered": self.offered,
            "withdrawn": self.withdrawn,
            "standing": self.standing,
            "forgotten": self.forgotten,
        }


def offer_freed_time(
    conn: psycopg.Connection,
    now: datetime,
    *,
    nearby_days: int = DEFAULT_NEARBY_DAYS,
    per_lead: int = DEFAULT_PER_LEAD,
) -> FreedTimeResult:
    """Make ``integration.lead_freed_slots`` the offers that hold at ``now``; commits."""
    if nearby_days < 0:
        raise ValueError(f"nearby_days must be 0 or more, not {nearby_days}")
    if per_lead < 1:
        raise ValueError(f"per_lead must be 1 or more, not {per_lead}")
    params = {
        "now": now,
        "nearby_days": nearby_days,
        "per_lead": per_lead,
        "default_skip_hours": DEFAULT_SKIP_HOURS,
    }
    with conn.transaction():
        # One run at a time: two would each insert what the other is about to withdraw.
        conn.execute("lock table integration.lead_freed_slots in share row exclusive mode")
        forgotten = conn.execute(_FORGET_SQL, params).rowcount
        conn.execute(_OFFERS_SQL, params)
        withdrawn = conn.execute(_WITHDRAW_SQL).rowcount
        offered = conn.execute(_OFFER_SQL, params).rowcount
        standing = conn.execute("select count(*) from freed_offers").fetchone()[0]
    return FreedTimeResult(offered, withdrawn, standing, forgotten)
