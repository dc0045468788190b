"""One row per lead (``report_build.lead_facts``) with everything the reports count.

A lead's facts depend on the lead itself and on two neighbourhoods:

* *repeat*: another lead (not spam) from the same phone in the 30 days before it —
  so a change to a lead can change the leads of its phone (old and new phone) in the
  30 days after it (old and new creation time);
* *converted*: an appointment (not cancelled) for the same phone created within 30 days
  after it — so an appointment that appeared, changed or went away can change the leads
  of its phone in the 30 days before it;
* *visit*: the first completed appointment of the same phone that started within 30 days
  after the lead, when the lead is the latest lead (not spam) of its phone before it — a
  visit that several leads precede counts once, for the latest (unlike *converted*, which
  every lead of the window gets). It is a *new* patient's when no completed appointment
  of the phone started before it. So a change to a lead can change the leads of its
  phone in the 30 days before it (the latest lead before a visit), and a completed
  appointment that appeared, changed or went away the leads of its phone from 30 days
  before its start on (their visit, or whether their visit is a new patient's).

* *person*: the card the front desk confirmed for the lead
  (``integration.lead_patient_choices``); without a choice, the card confirmed for the
  leads of its phone when exactly one card was; else its phone; without a phone, the lead
  itself. A family's shared phone with two confirmed cards is two people (and its
  unconfirmed leads a third: the phone). So a change of a lead or its choice can change
  the person of every lead of its phone, at any time.
* *returning*: the person had a completed appointment that started before the lead — for
  a card, an appointment naming that card or naming no patient on the lead's phone; for a
  phone, any on that phone. A lead the front desk marked as a new patient (a choice
  without a card) is new. So a completed appointment can change the leads of its phone
  and of its card after its start.

An incremental build recomputes the facts of the changed leads and of those
neighbourhoods, compares them with the stored ones, and keeps only the real differences;
the old and new versions of the leads that really changed say which days, campaigns and
weeks the report tables must rebuild. A full build recomputes every lead.
"""

from __future__ import annotations

from datetime import timedelta

import psycopg

from ident_hooks.reports.channels import channel_sql, is_call_sql

REPEAT_WINDOW = timedelta(days=30)
CONVERSION_WINDOW = timedelta(days=30)

FACT_COLUMNS = (
    "created_at",
    "day",
    "week",
    "branch_id",
    "source",
    "channel",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "referrer_host",
    "doctor_id",
    "phone_e164",
    "is_spam",
    "is_open",
    "is_repeat",
    "converted",
    "response_seconds",
    "load_lag_seconds",
    "has_ym_client_id",
    "has_yclid",
    "has_gclid",
    "visit_id",
    "visit_is_new",
    "visit_amount",
    "person_key",
    "is_call",
    "is_returning",
)
_ALL = ", ".join(("lead_id", *FACT_COLUMNS))


