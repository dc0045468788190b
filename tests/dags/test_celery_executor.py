"""The production executor, run for real: DAG runs through Celery, as docker-compose.yaml has it.

The Airflow services of docker-compose.yaml run as local processes (``ident_dev.airflow_stack``):
api-server, scheduler, dag-processor, triggerer and a Celery worker, with Redis as the broker
and the Celery result backend on PostgreSQL. A pull DAG and a publish DAG are unpaused and
triggered through the api-server's REST API; their tasks must run in the worker, and their
data must arrive: the leads in the clinic database, the schedule at the aggregator.

Then, on the same stack, the watcher of the ``leads`` Asset (``NewLeadsTrigger``) in the
real triggerer: a lead asking for a doctor's time, committed straight into
``integration.leads`` as the intake service commits it, must become an asset event of
``leads`` from the trigger, which the scheduler (restarted to create runs, with only the
publish DAG unpaused) turns into one asset-triggered publish run that takes the lead's
time off the schedule at the aggregator.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest

from ident_dev import embedded_pg
from ident_dev.airflow_stack import (
    QUEUE,
    AirflowStack,
    load_demo_clinic,
    stack_with,
    started_simulators,
)
from ident_dev.simulators.catalog import SimulatedService
from ident_hooks.leads.normalise import make_lead
from ident_hooks.leads.store import store_leads
from ident_hooks.triggers import APPLICATION_NAME

PULL, PUBLISH = "pull_leads_flexbe", "publish_schedule_prodoctorov"
SIMULATED = ("flexbe", "prodoctorov")
WATCHED_ASSET = "leads"
PUSHED_SOURCE = "site_form"  # a webhook source of include/integrations.yaml
# Start (~1 min), parsing and both runs take about 2 minutes on two shared cores; the
# scheduler's restart and the watcher's run about one more.
TIMEOUT_SECONDS = 600
# From the lead's commit to the end of the publish run it triggers.
WATCHER_RUN_SECONDS = 90


@pytest.fixture
def clinic(clinic_conn):
    return load_demo_clinic(clinic_conn)


@pytest.fixture
def services(clinic, aggregator_options) -> Iterator[dict[str, SimulatedService]]:
    # gzip, inflated by the simulator: without it the byte budget (issue 17) leaves nothing
    # for an early send right after the first run's full snapshot, and the watcher's run
    # would leave the lead's time to the next 10-minute tick.
    aggregator_options(gzip=True)
    with started_simulators(clinic, SIMULATED, seed=11) as started:
        yield started


@pytest.fixture
def stack(services, clinic_db_url, fresh_db_url, tmp_path) -> Iterator[AirflowStack]:
    with stack_with(
        services,
        SIMULATED,
        tmp_path,
        metadata_url=fresh_db_url,
        clinic_connection=embedded_pg.airflow_connection(clinic_db_url),
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


def _free_cell_days_ahead(received: dict[str, list[dict]], clinic, prodoctorov) -> dict:
    """A free cell at ПроДокторов, picked the same way each run, days away from today's
    edge of the window ("no slots in the next N hours"), with its doctor, branch, times of
    day and start and end as instants."""
    zones = {branch_id: ZoneInfo(zone) for branch_id, _name, zone, *_ in clinic.branches}
    soon = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
    candidates = sorted(
        (cell["dt"], cell["time_start"], cell["time_end"], doctor_id, branch_id)
        for branch_id in zones
        for doctor_id in received
        for cell in prodoctorov.cells(branch_id, doctor_id)
        if cell["free"] and cell["dt"] >= soon
    )
    assert candidates, f"no free cell two days ahead: {received}"
    day, start, end, doctor_id, branch_id = candidates[len(candidates) // 2]
    zone = zones[branch_id]
    return {
        "dt": day,
        "time_start": start,
        "time_end": end,
        "doctor_id": doctor_id,
        "branch_id": branch_id,
        "starts": datetime.fromisoformat(f"{day}T{start}").replace(tzinfo=zone),
        "ends": datetime.fromisoformat(f"{day}T{end}").replace(tzinfo=zone),
    }


def _asset_events(stack: AirflowStack) -> list[dict]:
    """The events of the ``leads`` Asset, oldest first."""
    response = stack.api("GET", "/api/v2/assets/events", params={"limit": 100})
    response.raise_for_status()
    events = [e for e in response.json()["asset_events"] if e["name"] == WATCHED_ASSET]
    return sorted(events, key=lambda event: event["id"])


def _watcher_events(stack: AirflowStack) -> list[dict]:
    """The events of the ``leads`` Asset that came from its watcher's trigger."""
    return [e for e in _asset_events(stack) if (e["extra"] or {}).get("from_trigger")]


