"""The run command for real: the whole platform on a non-default port runs a DAG to success.

Starts ``python -m ident_dev.devstack`` (what ``scripts/run.sh`` runs) with its own data
folder and its own embedded PostgreSQL, as a user would, then triggers a pull through the
REST API and waits for the task to finish in a real task process. On a port other than
8080 every task used to be killed at start: the workers called the execution API on 8080.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests

from ident_dev.airflow_stack import free_port, wait_for

ROOT = Path(__file__).resolve().parents[1]
DAG_ID = "pull_leads_site_main"


def _waiter(process: subprocess.Popen, output: Path, local: Path):
    """``wait(what, condition, seconds)``: :func:`airflow_stack.wait_for` while the run
    command is up, failing with its output if it exits and with Airflow's log on time-out."""

    def running() -> None:
        if process.poll() is not None:
            tail = output.read_text(errors="replace")[-3000:]
            pytest.fail(f"the run command exited ({process.returncode}):\n{tail}")

    def timed_out(message: str):
        log = local / "airflow.log"
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no log yet)"
        pytest.fail(f"{message}; airflow.log ends:\n{tail}")

    def wait(what: str, condition, seconds: float):
        deadline = time.monotonic() + seconds
        return wait_for(what, condition, deadline=deadline, poll=2.0, check=running, fail=timed_out)

    return wait


def left_behind(local: Path) -> list[str]:
    """What a run command with data folder ``local`` started that is still running (every
    process it starts inherits ``IDENT_LOCAL_DIR``); zombies have exited already."""
    left = []
    for process in psutil.process_iter(["status", "cmdline"]):
        try:
            if process.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if process.environ().get("IDENT_LOCAL_DIR") == str(local):
                left.append(f"{process.pid} {' '.join(process.info['cmdline'] or [])}")
        except psutil.Error:
            continue
    return left


@pytest.mark.slow
def test_run_command_on_another_port_runs_a_dag_to_success(tmp_path):
    port, intake_port = free_port(), free_port()
    local = tmp_path / "local"
    env = {
        key: value
        for key, value in os.environ.items()
        # The test session's own Airflow and clinic databases are not the platform's.
        if not key.startswith(("AIRFLOW", "IDENT_"))
    }
    env.update(IDENT_LOCAL_DIR=str(local), IDENT_DEMO_LEAD_GAP_SECONDS="5")
    output = tmp_path / "run.out"
    with output.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ident_dev.devstack",
                "--port",
                str(port),
                "--intake-port",
                str(intake_port),
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    wait = _waiter(process, output, local)
    try:
        base = f"http://127.0.0.1:{port}"
        wait("the UI", lambda: b"Airflow UI:" in output.read_bytes(), 300)
        password = json.loads((local / "admin-password.json").read_text())["admin"]
        token = requests.post(
            f"{base}/auth/token", json={"username": "admin", "password": password}, timeout=10
        ).json()["access_token"]
        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {token}"
        wait(
            "the DAG to be parsed",
            lambda: api.get(f"{base}/api/v2/dags/{DAG_ID}", timeout=10).ok,
            120,
        )
        triggered = api.post(
            f"{base}/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None}, timeout=10
        )
        assert triggered.ok, triggered.text
        run_id = triggered.json()["dag_run_id"]

        def finished():
            run = api.get(f"{base}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}", timeout=10).json()
            return run["state"] if run["state"] in ("success", "failed") else None

        state = wait("the run to finish", finished, 240)
        tasks = api.get(
            f"{base}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", timeout=10
        ).json()["task_instances"]
        states = {task["task_id"]: task["state"] for task in tasks}
        assert state == "success", states
        assert states["pull_and_store"] == "success"

        # The scheduler's run listener recorded it, finding ident_db in the metadata
        # database (the run command keeps it there only, where Admin → Connections shows it).
        import psycopg

        from ident_dev import embedded_pg

        def recorded():
            with psycopg.connect(embedded_pg.socket_url(local / "pgdata", "ident")) as conn:
                row = conn.execute(
                    "select state from integration.dag_runs where dag_id = %s and run_id = %s",
                    [DAG_ID, run_id],
                ).fetchone()
            return row is not None and row[0] == "success"

        wait("the run recorded by the scheduler's listener", recorded, 60)

        # The intake service came up beside it and takes a Tilda lead, as printed.
        from ident_dev.simulators.catalog import demo_secret

        intake = f"http://127.0.0.1:{intake_port}"
        # Started before Airflow, but nothing so far has shown that it listens.
        wait("the intake service", lambda: requests.get(f"{intake}/health", timeout=10).ok, 60)
        tilda_url = f"{intake}/tilda/tilda/{demo_secret('tilda')}"
        assert f"/tilda/tilda/{demo_secret('tilda')}" in output.read_text()
        assert requests.post(tilda_url, data={"test": "test"}, timeout=10).status_code == 200
        sent = {"Name": "Ирина", "Phone": "+7 912 000-11-22", "tranid": "run-cmd-1"}
        assert requests.post(tilda_url, data=sent, timeout=10).status_code == 200
        tickets = requests.get(
            f"{intake}/GetTickets",
            params={
                "dateTimeFrom": "2000-01-01T00:00:00+00:00",
                "dateTimeTo": "2100-01-01T00:00:00+00:00",
            },
            headers={"IDENT-Integration-Key": demo_secret("intake_tickets")},
            timeout=10,
        )
        assert tickets.ok, tickets.text
        # The demo's past leads of the push sources are served too; ours is among them.
        phones = ["".join(filter(str.isdigit, t["ClientPhone"] or "")) for t in tickets.json()]
        assert sum(phone.endswith("9120001122") for phone in phones) == 1
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 0, output.read_text()[-2000:]
    # Stopped means stopped: nothing it started outlives it (an orphaned scheduler would
    # keep polling a database that is gone).
    assert left_behind(local) == []