def _facts_sql(target: str, scope: str) -> str:
    """Compute facts into ``target`` for the leads ``scope`` selects (a WHERE clause or "")."""
    return f"""
insert into {target} ({_ALL})
select l.lead_id,
       l.created_at,
       (l.created_at at time zone %(tz)s)::date,
       date_trunc('week', l.created_at at time zone %(tz)s)::date,
       l.branch_id,
       l.source,
       {channel_sql("l")},
       l.utm_source, l.utm_medium, l.utm_campaign, l.referrer_host,
       l.doctor_id,
       l.phone_e164,
       l.status = 'spam',
       l.status in ('new', 'in_progress'),
       l.status <> 'spam' and l.phone_e164 is not null and exists (
           select 1
             from integration.leads p
            where p.phone_e164 = l.phone_e164
              and p.status <> 'spam'
              and p.created_at >= l.created_at - %(repeat_window)s
              and (p.created_at, p.lead_id) < (l.created_at, l.lead_id)
       ),
       l.status <> 'spam' and l.phone_e164 is not null and exists (
           select 1
             from report_build.appointment_phones a
            where a.phone_e164 = l.phone_e164
              and a.is_active
              and a.created_at > l.created_at
              and a.created_at <= l.created_at + %(conversion_window)s
       ),
       l.response_seconds,
       l.load_lag_seconds,
       l.ym_client_id is not null,
       l.yclid is not null,
       l.gclid is not null,
       visit.appointment_id,
       coalesce(visit.is_new, false),
       visit.amount,
       case when person.card is not null then 'card:' || person.card
            when l.phone_e164 is not null then 'phone:' || l.phone_e164
            else 'lead:' || l.lead_id end,
       {is_call_sql("l")},
       (choice.lead_id is null or choice.patient_id is not null) and exists (
           select 1
             from report_build.appointment_phones a
            where a.is_completed
              and a.starts_at < l.created_at
              and (a.phone_e164 = l.phone_e164 and (person.card is null or a.patient_id is null)
                   or a.patient_id = person.card)
       )
  from integration.leads l
  left join integration.lead_patient_choices choice on choice.lead_id = l.lead_id
  left join lateral (
      select case when choice.lead_id is not null then choice.patient_id
                  when count(distinct c.patient_id) = 1 then min(c.patient_id) end as card
        from integration.leads p
        join integration.lead_patient_choices c on c.lead_id = p.lead_id
       where p.phone_e164 = l.phone_e164 and c.patient_id is not null
  ) person on true
  left join lateral (
      select a.appointment_id, a.amount,
             not exists (
                 select 1
                   from report_build.appointment_phones b
                  where b.phone_e164 = a.phone_e164
                    and b.is_completed
                    and (b.starts_at, b.appointment_id) < (a.starts_at, a.appointment_id)
             ) as is_new
        from report_build.appointment_phones a
       where l.status <> 'spam'
         and a.phone_e164 = l.phone_e164
         and a.is_completed
         and a.starts_at > l.created_at
         and a.starts_at <= l.created_at + %(conversion_window)s
         and not exists (
             select 1
               from integration.leads later
              where later.phone_e164 = l.phone_e164
                and later.status <> 'spam'
                and (later.created_at, later.lead_id) > (l.created_at, l.lead_id)
                and later.created_at < a.starts_at
         )
       order by a.starts_at, a.appointment_id
       limit 1
  ) visit on true
 {scope}
"""


_AFFECTED_SQL = """
insert into pg_temp.affected_leads (lead_id)
select lead_id from pg_temp.changed_leads
union
select neighbour.lead_id
  from (select f.phone_e164, f.created_at
          from report_build.lead_facts f join pg_temp.changed_leads c using (lead_id)
        union
        select l.phone_e164, l.created_at
          from integration.leads l join pg_temp.changed_leads c using (lead_id)) changed
  join integration.leads neighbour
    on neighbour.phone_e164 = changed.phone_e164
   and neighbour.created_at between changed.created_at - %(conversion_window)s
                               and changed.created_at + %(repeat_window)s
union
select earlier.lead_id
  from pg_temp.appointment_events e
  join integration.leads earlier
    on earlier.phone_e164 = e.phone_e164
   and earlier.created_at between e.created_at - %(conversion_window)s and e.created_at
union
select since.lead_id
  from pg_temp.visit_events v
  join integration.leads since
    on since.phone_e164 = v.phone_e164
   and since.created_at >= v.starts_at - %(conversion_window)s
union
select same_phone.lead_id
  from (select f.phone_e164
          from report_build.lead_facts f join pg_temp.changed_leads c using (lead_id)
        union
        select l.phone_e164
          from integration.leads l join pg_temp.changed_leads c using (lead_id)) changed
  join integration.leads same_phone on same_phone.phone_e164 = changed.phone_e164
union
select card_lead.lead_id
  from pg_temp.visit_events v
  join integration.lead_patient_choices chosen on chosen.patient_id = v.patient_id
  join integration.leads chosen_lead on chosen_lead.lead_id = chosen.lead_id
  join integration.leads card_lead
    on (card_lead.lead_id = chosen_lead.lead_id or card_lead.phone_e164 = chosen_lead.phone_e164)
   and card_lead.created_at > v.starts_at
"""

