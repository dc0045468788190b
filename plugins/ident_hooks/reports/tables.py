"""The report tables, rebuilt from ``report_build.lead_facts`` for what a build touched.

Every rebuild deletes the rows of the touched days (campaigns, weeks) and inserts them
again from the facts, so running it twice gives the same rows. A full build deletes
every row first and treats everything as touched.

Measures (spam leads count only in ``spam_leads``):

* ``leads`` — leads not marked spam; ``unique_patients`` — distinct phones among them;
* ``repeat_leads`` / ``converted_leads`` — see :mod:`ident_hooks.reports.facts`;
* ``answered_in_5_min`` — taken within 300 s of creation (``response_seconds <= 300``);
* medians and 90th percentiles — ``percentile_cont`` (interpolated), rounded to 0.1 s,
  over the leads that have the value (response: taken leads);
* ``conversion_rate`` — converted / leads, rounded to 4 places; empty when no leads;
* ``click_ids`` — per day and source, the leads (not spam) carrying Metrica's ClientID,
  a yclid, a gclid, any of them, and ``any_share`` = with any / leads, rounded to 4 places;
* ``campaign_roi`` — per week and campaign, ``report.ad_costs`` beside the leads (not
  spam) whose ``utm_campaign`` is the campaign's id or one of its names, their visits,
  new patients and revenue (see :mod:`ident_hooks.reports.facts`); costs per lead, visit
  and new patient rounded to 2 places, ROMI to 4. Rebuilt whole by every build.
* ``patients_by_channel`` — per week, channel and ``utm_campaign``: leads, people (distinct
  persons, :mod:`ident_hooks.reports.facts`), leads per person (2 places), and the people
  among them that are new and returning patients;
* ``calls_daily`` — per day and channel: calls and the people who called.
"""

from __future__ import annotations

import psycopg

ANSWER_TARGET_SECONDS = 300

_MEASURES = f"""
       count(*) filter (where not is_spam),
       count(distinct phone_e164) filter (where not is_spam),
       count(*) filter (where is_repeat and not is_spam),
       count(*) filter (where not is_spam and response_seconds <= {ANSWER_TARGET_SECONDS}),
       round((percentile_cont(0.5) within group (order by response_seconds)
              filter (where not is_spam))::numeric, 1),
       count(*) filter (where converted and not is_spam),
       round(count(*) filter (where converted and not is_spam)::numeric
             / nullif(count(*) filter (where not is_spam), 0), 4),
       count(*) filter (where is_spam)"""
_MEASURE_COLUMNS = """leads, unique_patients, repeat_leads, answered_in_5_min,
       median_response_seconds, converted_leads, conversion_rate, spam_leads"""
_DAILY_KEY = "day, branch_id, source, channel, utm_source, utm_medium, utm_campaign, referrer_host"
_CAMPAIGN_MATCH = """{a}.utm_campaign = {b}.utm_campaign
   and {a}.utm_source is not distinct from {b}.utm_source
   and {a}.utm_medium is not distinct from {b}.utm_medium
   and {a}.channel = {b}.channel"""


def _leads_daily(days: str) -> str:
    return f"""
insert into report.leads_daily ({_DAILY_KEY}, {_MEASURE_COLUMNS})
select {_DAILY_KEY},{_MEASURES}
  from report_build.lead_facts f
 {days}
 group by {_DAILY_KEY}
"""


def _response_time(days: str) -> str:
    taken = "filter (where not is_spam)"
    return f"""
insert into report.response_time
       (day, branch_id, leads, answered_leads, answered_in_5_min, median_response_seconds,
        p90_response_seconds, median_load_lag_seconds, p90_load_lag_seconds, open_leads)
select day, branch_id,
       count(*) filter (where not is_spam),
       count(response_seconds) filter (where not is_spam),
       count(*) filter (where not is_spam and response_seconds <= {ANSWER_TARGET_SECONDS}),
       round((percentile_cont(0.5) within group (order by response_seconds) {taken})::numeric, 1),
       round((percentile_cont(0.9) within group (order by response_seconds) {taken})::numeric, 1),
       round((percentile_cont(0.5) within group (order by load_lag_seconds) {taken})::numeric, 1),
       round((percentile_cont(0.9) within group (order by load_lag_seconds) {taken})::numeric, 1),
       count(*) filter (where is_open and not is_spam)
  from report_build.lead_facts f
 {days}
 group by day, branch_id
"""


