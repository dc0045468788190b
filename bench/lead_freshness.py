"""How fast leads reach the leads table, measured on a running platform.

    scripts/run.sh            # in one terminal; its simulators create leads now and then
    python bench/lead_freshness.py --minutes 30

For every lead created at a source in the last ``--minutes`` (the simulators stamp the
moment they make it), the lag is ``loaded_at - created_at``. Target: 95 % within the
source's interval + 30 s. Reads the clinic database of ``AIRFLOW_CONN_IDENT_DB`` or,
by default, the run command's embedded one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=30)
    args = parser.parse_args()

    from ident_dev import embedded_pg
    from ident_hooks.config import load_config
    from ident_hooks.db import connect

    os.environ.setdefault(
        "AIRFLOW_CONN_IDENT_DB",
        embedded_pg.airflow_connection(embedded_pg.socket_url(ROOT / ".local" / "pgdata", "ident")),
    )
    # A pushed source (no interval) is stored as it arrives: its target is 30 s.
    intervals = {
        s.name: s.interval.total_seconds() if s.interval else 0 for s in load_config().lead_sources
    }
    with connect() as conn:
        rows = conn.execute(
            """
            select source, count(*),
                   percentile_cont(0.5) within group (order by lag),
                   percentile_cont(0.95) within group (order by lag),
                   max(lag)
              from (select source, extract(epoch from loaded_at - created_at) as lag
                      from integration.leads
                     where created_at > now() - make_interval(mins => %s)
                       and loaded_at > created_at) recent
             group by rollup (source)
             order by source nulls last
            """,
            (args.minutes,),
        ).fetchall()
        within = conn.execute(
            """
            select count(*) filter (where extract(epoch from loaded_at - created_at)
                                          <= (%s::jsonb ->> source)::float8 + 30),
                   count(*)
              from integration.leads
             where created_at > now() - make_interval(mins => %s) and loaded_at > created_at
            """,
            (json.dumps(intervals), args.minutes),
        ).fetchone()
    print(f"leads created in the last {args.minutes} min, lag = loaded_at - created_at (s)")
    print(f"{'source':<12} {'leads':>6} {'p50':>7} {'p95':>7} {'max':>7}")
    for source, count, p50, p95, worst in rows:
        print(f"{source or 'all':<12} {count:>6} {p50:>7.1f} {p95:>7.1f} {worst:>7.1f}")
    if within[1]:
        print(
            f"within interval + 30 s: {within[0]}/{within[1]} = {within[0] / within[1]:.1%}"
            " (target >= 95 %)"
        )


if __name__ == "__main__":
    main()
