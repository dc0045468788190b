"""Marketing reports: a full rebuild, then an incremental run after 1,000 new leads.

    scripts/bootstrap.sh && python bench/reports.py --leads 1000000

The leads (two years of them, a realistic channel mix, 60 % of phones seen more than once),
the appointments that convert a quarter of them (those already past are completed visits,
most with an amount) and a daily cost for every paid campaign are generated inside
PostgreSQL — no simulators, no normaliser. Then: a full build, 1,000 new leads COPYed in
the way ingestion stores them plus 100 new appointments, an incremental build, and a
build with nothing new. Target: the incremental build under 5 s. ``report.campaign_roi``
is rebuilt whole by every build; its share is timed on its own.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

from _common import bench_database, peak_memory_mb

# One row per lead; the channel mix is chosen by `kind`, the phone from a pool smaller
# than the number of leads, so repeat leads and conversions are common.
LEADS_SQL = """
insert into integration.leads
       (source, external_id, created_at, loaded_at, source_updated_at, phone_raw, phone_e164,
        utm_source, utm_medium, utm_campaign, referrer_host, branch_id, doctor_id, raw,
        status, taken_by, taken_at, closed_by, closed_at)
select source, 'bench-' || n, created_at,
       created_at + lag, created_at + lag, phone, phone,
       utm_source, utm_medium, utm_campaign, referrer_host,
       (%(branches)s::text[])[1 + floor(r_branch * cardinality(%(branches)s::text[]))::int],
       case when r_doctor < 0.3
            then (%(doctors)s::text[])[1 + floor(r_doctor / 0.3
                                                  * cardinality(%(doctors)s::text[]))::int] end,
       '{}', status,
       case when status <> 'new' then 'admin' end,
       case when status <> 'new' then created_at + response end,
       case when status in ('done', 'spam') then 'admin' end,
       case when status in ('done', 'spam') then created_at + response + interval '10 minutes' end
  from (
    select n, created_at, r_branch, r_doctor,
           make_interval(secs => r_lag * 180) as lag,
           make_interval(secs => power(r_response, 3) * 7200) as response,
           '+7916' || lpad((floor(r_phone * %(phones)s))::int::text, 7, '0') as phone,
           case when r_status < 0.05 then 'spam' when r_status < 0.08 then 'new'
                when r_status < 0.10 then 'in_progress' else 'done' end as status,
           case when kind < 0.70 then 'site_main' when kind < 0.80 then 'uis'
                when kind < 0.88 then 'flexbe' when kind < 0.96 then 'napopravku'
                else '32top' end as source,
           case when kind < 0.30 then 'yandex' when kind < 0.45 then 'google'
                when kind >= 0.80 and kind < 0.88 then 'vk' end as utm_source,
           case when kind < 0.45 then 'cpc' when kind >= 0.80 and kind < 0.88 then 'social'
                end as utm_medium,
           case when kind < 0.30 then 'implant_' || to_char(created_at, 'YYYY_MM')
                when kind < 0.45 then 'brand_' || to_char(created_at, 'YYYY_"q"Q')
                when kind >= 0.80 and kind < 0.88 then 'promo_' || to_char(created_at, 'IYYY_IW')
                end as utm_campaign,
           case when kind < 0.30 then 'yandex.ru' when kind < 0.45 then 'google.com'
                when kind < 0.60 then 'yandex.ru' when kind < 0.70
                then 'forum' || floor(r_phone * 40)::int || '.ru' end as referrer_host
      from (
        select n, %(now)s - random() * interval '730 days' as created_at,
               random() as kind, random() as r_phone, random() as r_status,
               random() as r_response, random() as r_lag, random() as r_branch,
               random() as r_doctor
          from generate_series(1, %(leads)s) n
      ) r
  ) leads
"""

# A quarter of the leads' phones book an appointment 0-40 days later; some are cancelled,
# a fifth of the phones are written the way a front desk types them.
APPOINTMENTS_SQL = """
insert into clinic.appointments
       (appointment_id, doctor_id, branch_id, starts_at, ends_at, status, patient_phone,
        created_at, amount)
select 'conv-' || lead_id, doctor_id, branch_id, booked + interval '3 days',
       booked + interval '3 days 30 minutes',
       case when random() < 0.1 then 'cancelled'
            when booked + interval '3 days' < %(now)s then 'completed'
            else 'scheduled' end,
       case when random() < 0.2
            then '8 (' || substr(phone_e164, 3, 3) || ') ' || substr(phone_e164, 6, 3) || '-'
                 || substr(phone_e164, 9, 2) || '-' || substr(phone_e164, 11, 2)
            else phone_e164 end,
       booked,
       case when random() < 0.8 then round((1000 + random() * 9000)::numeric, -2) end
  from (
    select l.lead_id, l.phone_e164,
           least(%(now)s, l.created_at + random() * interval '40 days') as booked,
           (%(doctors)s::text[])[1 + (l.lead_id %% cardinality(%(doctors)s::text[]))::int]
               as doctor_id,
           (%(branches)s::text[])[1 + (l.lead_id %% cardinality(%(branches)s::text[]))::int]
               as branch_id
      from integration.leads l
     where random() < 0.25
  ) booked
"""


# Every paid campaign of the leads costs something each day it brought leads; the Direct
# campaigns (`implant_*`) are half tagged by their number.
COSTS_SQL = """
insert into report.ad_costs
       (source, day, campaign_id, campaign, impressions, clicks, cost, vat_included)
select 'direct', day::date, campaign_id, campaign,
       (2000 * random())::int, (100 * random())::int, round((5000 * random())::numeric, 2), true
  from (select utm_campaign as campaign, 100000 + row_number() over () as campaign_id,
               min(created_at) as first, max(created_at) as last
          from integration.leads
         where utm_medium = 'cpc'
         group by utm_campaign) c,
       generate_series(c.first, c.last, interval '1 day') day