def _click_ids(days: str) -> str:
    return f"""
insert into report.click_ids
       (day, source, leads, with_ym_client_id, with_yclid, with_gclid, with_any, any_share)
select day, source, count(*), count(*) filter (where has_ym_client_id),
       count(*) filter (where has_yclid), count(*) filter (where has_gclid),
       count(*) filter (where has_ym_client_id or has_yclid or has_gclid),
       round(count(*) filter (where has_ym_client_id or has_yclid or has_gclid)::numeric
             / count(*), 4)
  from report_build.lead_facts f
 {days} {"and" if days else "where"} not is_spam
 group by day, source
"""


def _campaigns(campaigns: str) -> str:
    return f"""
insert into report.campaigns
       (utm_campaign, utm_source, utm_medium, channel, first_day, last_day, {_MEASURE_COLUMNS})
select utm_campaign, utm_source, utm_medium, channel, min(day), max(day),{_MEASURES}
  from report_build.lead_facts f
 where utm_campaign is not null {campaigns}
 group by utm_campaign, utm_source, utm_medium, channel
"""


def _patients_by_channel(weeks: str) -> str:
    return f"""
insert into report.patients_by_channel
       (week, channel, utm_campaign, leads, people, leads_per_person, new_patients,
        returning_patients)
select week, channel, utm_campaign, count(*), count(distinct person_key),
       round(count(*)::numeric / count(distinct person_key), 2),
       count(distinct person_key) filter (where not is_returning),
       count(distinct person_key) filter (where is_returning)
  from report_build.lead_facts f
 where not is_spam {weeks}
 group by week, channel, utm_campaign
"""


def _calls_daily(days: str) -> str:
    return f"""
insert into report.calls_daily (day, channel, calls, callers)
select day, channel, count(*), count(distinct person_key)
  from report_build.lead_facts f
 {days} {"and" if days else "where"} is_call and not is_spam
 group by day, channel
"""


_TOUCHED_WEEKS = "and f.week in (select week from pg_temp.touched_weeks)"

_DOCTOR_DEMAND = """
insert into report.doctor_demand (week, doctor_id, leads, free_slots, leads_per_free_slot)
select week, doctor_id, coalesce(d.leads, 0), coalesce(s.free_slots, 0),
       round(coalesce(d.leads, 0)::numeric / nullif(s.free_slots, 0), 4)
  from (select week, doctor_id, count(*) as leads
          from report_build.lead_facts
         where doctor_id is not null and not is_spam
           and week in (select week from pg_temp.demand_weeks)
         group by week, doctor_id) d
  full join pg_temp.free_slots s using (week, doctor_id)
"""

_TOUCHED_DAYS = "where f.day in (select day from pg_temp.touched_days)"
_TOUCHED_CAMPAIGNS = (
    "and exists (select 1 from pg_temp.touched_campaigns t where "
    + _CAMPAIGN_MATCH.format(a="t", b="f")
    + ")"
)
# The double-booking window (migration 0015), per aggregator and clinic week: small, so
# every build recomputes it whole.
_SCHEDULE_COLLISIONS = """
insert into report.schedule_collisions
    (week, aggregator, title, leads_with_time, collisions, known_to_aggregator,
     median_taken_minutes)
select date_trunc('week', c.booked_at at time zone %(zone)s)::date,
       c.aggregator,
       coalesce(max(i.title), c.aggregator),
       count(*),
       count(*) filter (where c.taken),
       count(*) filter (where c.taken and c.schedule_sent_at >= c.taken_since),
       round((percentile_cont(0.5) within group (
                  order by extract(epoch from c.booked_at - c.taken_since))
              filter (where c.taken) / 60)::numeric, 1)
  from integration.lead_collisions c
  left join integration.integrations i on i.role = 'aggregator' and i.name = c.aggregator
 group by 1, 2
"""

# Leads escalated to the front desk (0014, 0016), per clinic day and branch.
_ESCALATIONS = """
insert into report.escalations (day, branch_id, escalated, median_wait_minutes)
select (escalated_at at time zone %(zone)s)::date, coalesce(branch_id, ''), count(*),
       round((percentile_cont(0.5) within group (order by waited_seconds) / 60)::numeric, 1)
  from integration.lead_escalations
 group by 1, 2
"""

