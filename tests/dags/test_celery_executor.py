"""The production executor, run for real: DAG runs through Celery, as docker-compose.yaml has it.

The Airflow services of docker-compose.yaml run as local processes (``tests/airflow_stack.py``):
api-server, scheduler, dag-processor, triggerer and a Celery worker, with Redis as the broker
and the Celery result backend on PostgreSQL. A pull DAG and a publish DAG are unpaused and
triggered through the api-server's REST API; their tasks must run in the worker, and their
data must arrive: the leads in the clinic database, the schedule at the aggregator.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from airflow_stack import QUEUE, AirflowStack, airflow_stack

from ident_hooks import demo, embedded_pg
from ident_hooks.simulators.catalog import SimulatedService, build_simulators

PULL, PUBLISH = "pull_leads_flexbe", "publish_schedule_prodoctorov"
SIMULATED = ("flexbe", "prodoctorov")
# Start (~1 min), parsing and both runs take about 2 minutes on two shared cores.
TIMEOUT_SECONDS = 600


@pytest.fixture
def clinic(clinic_conn):
    network = demo.generate(6, 10)
    demo.load(clinic_conn, network)
    clinic_conn.execute(
        "truncate integration.leads, integration.lead_rejects,"
        " integration.publish_log, integration.publish_state"
    )
    clinic_conn.commit()
    return network


@pytest.fixture
def services(clinic) -> Iterator[dict[str, SimulatedService]]:
    doctors = [(doctor_id, name) for doctor_id, name, *_ in clinic.doctors]
    built = build_simulators(doctors, [branch_id for branch_id, *_ in clinic.branches], seed=11)
    for conn_id in SIMULATED:
        built[conn_id].server.start()
    yield built
    for conn_id in SIMULATED:
        built[conn_id].server.stop()


@pytest.fixture
def stack(services, clinic_db_url, fresh_db_url, tmp_path) -> Iterator[AirflowStack]:
    with airflow_stack(
        tmp_path,
        metadata_url=fresh_db_url,
        clinic_connection=embedded_pg.airflow_connection(clinic_db_url),
        extra_env={services[c].env_var: services[c].airflow_connection for c in SIMULATED},
        timeout_seconds=TIMEOUT_SECONDS,
    ) as running:
        yield running


def _run_to_the_end(stack: AirflowStack, dag_id: str) -> str:
    run_id = stack.trigger(dag_id)
    state = stack.wait_for_run(dag_id, run_id)["state"]
    if state != "success":
        stack.fail(f"{dag_id} run {run_id} ended {state}: {stack.task_instances(dag_id, run_id)}")
    return run_id


def _received_cells(prodoctorov, clinic) -> dict[str, list[dict]]:
    """Each clinic doctor's cells as ПроДокторов now shows them, over all branches."""
    return {
        doctor_id: [
            cell
            for branch_id, *_ in clinic.branches
            for cell in prodoctorov.cells(branch_id, doctor_id)
        ]
        for doctor_id, *_ in clinic.doctors
    }


def _celery_tasks_done(stack: AirflowStack, run_ids: list[str]) -> list[str] | None:
    """The Celery task ids of the runs' task instances, once the result backend has
    each as SUCCESS (the task instance is marked done a moment before its Celery task)."""
    with psycopg.connect(stack.metadata_url) as meta:
        rows = meta.execute(
            "select ti.external_executor_id, result.status from task_instance ti"
            " left join celery_taskmeta result on result.task_id = ti.external_executor_id"
            " where ti.run_id = any(%s)",
            (run_ids,),
        ).fetchall()
    done = all(celery_id and status == "SUCCESS" for celery_id, status in rows)
    return [celery_id for celery_id, _ in rows] if done else None


@pytest.mark.slow
def test_pull_and_publish_dags_run_in_the_celery_worker(stack, services, clinic, clinic_conn):
    flexbe, prodoctorov = services["flexbe"].server, services["prodoctorov"].server
    now = datetime.now(UTC)
    added = [flexbe.add_lead(now - timedelta(minutes=minutes)) for minutes in (50, 35, 20, 5)]
    for dag_id in (PULL, PUBLISH):
        assert stack.wait_for_dag(dag_id)["is_paused"] is True  # as compose creates DAGs
        stack.unpause(dag_id)

    pull_run = _run_to_the_end(stack, PULL)
    publish_run = _run_to_the_end(stack, PUBLISH)

    # The data arrived: every lead stored once, the cursor kept through the api-server ...
    stored = clinic_conn.execute(
        "select external_id from integration.leads where source = 'flexbe'"
    ).fetchall()
    clinic_conn.commit()
    assert sorted(row[0] for row in stored) == sorted(str(lead["id"]) for lead in added)
    cursor = stack.api("GET", "/api/v2/variables/leads_cursor_flexbe")
    assert cursor.status_code == 200 and cursor.json()["value"], cursor.text
    # ... and the schedule of every doctor at ПроДокторов, logged under the triggered run.
    log = clinic_conn.execute(
        "select status, doctors, free_slots, http_status from integration.publish_log"
        " where aggregator = 'prodoctorov' and run_id = %s",
        (publish_run,),
    ).fetchall()
    clinic_conn.commit()
    received = _received_cells(prodoctorov, clinic)
    assert all(received.values()), f"doctors without a schedule: {received}"
    free_cells = sum(cell["free"] for cells in received.values() for cell in cells)
    assert free_cells > 0
    assert log == [("sent", len(clinic.doctors), free_cells, 204)]

    # The worker ran every task: sent to its queue, as Celery tasks it reported done.
    runs = {PULL: pull_run, PUBLISH: publish_run}
    expected = {
        PULL: {"pull_and_store", "stored_new_or_changed", "announce_leads"},
        PUBLISH: {"publish"},
    }
    for dag_id, run_id in runs.items():
        instances = stack.task_instances(dag_id, run_id)
        assert {task: ti["state"] for task, ti in instances.items()} == dict.fromkeys(
            expected[dag_id], "success"
        )
        assert {ti["queue"] for ti in instances.values()} == {QUEUE}
    celery_ids = stack.wait_for(
        "the worker to report every Celery task done",
        lambda: _celery_tasks_done(stack, list(runs.values())),
    )
    assert len(celery_ids) == 4
    worker_log = stack.log_text("airflow-worker")
    assert all(f"execute_workload[{celery_id}] succeeded" in worker_log for celery_id in celery_ids)
