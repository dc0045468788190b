"""A real dag.test() run of clinic_db_migrate against an empty database."""

from __future__ import annotations

import psycopg


def test_migrate_dag_builds_the_schema_then_does_nothing(airflow_db, fresh_db_url, point_ident_db):
    from airflow.dag_processing.dagbag import DagBag

    point_ident_db(fresh_db_url)
    dag = DagBag().get_dag("clinic_db_migrate")

    first = dag.test()
    assert first.state == "success"
    with psycopg.connect(fresh_db_url) as conn:
        applied = conn.execute("select count(*) from public.schema_migrations").fetchone()[0]
        assert applied >= 1
        assert conn.execute("select to_regclass('clinic.appointments')").fetchone()[0]

    second = dag.test()
    assert second.state == "success"
    with psycopg.connect(fresh_db_url) as conn:
        again = conn.execute("select count(*) from public.schema_migrations").fetchone()[0]
    assert again == applied