"""
RETAG_SQL = """
update integration.leads l
   set utm_campaign = c.campaign_id::text
  from (select distinct campaign, campaign_id from report.ad_costs) c
 where l.utm_campaign = c.campaign and c.campaign like 'implant%' and l.lead_id % 2 = 0
"""


def _new_leads(count: int, now: datetime, phones: list[str], doctors: list[str]) -> list[tuple]:
    """Leads as ingestion would store them: the last few minutes, half from known phones."""
    rows = []
    for n in range(count):
        created = now - timedelta(seconds=5 * n)
        phone = phones[n % len(phones)] if n % 2 else f"+7925{n:07d}"
        tags = ("yandex", "cpc", f"implant_{created:%Y_%m}") if n % 3 else (None, None, None)
        doctor = doctors[n % len(doctors)] if n % 4 == 0 else None
        rows.append(("site_main", f"new-{n}", created, phone, phone, *tags, doctor))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--new-leads", type=int, default=1_000)
    args = parser.parse_args()

    import psycopg

    from ident_hooks.reports import tables
    from ident_hooks.reports.build import build_reports

    url, drop = bench_database()
    now = datetime.now(UTC)
    try:
        # The demo clinic (doctors, work time, appointments) is loaded by a child process.
        subprocess.run(
            [sys.executable, "-m", "ident_dev.demo", "--doctors", "30", "--days", "40"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        with psycopg.connect(url) as conn:
            doctors = [r[0] for r in conn.execute("select doctor_id from clinic.doctors")]
            branches = [r[0] for r in conn.execute("select branch_id from clinic.branches")]
            params = {
                "now": now,
                "leads": args.leads,
                "phones": int(args.leads * 0.6),
                "doctors": doctors,
                "branches": branches,
            }
            started = time.perf_counter()
            conn.execute("select setseed(0.5)")
            conn.execute(LEADS_SQL, params)
            conn.execute(APPOINTMENTS_SQL, params)
            conn.execute(COSTS_SQL)
            conn.execute(RETAG_SQL)
            conn.commit()
            generated = time.perf_counter() - started
            appointments, visits = conn.execute(
                "select count(*), count(*) filter (where status = 'completed')"
                " from clinic.appointments"
            ).fetchone()
            costs = conn.execute("select count(*) from report.ad_costs").fetchone()[0]
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("vacuum analyze")

        with psycopg.connect(url) as conn:
            full = build_reports(conn, clinic_timezone="Europe/Moscow", now=now)
            counts = {
                table: conn.execute(f"select count(*) from report.{table}").fetchone()[0]
                for table in (
                    "leads_daily",
                    "campaigns",
                    "response_time",
                    "doctor_demand",
                    "campaign_roi",
                )
            }
            conn.commit()

            phones = [
                r[0]
                for r in conn.execute(
                    "select phone_e164 from integration.leads order by lead_id desc limit 500"
                )
            ]
            started = time.perf_counter()
            rows = _new_leads(args.new_leads, now, phones, doctors)
            with conn.cursor().copy(
                "copy integration.leads (source, external_id, created_at, phone_raw,"
                " phone_e164, utm_source, utm_medium, utm_campaign, doctor_id, raw)"
                " from stdin"
            ) as copy:
                for row in rows:
                    copy.write_row((*row, "{}"))
            conn.execute(
                "insert into clinic.appointments (appointment_id, doctor_id, branch_id,"
                " starts_at, ends_at, patient_phone, created_at)"
                " select 'new-' || n, %s, %s, %s + interval '2 days',"
                " %s + interval '2 days 30 minutes', phone, %s"
                " from unnest(%s::text[]) with ordinality as p(phone, n)",
                (doctors[0], branches[0], now, now, now, phones[:100]),
            )
            conn.commit()
            stored = time.perf_counter() - started
            incremental = build_reports(conn, clinic_timezone="Europe/Moscow", now=now)
            idle = build_reports(conn, clinic_timezone="Europe/Moscow", now=now)
            with conn.transaction(force_rollback=True):
                started = time.perf_counter()
                tables.rebuild_campaign_roi(conn)
                campaign_roi = time.perf_counter() - started
    finally:
        drop()

    print(f"leads                           {args.leads:>10,} over 730 days")
    print(f"appointments                    {appointments:>10,} ({visits:,} completed)")
    print(f"ad cost rows                    {costs:>10,}")
    print(f"generate leads + appointments   {generated:>10.1f} s (not part of the figures)")
    print(
        "report rows                     "
        + ", ".join(f"{table} {count:,}" for table, count in counts.items())
    )
    print(f"full rebuild                    {full.seconds:>10.2f} s ({full.reason})")
    print(
        f"store {args.new_leads:,} new leads + 100 appts  {stored:>7.2f} s"
        " (ingestion's work, not part of the figures)"
    )
    print(
        f"incremental after new leads     {incremental.seconds:>10.2f} s (target < 5):"
        f" {incremental.lead_changes:,} noted changes, {incremental.appointments_changed}"
        f" appointments, {incremental.leads_recomputed:,} leads recomputed,"
        f" {incremental.leads_changed:,} changed, days {incremental.days},"
        f" {incremental.campaigns} campaigns, {len(incremental.weeks)} doctor weeks"
    )
    print(f"incremental with nothing new    {idle.seconds:>10.2f} s")
    print(f"of a build: campaign_roi whole  {campaign_roi:>10.2f} s")
    print(f"peak memory                     {peak_memory_mb():>10.0f} MB")


if __name__ == "__main__":
    main()