_DIFFERENT = " or ".join(f"n.{c} is distinct from o.{c}" for c in FACT_COLUMNS)
_CHANGED_VERSIONS_SQL = f"""
insert into pg_temp.changed_facts (lead_id, version, {", ".join(FACT_COLUMNS)})
with changed as (
    select coalesce(n.lead_id, o.lead_id) as lead_id
      from pg_temp.new_facts n
      full join (select f.*
                   from report_build.lead_facts f
                   join pg_temp.affected_leads a using (lead_id)) o
        on o.lead_id = n.lead_id
     where n.lead_id is null or o.lead_id is null or {_DIFFERENT}
)
select f.lead_id, 'old', {", ".join(f"f.{c}" for c in FACT_COLUMNS)}
  from report_build.lead_facts f join changed using (lead_id)
union all
select n.lead_id, 'new', {", ".join(f"n.{c}" for c in FACT_COLUMNS)}
  from pg_temp.new_facts n join changed using (lead_id)
"""
_REPLACE_SQL = (
    """
delete from report_build.lead_facts f
 using pg_temp.changed_facts c
 where f.lead_id = c.lead_id and c.version = 'old'
""",
    f"""
insert into report_build.lead_facts ({_ALL})
select {_ALL} from pg_temp.changed_facts where version = 'new'
""",
)
SQL_TEXTS = (_facts_sql("target", "scope"), _AFFECTED_SQL, _CHANGED_VERSIONS_SQL, *_REPLACE_SQL)


def _params(clinic_timezone: str) -> dict:
    return {
        "tz": clinic_timezone,
        "repeat_window": REPEAT_WINDOW,
        "conversion_window": CONVERSION_WINDOW,
    }


def rebuild_all_facts(conn: psycopg.Connection, clinic_timezone: str) -> int:
    """Replace every lead's facts; return how many leads there are."""
    conn.execute("truncate report_build.lead_facts")
    return conn.execute(
        _facts_sql("report_build.lead_facts", ""),
        _params(clinic_timezone),
    ).rowcount


def update_facts(conn: psycopg.Connection, clinic_timezone: str) -> tuple[int, int]:
    """Recompute the facts a change can affect; keep only the real differences.

    Needs ``pg_temp.changed_leads (lead_id)``, ``pg_temp.appointment_events`` and
    ``pg_temp.visit_events``; leaves
    ``pg_temp.changed_facts``: the old and new versions (``version``) of every lead whose
    facts changed. Returns (leads recomputed, leads whose facts changed).
    """
    params = _params(clinic_timezone)
    conn.execute("create temp table affected_leads (lead_id bigint) on commit drop")
    conn.execute(_AFFECTED_SQL, params)
    conn.execute("create index on pg_temp.affected_leads (lead_id)")
    conn.execute("create temp table new_facts (like report_build.lead_facts) on commit drop")
    conn.execute("create temp table changed_facts (like report_build.lead_facts) on commit drop")
    conn.execute("alter table pg_temp.changed_facts add column version text not null")
    recomputed = conn.execute(
        _facts_sql(
            "pg_temp.new_facts", "where l.lead_id in (select lead_id from pg_temp.affected_leads)"
        ),
        params,
    ).rowcount
    conn.execute("analyze pg_temp.new_facts")
    conn.execute(_CHANGED_VERSIONS_SQL)
    for statement in _REPLACE_SQL:
        conn.execute(statement)
    changed = conn.execute("select count(distinct lead_id) from pg_temp.changed_facts").fetchone()[
        0
    ]
    return recomputed, changed
