"""The embedded PostgreSQL used by the run command, the tests and the benchmarks.

A real PostgreSQL 16 server from the ``pgserver`` wheel, listening on a Unix socket
inside its data folder; nothing here is used when a URL of another server is given.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

import psycopg
from psycopg import sql


def start(datadir: Path, *, stop_on_exit: bool = False):
    """Start (or reuse) the server whose data lives in ``datadir``."""
    import pgserver

    # pgserver narrates every pg_ctl call at INFO, even from atexit after streams close.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    datadir.mkdir(parents=True, exist_ok=True)
    return pgserver.get_server(datadir, cleanup_mode="stop" if stop_on_exit else None)


def socket_url(datadir: Path, database: str) -> str:
    return f"postgresql://postgres@/{database}?host={quote(str(datadir), safe='/')}"


def airflow_connection(url: str) -> str:
    """The ``AIRFLOW_CONN_*`` JSON for a libpq URL, Unix-socket URLs included."""
    parts = urlsplit(url)
    socket_dir = parse_qs(parts.query).get("host", [None])[0]
    fields = {
        "conn_type": "postgres",
        "host": socket_dir or parts.hostname,
        "port": parts.port,
        "login": unquote(parts.username or "") or None,
        "password": unquote(parts.password or "") or None,
        "schema": parts.path.lstrip("/"),
    }
    return json.dumps({key: value for key, value in fields.items() if value is not None})


def ensure_database(server_url: str, database: str, *, recreate: bool = False) -> None:
    """Create ``database`` on the server behind ``server_url`` unless it exists."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        if recreate:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(database))
            )
        exists = conn.execute(
            "select 1 from pg_database where datname = %s", (database,)
        ).fetchone()
        if not exists:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(database)))


def drop_database(server_url: str, database: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(database))
        )