# Which campaign a utm_campaign value means: the id as text wins over a name; a name that
# several campaigns had goes to the one that had it last.
_CAMPAIGN_ROI = """
with tags as (
    select source, campaign_id, campaign_id::text as tag, 0 as by_name, max(day) as last_day
      from report.ad_costs group by source, campaign_id
    union all
    select source, campaign_id, campaign, 1, max(day)
      from report.ad_costs group by source, campaign_id, campaign
),
tag_campaign as (
    select distinct on (tag) tag, source, campaign_id
      from tags
     order by tag, by_name, last_day desc, source, campaign_id
),
latest_name as (
    select distinct on (source, campaign_id) source, campaign_id, campaign
      from report.ad_costs
     order by source, campaign_id, day desc
),
costs as (
    select date_trunc('week', day)::date as week, source, campaign_id,
           sum(impressions) as impressions, sum(clicks) as clicks, sum(cost) as cost
      from report.ad_costs
     group by 1, 2, 3
),
leads as (
    select f.week, t.source, t.campaign_id,
           case when t.tag is null then f.utm_campaign end as utm_campaign,
           mode() within group (order by f.utm_source) as utm_source,
           mode() within group (order by f.channel) as channel,
           count(*) as leads,
           count(f.visit_id) as visits,
           count(*) filter (where f.visit_is_new) as new_patients,
           coalesce(sum(f.visit_amount), 0) as revenue,
           count(f.visit_id) filter (where f.visit_amount is null) as visits_without_amount
      from report_build.lead_facts f
      left join tag_campaign t on t.tag = f.utm_campaign
     where f.utm_campaign is not null and not f.is_spam
     group by 1, 2, 3, 4
),
joined as (
    select coalesce(c.week, l.week) as week,
           coalesce(c.source, l.source) as cost_source,
           coalesce(c.campaign_id, l.campaign_id) as campaign_id,
           l.utm_campaign, l.utm_source, l.channel,
           coalesce(c.impressions, 0) as impressions, coalesce(c.clicks, 0) as clicks,
           coalesce(c.cost, 0) as cost,
           coalesce(l.leads, 0) as leads, coalesce(l.visits, 0) as visits,
           coalesce(l.new_patients, 0) as new_patients, coalesce(l.revenue, 0) as revenue,
           coalesce(l.visits_without_amount, 0) as visits_without_amount
      from costs c
      full join leads l
        on l.week = c.week and l.source = c.source and l.campaign_id = c.campaign_id
)
insert into report.campaign_roi
       (week, cost_source, campaign_id, campaign, utm_source, channel, impressions, clicks,
        cost, leads, visits, new_patients, revenue, visits_without_amount, cost_per_lead,
        cost_per_visit, cost_per_new_patient, romi)
select j.week, j.cost_source, j.campaign_id, coalesce(n.campaign, j.utm_campaign),
       j.utm_source, j.channel, j.impressions, j.clicks, j.cost, j.leads, j.visits,
       j.new_patients, j.revenue, j.visits_without_amount,
       case when j.cost_source is not null then round(j.cost / nullif(j.leads, 0), 2) end,
       case when j.cost_source is not null then round(j.cost / nullif(j.visits, 0), 2) end,
       case when j.cost_source is not null then round(j.cost / nullif(j.new_patients, 0), 2) end,
       round((j.revenue - j.cost) / nullif(j.cost, 0), 4)
  from joined j
  left join latest_name n on n.source = j.cost_source and n.campaign_id = j.campaign_id
"""

_AD_COSTS_DIGEST = """
select md5(coalesce(string_agg(
           concat_ws(',', source, day, campaign_id, campaign, impressions, clicks, cost),
           ';' order by source, day, campaign_id), ''))
  from report.ad_costs
"""

SQL_TEXTS = (
    _leads_daily(""),
    _response_time(""),
    _click_ids(""),
    _campaigns(""),
    _patients_by_channel(""),
    _calls_daily(""),
    _TOUCHED_WEEKS,
    _DOCTOR_DEMAND,
    _TOUCHED_DAYS,
    _TOUCHED_CAMPAIGNS,
    _SCHEDULE_COLLISIONS,
    _ESCALATIONS,
    _CAMPAIGN_ROI,
    _AD_COSTS_DIGEST,
)


def rebuild_schedule_collisions(conn: psycopg.Connection, clinic_timezone: str) -> int:
    """Replace ``report.schedule_collisions``; returns its number of rows."""
    conn.execute("delete from report.schedule_collisions")
    return conn.execute(_SCHEDULE_COLLISIONS, {"zone": clinic_timezone}).rowcount


