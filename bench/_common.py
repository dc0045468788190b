"""Shared set-up for the benchmark scripts: a clinic database to measure against."""

from __future__ import annotations

import os
import resource
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))
# ... and for the child processes a benchmark starts.
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [str(ROOT / "plugins"), os.environ.get("PYTHONPATH")])
)

from ident_hooks import embedded_pg  # noqa: E402


def bench_database() -> tuple[str, callable]:
    """A fresh migrated database and a function that drops it.

    On ``IDENT_BENCH_DB_URL`` (a server URL) if given, else on the embedded server in
    ``.local/bench-pgdata``.
    """
    from ident_hooks.db import apply_migrations

    url, drop = empty_database("ident_bench")
    os.environ["AIRFLOW_CONN_IDENT_DB"] = embedded_pg.airflow_connection(url)

    import psycopg

    with psycopg.connect(url) as conn:
        apply_migrations(conn)
    return url, drop


def empty_database(prefix: str) -> tuple[str, callable]:
    """A new empty database ``<prefix>_<random>`` and a function that drops it, on the
    server of :func:`bench_database` (``IDENT_BENCH_DB_URL``, else the embedded one)."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    server_url = os.environ.get("IDENT_BENCH_DB_URL")
    if server_url is None:
        datadir = ROOT / ".local" / "bench-pgdata"
        embedded_pg.start(datadir)
        server_url = embedded_pg.socket_url(datadir, "postgres")
    embedded_pg.ensure_database(server_url, name)
    url = urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    return url, lambda: embedded_pg.drop_database(server_url, name)


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
