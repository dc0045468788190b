"""Clinic database access and the migrations runner.

Everything reaches the clinic database through the Airflow connection ``ident_db``
(a ``postgres`` connection), so credentials live only in Airflow Connections.
"""

from __future__ import annotations

import argparse
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from ident_hooks.paths import INCLUDE_DIR

CLINIC_CONN_ID = "ident_db"
MIGRATIONS_DIR = INCLUDE_DIR / "sql" / "migrations"
_MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Any constant works: it only has to be the same for every process that migrates.
_MIGRATION_LOCK_KEY = 0x1DE7_0001


def connect(conn_id: str = CLINIC_CONN_ID) -> psycopg.Connection:
    """Open a psycopg 3 connection to the clinic database from an Airflow connection."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    conn = PostgresHook(postgres_conn_id=conn_id).get_conn()
    conn.autocommit = False
    return conn


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


class MigrationError(RuntimeError):
    """The database and the migration files disagree."""


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = _MIGRATION_FILE.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_snake_name.sql")
        migrations.append(Migration(int(match[1]), match[2], path.read_text(encoding="utf-8")))
    versions = [m.version for m in migrations]
    if len(versions) != len(set(versions)):
        raise MigrationError(f"two migration files share a version number in {directory}")
    return migrations


def apply_migrations(conn: psycopg.Connection, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply the migrations not applied yet, in order, each in its own transaction.

    Returns the names applied. An applied migration whose file has changed since is
    an error: history is never rewritten, a new migration is added instead.
    """
    migrations = load_migrations(directory)
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise MigrationError("apply_migrations needs a connection with no open transaction")
    with conn.transaction():
        conn.execute(
            """
            create table if not exists public.schema_migrations (
                version    int primary key,
                name       text not null,
                checksum   text not null,
                applied_at timestamptz not null default now()
            )
            """
        )
    applied_now: list[str] = []
    for migration in migrations:
        with conn.transaction():
            # Serialise concurrent migrators (the run command and a DAG, say).
            conn.execute("select pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK_KEY,))
            row = conn.execute(
                "select checksum from public.schema_migrations where version = %s",
                (migration.version,),
            ).fetchone()
            label = f"{migration.version:04d}_{migration.name}"
            if row is not None:
                if row[0] != migration.checksum:
                    raise MigrationError(
                        f"migration {label} was edited after it was applied; "
                        "add a new migration instead"
                    )
                continue
            conn.execute(migration.sql)
            conn.execute(
                "insert into public.schema_migrations (version, name, checksum)"
                " values (%s, %s, %s)",
                (migration.version, migration.name, migration.checksum),
            )
            applied_now.append(label)
    return applied_now


def prepare_database(conn: psycopg.Connection) -> list[str]:
    """Apply the migrations, then record the configured integrations and their labels
    (``integration.integrations``, from integrations.yaml). Returns the migrations applied."""
    from ident_hooks.config import load_config
    from ident_hooks.registry import record_instances

    applied = apply_migrations(conn)
    record_instances(conn, load_config())
    conn.commit()
    return applied


def create_database_if_missing(conn_id: str = CLINIC_CONN_ID) -> bool:
    """Create the connection's database on its server (via the ``postgres`` database)."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    hook = PostgresHook(postgres_conn_id=conn_id)
    target = hook.get_connection(conn_id).schema
    with PostgresHook(postgres_conn_id=conn_id, database="postgres").get_conn() as admin:
        admin.autocommit = True
        if admin.execute("select 1 from pg_database where datname = %s", (target,)).fetchone():
            return False
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(target)))
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Apply the clinic database migrations.")
    parser.add_argument(
        "--conn-id", default=CLINIC_CONN_ID, help="Airflow connection id of the clinic DB"
    )
    parser.add_argument(
        "--create-database", action="store_true", help="create the database first if missing"
    )
    args = parser.parse_args(argv)
    if args.create_database and create_database_if_missing(args.conn_id):
        print("created the clinic database")
    with connect(args.conn_id) as conn:
        applied = prepare_database(conn)
    print("applied: " + ", ".join(applied) if applied else "database is up to date")


if __name__ == "__main__":
    main()
