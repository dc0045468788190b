"""Freed time offered to waiting leads: the cost of noting cancellations and of a run.

    scripts/bootstrap.sh && python bench/freed_time.py --doctors 2000

Loads the demo clinic (``--doctors``, 33 days ahead, 4 weeks of history) and adds open
leads inside PostgreSQL: ``--leads`` of them, half naming a doctor and a day in the next
two weeks, a fifth naming only a specialty, the rest neither. Then it cancels
``--cancellations`` future appointments in one statement (a busy day of a large network),
with the noting trigger (migration 0026) and — on the same change rolled back — without
it, and times runs of :func:`ident_hooks.schedule.freed.offer_freed_time`: the first
(offers everything), a repeat with nothing new, and one after 20 cancellations and 20
re-bookings.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from datetime import UTC, datetime

from _common import bench_database, peak_memory_mb

LEADS_SQL = """
insert into integration.leads
       (source, external_id, created_at, doctor_id, doctor_name_raw, requested_start,
        branch_id, raw)
select 'site_main', 'bench-' || n, %(now)s - make_interval(secs => r_created * 3 * 86400),
       case when kind < 0.5 then d.doctor_id end,
       case when kind >= 0.5 and kind < 0.7 then d.specialty end,
       case when kind < 0.5
            then date_trunc('hour', %(now)s) + make_interval(hours => (r_day * 14 * 24)::int) end,
       case when kind < 0.5 then b.branch_id end,
       '{}'
  from (select n, random() as kind, random() as r_created, random() as r_day,
               1 + floor(random() * %(doctors)s)::int as doctor_n,
               1 + floor(random() * %(branches)s)::int as branch_n
          from generate_series(1, %(leads)s) n) g
  join (select doctor_id, specialty, row_number() over (order by doctor_id) as doctor_n
          from clinic.doctors) d using (doctor_n)
  join (select branch_id, row_number() over (order by branch_id) as branch_n
          from clinic.branches) b using (branch_n)
"""

CANCEL_SQL = """
update clinic.appointments set status = 'cancelled'
 where appointment_id in (
       select appointment_id from clinic.appointments
        where status <> 'cancelled' and starts_at > %(now)s + interval '3 hours'
        order by hashtext(appointment_id) limit %(cancellations)s)
"""


def timed(action) -> tuple[float, object]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--doctors", type=int, default=2000)
    parser.add_argument("--leads", type=int, default=20000)
    parser.add_argument("--cancellations", type=int, default=500)
    args = parser.parse_args()

    import psycopg

    from ident_hooks.schedule.freed import offer_freed_time

    url, drop = bench_database()
    now = datetime.now(UTC)
    try:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "ident_dev.demo",
                "--doctors",
                str(args.doctors),
                "--days",
                "33",
                "--history-weeks",
                "4",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        with psycopg.connect(url) as conn:
            counts = conn.execute(
                "select (select count(*) from clinic.doctors),"
                " (select count(*) from clinic.branches),"
                " (select count(*) from clinic.appointments where starts_at > %s)",
                (now,),
            ).fetchone()
            doctors, branches, future = counts
            conn.execute("truncate integration.leads cascade")
            conn.execute(
                LEADS_SQL,
                {"now": now, "leads": args.leads, "doctors": doctors, "branches": branches},
            )
            conn.commit()
            params = {"now": now, "cancellations": args.cancellations}
            conn.execute("select count(*) from clinic.appointments")  # warm the cache

            conn.execute(
                "alter table clinic.appointments disable trigger appointments_freed_on_update"
            )
            bare, cursor = timed(lambda: conn.execute(CANCEL_SQL, params))
            cancelled = cursor.rowcount
            conn.rollback()
            noted, _ = timed(lambda: conn.execute(CANCEL_SQL, params))
            conn.commit()

            first, result = timed(lambda: offer_freed_time(conn, now))
            repeat, again = timed(lambda: offer_freed_time(conn, now))
            conn.execute(
                "update clinic.appointments set status = 'cancelled' where appointment_id in"
                " (select appointment_id from clinic.appointments where status <> 'cancelled'"
                "  and starts_at > %(now)s + interval '1 day' order by appointment_id limit 20)",
                {"now": now},
            )
            conn.execute(
                "update clinic.appointments set status = 'scheduled' where appointment_id in"
                " (select appointment_id from integration.freed_appointments"
                "  order by appointment_id limit 20)"
            )
            conn.commit()
            changed, after = timed(lambda: offer_freed_time(conn, now))

        print(
            f"clinic: {doctors} doctors, {branches} branches, {future} future appointments,"
            f" {args.leads} open leads"
        )
        print(
            f"cancelling {cancelled} appointments in one statement: {bare * 1000:.0f} ms"
            f" without the noting trigger, {noted * 1000:.0f} ms with it"
        )
        print(f"first run: {first * 1000:.0f} ms, {result.as_dict()}")
        print(f"repeat with nothing new: {repeat * 1000:.0f} ms, {again.as_dict()}")
        print(
            f"after 20 cancellations and 20 re-bookings: {changed * 1000:.0f} ms, {after.as_dict()}"
        )
        print(f"peak memory {peak_memory_mb():.0f} MB")
    finally:
        drop()


if __name__ == "__main__":
    main()