def _runs(stack: AirflowStack, dag_id: str) -> list[dict]:
    response = stack.api("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100})
    response.raise_for_status()
    return response.json()["dag_runs"]


def _upstream(stack: AirflowStack, run: dict) -> list[dict]:
    """The asset events a run was created from."""
    response = stack.api(
        "GET", f"/api/v2/dags/{PUBLISH}/dagRuns/{run['dag_run_id']}/upstreamAssetEvents"
    )
    response.raise_for_status()
    return response.json()["asset_events"]


def _watcher_listening(clinic_conn: psycopg.Connection) -> bool:
    """Whether the trigger's connection to the clinic database is open (it LISTENs)."""
    row = clinic_conn.execute(
        "select count(*) from pg_stat_activity where application_name = %s",
        (APPLICATION_NAME,),
    ).fetchone()
    clinic_conn.commit()
    return row[0] > 0


def _check_the_watcher_triggers_a_publish_run(
    stack: AirflowStack, prodoctorov, clinic, clinic_conn: psycopg.Connection, pull_run: str
) -> None:
    received = _received_cells(prodoctorov, clinic)
    cell = _free_cell_days_ahead(received, clinic, prodoctorov)
    # The pull's own announcement is an event of the Asset too, but not the trigger's: the
    # pulled leads name no doctor, so until now the watcher had nothing to fire for. It is
    # read once: Airflow commits a task's outlet events in the transaction that marks the
    # task successful (execution API ``ti_update_state`` ->
    # ``TaskInstance.register_asset_changes_in_db``, airflow/api_fastapi/execution_api/
    # routes/task_instances.py), and fails a task whose outlet Asset is inactive before it
    # runs (task-sdk ``_validate_task_inlets_and_outlets``), so a pull run that finished
    # with announce_leads successful has its event already.
    (announced,) = _asset_events(stack)
    assert (announced["source_dag_id"], announced["source_run_id"]) == (PULL, pull_run)
    assert _watcher_events(stack) == []

    # Only the publish DAG (unpaused: the watcher runs only for an unpaused consumer) may
    # get runs; the one the restarted scheduler creates at once from the clock (catchup
    # off: the latest tick) is left to finish first.
    response = stack.api("PATCH", f"/api/v2/dags/{PULL}", json={"is_paused": True})
    assert response.status_code == 200 and response.json()["is_paused"] is True, response.text
    response = stack.api("GET", "/api/v2/dags", params={"paused": False, "limit": 100})
    response.raise_for_status()
    assert [dag["dag_id"] for dag in response.json()["dags"]] == [PUBLISH]
    stack.restart_scheduler_creating_runs()
    stack.wait_for(
        "the scheduled publish run that the restarted scheduler creates to finish",
        lambda: (
            (runs := _runs(stack, PUBLISH))
            and any(run["run_type"] == "scheduled" for run in runs)
            and all(run["state"] in ("success", "failed") for run in runs)
        ),
        poll=2.0,
    )
    assert all(run["state"] == "success" for run in _runs(stack, PUBLISH))
    stack.wait_for(
        "the watcher in the triggerer to connect", lambda: _watcher_listening(clinic_conn)
    )

    asked = make_lead(
        source=PUSHED_SOURCE,
        external_id="e2e-watcher-1",
        created_at=datetime.now(UTC),
        raw={"id": "e2e-watcher-1"},
        name="Анна",
        phone="+7 916 123-45-67",
        doctor_id=cell["doctor_id"],
        requested_start=cell["starts"],
        requested_end=cell["ends"],
        branch_id=cell["branch_id"],
    )
    store_leads(clinic_conn, [asked])
    clinic_conn.commit()
    committed = time.monotonic()
    (lead_id,) = clinic_conn.execute(
        "select lead_id from integration.leads where source = %s and external_id = %s",
        (PUSHED_SOURCE, asked.external_id),
    ).fetchone()
    clinic_conn.commit()

    def triggered_runs_done() -> list[dict] | None:
        if time.monotonic() - committed > WATCHER_RUN_SECONDS:
            stack.fail(
                f"no asset-triggered {PUBLISH} run succeeded within {WATCHER_RUN_SECONDS} s"
                f" of lead {lead_id}'s commit: events {_watcher_events(stack)},"
                f" runs {_runs(stack, PUBLISH)}\n--- triggerer ---\n"
                + "\n".join(stack.log_text("airflow-triggerer").splitlines()[-60:])
            )
        triggered = [run for run in _runs(stack, PUBLISH) if run["run_type"] == "asset_triggered"]
        consumed = [
            e["id"]
            for r in triggered
            if r["state"] in ("success", "failed")
            for e in _upstream(stack, r)
        ]
        leads_events = [e["id"] for e in _watcher_events(stack)]
        if not leads_events or leads_events[0] not in consumed:
            return None
        return triggered if all(r["state"] in ("success", "failed") for r in triggered) else None

    runs = stack.wait_for("the asset-triggered publish runs", triggered_runs_done, poll=2.0)
    for run in runs:
        if run["state"] != "success":
            stack.fail(f"{run['dag_run_id']} ended {run['state']}")

    # One event of the leads Asset from its trigger, for this lead. The lead holds a
    # doctor's time, so it is a change of the clinic schedule too: that Asset's watcher
    # fires as well, and the two events make one run or two (the second then finds
    # nothing left to publish).
    (event,) = _watcher_events(stack)
    assert event["extra"] == {"from_trigger": True, "payload": {"op": "insert", "lead_id": lead_id}}
    assert event["source_dag_id"] is None and event["source_task_id"] is None
    assert 1 <= len(runs) <= 2
    run = next(r for r in runs if event["id"] in [e["id"] for e in _upstream(stack, r)])
    # A first asset-triggered run consumes every event of its Assets since the DAG was
    # scheduled on them, the pull's announcement (queued for no DAG, the publish DAG being
    # paused then) among them.
    assert announced["id"] in {e["id"] for r in runs for e in _upstream(stack, r)}
    # ... whose task ran in the worker and computed the schedule without the lead's time:
    instances = stack.task_instances(PUBLISH, run["dag_run_id"])
    assert {task: ti["state"] for task, ti in instances.items()} == {"publish": "success"}
    assert {ti["queue"] for ti in instances.values()} == {QUEUE}
    logged = clinic_conn.execute(
        "select status, error, mode from integration.publish_log"
        " where aggregator = 'prodoctorov' and run_id = %s",
        (run["dag_run_id"],),
    ).fetchall()
    clinic_conn.commit()
    assert len(logged) == 1 and logged[0][0] in ("sent", "skipped") and logged[0][1] is None
    # The time the lead asked for is no longer offered at ПроДокторов: the cells over it are
    # busy. Not necessarily one cell starting where the free one did: the engine merges a
    # doctor's adjacent busy time into one busy cell (schedule.engine.compute_schedule,
    # step 3), so a lead right after an appointment extends that appointment's cell.
    that_day = [
        c for c in prodoctorov.cells(cell["branch_id"], cell["doctor_id"]) if c["dt"] == cell["dt"]
    ]
    over_the_lead = [
        c
        for c in that_day
        if c["time_start"] < cell["time_end"] and cell["time_start"] < c["time_end"]
    ]
    assert over_the_lead and not any(c["free"] for c in over_the_lead), that_day


@pytest.mark.slow
def test_pull_and_publish_dags_run_in_the_celery_worker(stack, services, clinic, clinic_conn):
    flexbe, prodoctorov = services["flexbe"].server, services["prodoctorov"].server
    now = datetime.now(UTC)
    # Leads that name no doctor: the watcher of the leads Asset must stay quiet until the
    # last step pushes one that does.
    added = [
        flexbe.add_lead(now - timedelta(minutes=minutes), with_doctor=False)
        for minutes in (50, 35, 20, 5)
    ]
    for dag_id in (PULL, PUBLISH):
        assert stack.wait_for_dag(dag_id)["is_paused"] is True  # as compose creates DAGs
    # The publish DAG is unpaused after the pull: the pull's event of the leads Asset is
    # then queued for no DAG, and the asset-triggered run of the last step is the watcher's.
    stack.unpause(PULL)
    pull_run = _run_to_the_end(stack, PULL)
    stack.unpause(PUBLISH)
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
    # Celery stores a task's result before it logs the task's success line.
    stack.wait_for(
        "the worker to log every Celery task as succeeded",
        lambda: all(
            f"execute_workload[{celery_id}] succeeded" in stack.log_text("airflow-worker")
            for celery_id in celery_ids
        ),
    )

    _check_the_watcher_triggers_a_publish_run(stack, prodoctorov, clinic, clinic_conn, pull_run)
