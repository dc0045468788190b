"""Schedule export speed: compute and serialise all four aggregators' payloads.

    scripts/bootstrap.sh && python bench/schedule_export.py --doctors 2000 --days 33

Targets on a 2-core machine: compute + serialise at most 2x a plain SELECT of the same
rows; the whole export (read + compute + serialise, no network) under 5 s; peak
memory under 500 MB.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from datetime import UTC, datetime

from _common import bench_database, peak_memory_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--doctors", type=int, default=2000)
    parser.add_argument("--days", type=int, default=33)
    args = parser.parse_args()

    import psycopg

    from ident_hooks.config import load_config
    from ident_hooks.schedule.aggregators import publisher
    from ident_hooks.schedule.engine import compute_schedule
    from ident_hooks.schedule.publish import settings_for
    from ident_hooks.schedule.reader import read_settings, read_snapshot

    url, drop = bench_database()
    try:
        # Loaded by a child process so its memory does not count in the peak below.
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "ident_dev.demo",
                "--doctors",
                str(args.doctors),
                "--days",
                str(args.days),
                "--history-weeks",  # the export reads from today on
                "0",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        loaded = time.perf_counter() - started
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("vacuum analyze")
        now = datetime.now(UTC)
        with psycopg.connect(url) as conn:
            window = {
                "window_start": now.replace(hour=0, minute=0),
                "window_end": now.replace(year=now.year + 1),
                "hold": 30,
            }
            # The same rows the export reads, the plainest way: SELECT * and fetchall.
            started = time.perf_counter()
            work_rows = conn.execute(
                "select * from clinic.work_intervals"
                " where ends_at > %(window_start)s and starts_at < %(window_end)s",
                window,
            ).fetchall()
            busy_rows = conn.execute(
                "select * from clinic.appointments where status <> 'cancelled'"
                " and ends_at > %(window_start)s and starts_at < %(window_end)s",
                window,
            ).fetchall()
            plain_read = time.perf_counter() - started
            work_count, busy_count = len(work_rows), len(busy_rows)
            del work_rows, busy_rows  # not part of the export's memory
            doctors = conn.execute("select count(*) from clinic.doctors").fetchone()[0]

            # Resolved before timing: finding a kind's class imports it through Airflow, which
            # a DAG's task has loaded already.
            targets = {a.name: publisher(a.name) for a in load_config().aggregators}
            read_seconds = compute_seconds = 0.0
            slots = requests = body_bytes = 0
            for aggregator, target in targets.items():
                began = time.perf_counter()
                row = read_settings(conn, aggregator)
                settings = settings_for(aggregator, row)
                snapshot = read_snapshot(
                    conn, aggregator, row, now=now, days_ahead=settings.days_ahead
                )
                read_done = time.perf_counter()
                schedule = compute_schedule(
                    snapshot.work, snapshot.busy, snapshot.doctors, snapshot.rules, settings, now
                )
                built = target.build_requests(schedule, snapshot.branches)
                compute_seconds += time.perf_counter() - read_done
                read_seconds += read_done - began
                slots += len(schedule.free)
                requests += len(built)
                body_bytes += sum(len(r.body) for r in built)
                del snapshot, schedule, built  # one export at a time, as the DAGs run
    finally:
        drop()

    print(f"doctors                          {doctors:>10,}")
    print(
        f"work intervals / appointments    {work_count:>10,} / {busy_count:,} read"
        f" (load of the network: {loaded:.1f} s, not part of the figures)"
    )
    print(
        f"free slots produced (4 exports)  {slots:>10,} in {requests} requests,"
        f" {body_bytes / 1e6:.0f} MB of JSON"
    )
    print(f"plain SELECT of the same rows    {plain_read:>10.2f} s")
    print(f"export reads (4x, into pandas)   {read_seconds:>10.2f} s")
    print(f"compute + serialise, all four    {compute_seconds:>10.2f} s")
    print(f"ratio to the plain SELECT        {compute_seconds / plain_read:>10.2f} x (target <= 2)")
    print(
        f"whole export, all four           {read_seconds + compute_seconds:>10.2f} s (target < 5)"
    )
    print(f"peak memory                      {peak_memory_mb():>10.0f} MB (target < 500)")


if __name__ == "__main__":
    main()
