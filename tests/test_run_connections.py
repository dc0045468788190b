"""The run command's connections live in Airflow's metadata database, where a person sees
and changes them (Admin -> Connections): created with their own types, rewritten by the next
run (a simulator's port changes), never over what a person entered; and the intake service
reads them from there as Airflow's own components do.

Against the test session's real metadata database; the whole run command in the UI is
tests/test_run_command_connections.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from ident_dev.airflow_stack import free_port, wait_for
from ident_dev.devstack import SIMULATED, RunConnections
from ident_dev.simulators.catalog import demo_secret

ROOT = Path(__file__).resolve().parents[1]


def _stored(conn_id: str):
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(Connection).filter_by(conn_id=conn_id).one_or_none()
        if row is None:
            return None
        session.expunge(row)
        return row


def _simulated(conn_id: str, port: int) -> dict:
    return {
        "conn_type": "prodoctorov",
        "host": f"http://127.0.0.1:{port}",
        "password": demo_secret(conn_id),
    }


@pytest.fixture
def conn_ids(airflow_db):
    """Fresh connection ids for one test, deleted afterwards."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    suffix = os.urandom(3).hex()
    ids = {name: f"{name}_{suffix}" for name in ("service", "database", "person")}
    yield ids
    with create_session() as session:
        session.query(Connection).filter(Connection.conn_id.in_(ids.values())).delete()


def test_a_run_creates_its_connections_and_the_next_rewrites_them(conn_ids):
    service, database = conn_ids["service"], conn_ids["database"]
    first = RunConnections()
    assert not first.users(service, demo_secret(service))
    first.add(service, _simulated(service, 40001), SIMULATED)
    first.add(database, {"conn_type": "postgres", "host": "/a", "schema": "ident"}, "db")
    first.save()
    stored = _stored(service)
    assert (stored.conn_type, stored.host, stored.password) == (
        "prodoctorov",
        "http://127.0.0.1:40001",
        demo_secret(service),
    )
    assert stored.description == SIMULATED
    assert _stored(database).schema == "ident"

    # The next run: its simulator listens elsewhere; nothing fails on what exists.
    second = RunConnections()
    assert not second.users(service, demo_secret(service))
    second.add(service, _simulated(service, 40002), SIMULATED)
    second.add(database, {"conn_type": "postgres", "host": "/b", "schema": "ident"}, "db")
    second.save()
    assert _stored(service).host == "http://127.0.0.1:40002"
    assert _stored(database).host == "/b"


def test_what_a_person_entered_is_theirs(conn_ids, monkeypatch):
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    person = conn_ids["person"]
    run = RunConnections()
    run.add(person, _simulated(person, 40003), SIMULATED)
    run.save()
    # In the UI, the real service's address and token.
    with create_session() as session:
        row = session.query(Connection).filter_by(conn_id=person).one()
        row.host, row.password = "https://api.prodoctorov.ru", "real-token"

    again = RunConnections()
    assert again.users(person, demo_secret(person))
    assert again.secret(person) == "real-token"
    stored = _stored(person)
    assert (stored.host, stored.password) == ("https://api.prodoctorov.ru", "real-token")

    # A variable is the user's too, whatever the database holds.
    service = conn_ids["service"]
    monkeypatch.setenv(f"AIRFLOW_CONN_{service.upper()}", '{"conn_type": "http"}')
    assert RunConnections().users(service, demo_secret(service))


def test_the_intake_service_reads_its_connections_from_the_metadata_database(
    conn_ids, clinic_db_url, tmp_path
):
    """Secrets and the clinic database entered in Admin -> Connections reach the intake
    service (a process of its own, outside Airflow's components), with no variables."""
    from ident_dev import embedded_pg

    source = conn_ids["service"]
    config = tmp_path / "integrations.yaml"
    config.write_text(
        f"lead_sources:\n  tilda:\n    kind: tilda\n    connection: {source}\n", encoding="utf-8"
    )
    database = conn_ids["database"]
    run = RunConnections()
    run.add(source, {"conn_type": "tilda_webhook", "password": "s3cret"}, "made up")
    run.add(database, json.loads(embedded_pg.airflow_connection(clinic_db_url)), "clinic")
    run.save()

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env["IDENT_INTEGRATIONS_CONFIG"] = str(config)
    log = tmp_path / "intake.log"
    with log.open("wb") as out:
        intake = subprocess.Popen(
            [sys.executable, "-m", "ident_hooks.intake", "--port", str(port)]
            + ["--conn-id", database],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            if intake.poll() is not None:
                pytest.fail(f"the intake exited: {log.read_text()[-2000:]}")
            try:
                return requests.get(f"{url}/health", timeout=2).ok
            except requests.ConnectionError:
                return False

        wait_for("the intake service", up, deadline=time.monotonic() + 60, poll=0.2)
        answer = requests.post(f"{url}/tilda/tilda/s3cret", data={"test": "test"}, timeout=10)
        assert answer.status_code == 200, (answer.status_code, log.read_text()[-2000:])
        lead = {"Name": "Ирина", "Phone": "+7 912 000-11-22", "tranid": f"conn-{source}"}
        assert requests.post(f"{url}/tilda/tilda/s3cret", data=lead, timeout=10).ok
        wrong = requests.post(f"{url}/tilda/tilda/wrong", data={"test": "test"}, timeout=10)
        assert wrong.status_code == 403
    finally:
        intake.terminate()
        intake.wait(timeout=30)
