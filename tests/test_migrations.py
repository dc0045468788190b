"""The migrations runner: ordered, exactly once, idempotent, and strict about history."""

from __future__ import annotations

import psycopg
import pytest

from ident_hooks.db import MigrationError, apply_migrations, load_migrations


def _applied(conn) -> list[int]:
    rows = conn.execute("select version from public.schema_migrations order by version")
    return [r[0] for r in rows]


def test_empty_database_gets_every_migration_once(fresh_db_url):
    expected = [m.version for m in load_migrations()]
    with psycopg.connect(fresh_db_url) as conn:
        first = apply_migrations(conn)
        assert len(first) == len(expected)
        assert _applied(conn) == expected
        tables = {
            r[0]
            for r in conn.execute(
                "select table_name from information_schema.tables where table_schema = 'clinic'"
            )
        }
        assert {
            "branches",
            "doctors",
            "work_intervals",
            "appointments",
            "export_settings",
            "export_rules",
        } <= tables


def test_rerun_on_migrated_database_is_a_no_op(fresh_db_url):
    with psycopg.connect(fresh_db_url) as conn:
        apply_migrations(conn)
        conn.execute("insert into clinic.doctors (doctor_id, full_name) values ('d1', 'Иванов')")
        conn.commit()
        before = conn.execute("select version, applied_at from public.schema_migrations").fetchall()
        conn.commit()
        assert apply_migrations(conn) == []
        after = conn.execute("select version, applied_at from public.schema_migrations").fetchall()
        assert before == after
        assert conn.execute("select count(*) from clinic.doctors").fetchone()[0] == 1


def test_only_new_migrations_are_applied(fresh_db_url, tmp_path):
    for migration in load_migrations():
        name = f"{migration.version:04d}_{migration.name}.sql"
        (tmp_path / name).write_text(migration.sql, encoding="utf-8")
    with psycopg.connect(fresh_db_url) as conn:
        apply_migrations(conn, tmp_path)
        (tmp_path / "9001_add_note.sql").write_text(
            "alter table clinic.doctors add column note text;", encoding="utf-8"
        )
        assert apply_migrations(conn, tmp_path) == ["9001_add_note"]
        assert apply_migrations(conn, tmp_path) == []


def test_edited_applied_migration_is_refused(fresh_db_url, tmp_path):
    (tmp_path / "0001_first.sql").write_text("create table t (a int);", encoding="utf-8")
    with psycopg.connect(fresh_db_url) as conn:
        apply_migrations(conn, tmp_path)
        (tmp_path / "0001_first.sql").write_text("create table t (b int);", encoding="utf-8")
        with pytest.raises(MigrationError, match="edited after it was applied"):
            apply_migrations(conn, tmp_path)


def test_failing_migration_leaves_no_trace(fresh_db_url, tmp_path):
    (tmp_path / "0001_ok.sql").write_text("create table ok (a int);", encoding="utf-8")
    (tmp_path / "0002_broken.sql").write_text(
        "create table half (a int); select no_such_function();", encoding="utf-8"
    )
    with psycopg.connect(fresh_db_url) as conn:
        with pytest.raises(psycopg.errors.UndefinedFunction):
            apply_migrations(conn, tmp_path)
        conn.rollback()
        assert _applied(conn) == [1]
        assert conn.execute("select to_regclass('public.half')").fetchone()[0] is None


def test_badly_named_file_is_reported(tmp_path):
    (tmp_path / "add-things.sql").write_text("select 1;", encoding="utf-8")
    with pytest.raises(MigrationError, match="NNNN_snake_name"):
        load_migrations(tmp_path)


def test_create_database_if_missing(fresh_db_url, point_ident_db):
    from urllib.parse import urlsplit, urlunsplit

    from ident_dev.embedded_pg import drop_database
    from ident_hooks.db import create_database_if_missing

    parts = urlsplit(fresh_db_url)
    name = parts.path.lstrip("/") + "_new"
    point_ident_db(urlunsplit(parts._replace(path=f"/{name}")))
    try:
        assert create_database_if_missing() is True
        assert create_database_if_missing() is False
    finally:
        drop_database(fresh_db_url, name)
