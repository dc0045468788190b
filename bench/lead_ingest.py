"""Lead ingestion throughput: normalise + upsert versus a plain COPY of the same rows.

    scripts/bootstrap.sh && python bench/lead_ingest.py --leads 100000

Target: normalise + upsert at most 3x the plain COPY; reloading the same batch inserts 0.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime, timedelta

from _common import bench_database, peak_memory_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--source", default="site_main", help="any configured lead source")
    args = parser.parse_args()

    import psycopg

    from ident_dev import demo
    from ident_dev.simulators.catalog import build_simulators
    from ident_hooks.config import load_config
    from ident_hooks.leads.normalise import DoctorMatcher
    from ident_hooks.leads.sources import SourceSettings, parse_records
    from ident_hooks.leads.store import store_leads, store_rejects

    url, drop = bench_database()
    try:
        clinic = demo.generate(30, 2)
        with psycopg.connect(url) as conn:
            demo.load(conn, clinic)
        doctors = [(d[0], d[1]) for d in clinic.doctors]
        services = build_simulators(doctors, [b[0] for b in clinic.branches])
        try:  # only their records are used: none is started, but each holds a socket
            simulator = services[args.source].server
            now = datetime.now(UTC)
            started = time.perf_counter()
            for n in range(args.leads):
                simulator.add_lead(now - timedelta(seconds=n))
            records = simulator.records
            made = time.perf_counter() - started
        finally:
            for service in services.values():
                for server in (service.server, service.timetable):
                    if server is not None:
                        server.stop()

        connector = load_config().lead_source(args.source).spec.connector_class()
        settings = SourceSettings(source=args.source)
        with psycopg.connect(url) as conn:
            conn.execute("create unlogged table plain_copy (raw jsonb)")
            conn.commit()
            started = time.perf_counter()
            with conn.cursor().copy("copy plain_copy (raw) from stdin") as copy:
                for record in records:
                    copy.write_row((json.dumps(record, ensure_ascii=False),))
            conn.commit()
            plain_copy = time.perf_counter() - started

            def ingest() -> tuple[float, float, object]:
                began = time.perf_counter()
                matcher = DoctorMatcher(
                    conn.execute("select doctor_id, full_name from clinic.doctors")
                )
                batch = parse_records(connector, records, settings=settings, matcher=matcher)
                parsed = time.perf_counter()
                with conn.transaction():
                    result = store_leads(conn, batch.leads)
                    store_rejects(conn, batch.rejects)
                return parsed - began, time.perf_counter() - parsed, result

            normalise_first, upsert_first, first = ingest()
            normalise_again, upsert_again, again = ingest()
            stored = conn.execute("select count(*) from integration.leads").fetchone()[0]
    finally:
        drop()

    total = normalise_first + upsert_first
    print(f"leads                          {args.leads:>10,} ({args.source} format)")
    print(f"generate raw records           {made:>10.2f} s (not part of the figures)")
    print(f"plain COPY of the raw rows     {plain_copy:>10.2f} s")
    print(f"normalise                      {normalise_first:>10.2f} s")
    print(f"upsert                         {upsert_first:>10.2f} s")
    print(f"normalise + upsert             {total:>10.2f} s  ({args.leads / total:,.0f} leads/s)")
    print(f"ratio to plain COPY            {total / plain_copy:>10.2f} x  (target <= 3)")
    print(f"inserted on first load         {first.inserted:>10,}")
    print(
        f"reload of the same batch       {normalise_again + upsert_again:>10.2f} s: "
        f"inserted {again.inserted}, updated {again.updated}, unchanged {again.unchanged}"
    )
    print(f"rows in integration.leads      {stored:>10,}")
    print(f"peak memory                    {peak_memory_mb():>10.0f} MB")


if __name__ == "__main__":
    main()
