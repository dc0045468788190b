"""The listener runs inside the scheduler's database session: recording a run there must
leave that session alone, also when ``ident_db`` is kept in Airflow's metadata database
(as it is once someone creates it under Admin → Connections)."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

import psycopg
import pytest


@pytest.fixture
def ident_db_only_in_metadata(airflow_db, clinic_db_url, monkeypatch):
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    fields = json.loads(os.environ["AIRFLOW_CONN_IDENT_DB"])
    monkeypatch.delenv("AIRFLOW_CONN_IDENT_DB")
    # What the scheduler and the api-server run as: connections come from the metadata DB.
    monkeypatch.setenv("_AIRFLOW_PROCESS_CONTEXT", "server")
    with create_session() as session:
        session.add(Connection(conn_id="ident_db", **fields))
    yield
    with create_session() as session:
        session.query(Connection).filter(Connection.conn_id == "ident_db").delete()


def test_a_run_recorded_in_the_scheduler_leaves_its_session_attached(
    ident_db_only_in_metadata, clinic_db_url
):
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    from ident_hooks.health import listener

    run_id = f"scheduled__{uuid.uuid4().hex}"
    ended = datetime(2026, 12, 6, 21, 0, tzinfo=UTC)
    dag_run = SimpleNamespace(
        dag_id="pull_leads_uis", run_id=run_id, start_date=ended, end_date=ended
    )
    with create_session() as session:
        held = session.query(Connection).filter(Connection.conn_id == "ident_db").one()
        listener.on_dag_run_success(dag_run, "success")
        # Airflow's scoped session is the scheduler's own: had the listener looked the
        # connection up in it, the lookup would have committed and closed it.
        assert held in session
        assert session.in_transaction()

    with psycopg.connect(clinic_db_url) as conn:
        state = conn.execute(
            "select state from integration.dag_runs where run_id = %s", [run_id]
        ).fetchone()
    assert state == ("success",)
