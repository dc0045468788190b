"""Apply the clinic database migrations from Airflow."""

from datetime import timedelta

from airflow.sdk import dag, task

DOC = """
### Apply the clinic database migrations

Applies the versioned SQL files in `include/sql/migrations/` that the clinic database
(Airflow connection **`ident_db`**) has not seen yet, in order, each in its own
transaction, and records them in `public.schema_migrations`. Already applied files are
skipped, so re-running is always safe; a file edited after it was applied stops the
run with a clear error (add a new migration instead).

**When to run:** after upgrading the platform (the run command and the production
`airflow-init` service apply migrations on start as well). Trigger it by hand:
*Trigger DAG* in the UI, or `airflow dags trigger clinic_db_migrate`.
There is no cursor or state to reset.
"""


@dag(
    dag_id="clinic_db_migrate",
    schedule=None,
    catchup=False,
    max_active_runs=1,
    tags=["clinic-db", "maintenance"],
    doc_md=DOC,
    default_args={"owner": "data-team", "retries": 1, "retry_delay": timedelta(minutes=1)},
)
def clinic_db_migrate():
    @task
    def apply_migrations() -> list[str]:
        from ident_hooks.db import connect, prepare_database

        with connect() as conn:
            applied = prepare_database(conn)
        print("applied: " + ", ".join(applied) if applied else "database is up to date")
        return applied

    apply_migrations()


clinic_db_migrate()