def rebuild_escalations(conn: psycopg.Connection, clinic_timezone: str) -> int:
    """Replace ``report.escalations``; returns its number of rows."""
    conn.execute("delete from report.escalations")
    return conn.execute(_ESCALATIONS, {"zone": clinic_timezone}).rowcount


def ad_costs_digest(conn: psycopg.Connection) -> str:
    """A fingerprint of what ``report.campaign_roi`` reads from ``report.ad_costs``: a
    re-import of the same numbers (only ``imported_at`` new) leaves it as it was."""
    return conn.execute(_AD_COSTS_DIGEST).fetchone()[0]


def rebuild_campaign_roi(conn: psycopg.Connection) -> int:
    """Replace ``report.campaign_roi`` from the facts and the ad costs; returns its rows.

    Whole, not by touched weeks: re-imported costs leave no trace of what they replaced,
    and the table is small (weeks times campaigns).
    """
    conn.execute("delete from report.campaign_roi")
    return conn.execute(_CAMPAIGN_ROI).rowcount


def rebuild_all(conn: psycopg.Connection) -> None:
    """Replace the rows of the tables built from the facts by day, week or campaign."""
    for table in (
        "leads_daily",
        "response_time",
        "click_ids",
        "campaigns",
        "patients_by_channel",
        "calls_daily",
    ):
        conn.execute(f"delete from report.{table}")
    conn.execute(_leads_daily(""))
    conn.execute(_response_time(""))
    conn.execute(_click_ids(""))
    conn.execute(_campaigns(""))
    conn.execute(_patients_by_channel(""))
    conn.execute(_calls_daily(""))


def rebuild_touched(conn: psycopg.Connection) -> tuple[list, int]:
    """Rebuild the days, weeks and campaigns of ``pg_temp.changed_facts``' versions.

    Returns (the days rebuilt, sorted; the number of campaigns rebuilt).
    """
    conn.execute(
        "create temp table touched_days on commit drop as"
        " select distinct day from pg_temp.changed_facts"
    )
    conn.execute(
        "create temp table touched_campaigns on commit drop as"
        " select distinct utm_campaign, utm_source, utm_medium, channel"
        " from pg_temp.changed_facts where utm_campaign is not null"
    )
    conn.execute(
        "create temp table touched_weeks on commit drop as"
        " select distinct week from pg_temp.changed_facts"
    )
    for table in ("leads_daily", "response_time", "click_ids", "calls_daily"):
        conn.execute(
            f"delete from report.{table} where day in (select day from pg_temp.touched_days)"
        )
    conn.execute(_leads_daily(_TOUCHED_DAYS))
    conn.execute(_response_time(_TOUCHED_DAYS))
    conn.execute(_click_ids(_TOUCHED_DAYS))
    conn.execute(_calls_daily(_TOUCHED_DAYS))
    conn.execute(
        "delete from report.patients_by_channel"
        " where week in (select week from pg_temp.touched_weeks)"
    )
    conn.execute(_patients_by_channel(_TOUCHED_WEEKS))
    conn.execute(
        "delete from report.campaigns c using pg_temp.touched_campaigns t where "
        + _CAMPAIGN_MATCH.format(a="c", b="t")
    )
    conn.execute(_campaigns(_TOUCHED_CAMPAIGNS))
    days = [row[0] for row in conn.execute("select day from pg_temp.touched_days order by day")]
    campaigns = conn.execute("select count(*) from pg_temp.touched_campaigns").fetchone()[0]
    return days, campaigns


def rebuild_doctor_demand(
    conn: psycopg.Connection, weeks: list, free_slots: list[tuple], *, everything: bool
) -> None:
    """Replace the rows of ``weeks`` (every row when ``everything``) with lead counts from
    the facts and the given ``(week, doctor_id, free_slots)``."""
    conn.execute("create temp table demand_weeks (week date) on commit drop")
    conn.execute(
        "create temp table free_slots (week date, doctor_id text, free_slots int) on commit drop"
    )
    with conn.cursor() as cursor:
        cursor.executemany("insert into pg_temp.demand_weeks values (%s)", [(w,) for w in weeks])
    with conn.cursor().copy("copy pg_temp.free_slots from stdin") as copy:
        for row in free_slots:
            copy.write_row(row)
    if everything:
        conn.execute("delete from report.doctor_demand")
    else:
        conn.execute(
            "delete from report.doctor_demand where week in (select week from pg_temp.demand_weeks)"
        )
    conn.execute(_DOCTOR_DEMAND)
