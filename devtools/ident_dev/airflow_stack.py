"""docker-compose.yaml's Airflow, run as local processes: the production executor, for the
end-to-end tests and ``bench/schedule_freshness.py``, which report its failures alike
(``pytest.fail``, ``pytest.skip``).

``airflow_stack`` reads the Airflow services of ``docker-compose.yaml`` — their commands
and environment — and runs each as a process on this machine: api-server, scheduler,
dag-processor, triggerer and the Celery worker, with Debian's ``redis-server`` as the
broker. Settings are taken as the file states them, except what cannot be the same here:
service addresses become loopback addresses on free ports, the file's databases become
the test's (Airflow's metadata and the Celery result backend share one database, as in
the file), its secrets become random values, its container paths become this checkout.
A value that still names a compose service after that mapping stops the start with an
error, so a setting added to the file is either used here or noticed.

Two settings are added that the file does not have: the scheduler does not create runs
from the clock or from asset events (``[scheduler] use_job_schedule = False``), so only
the runs a test triggers run and the test does not depend on the time of day; and tasks
go to a queue of their own that only this stack's worker serves. A test that needs the
scheduler to create runs (asset-triggered ones) restarts it with
``AirflowStack.restart_scheduler_creating_runs``, once it has paused every DAG whose runs
it does not expect.

Every process is stopped — its whole process tree and process group — when the context
ends, also when the test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import psutil
import psycopg
import pytest
import requests
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yaml"
SERVICES = (
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
)
QUEUE = "ident_stack_test"
WORKER_CONCURRENCY = 2  # the machine running the tests has few cores
STOP_GRACE_SECONDS = 20
_VARIABLE = re.compile(r"(?<!\$)\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^${}]*))?\}")


def wait_for(
    description: str,
    probe: Callable[[], Any],
    *,
    deadline: float,
    poll: float = 1.0,
    check: Callable[[], None] | None = None,
    fail: Callable[[str], NoReturn] | None = None,
) -> Any:
    """Poll ``probe`` until it returns something truthy and return that; fail once the
    ``time.monotonic()`` ``deadline`` has passed with the probe asked one last time.

    The one way tests wait for an asynchronous effect (a run, an event, a notification, a
    request a simulator received, a log line): the machine may be busy, so a fixed sleep
    followed by a single read is never enough. ``check`` runs before each probe (e.g. to
    fail at once when a process the effect depends on has exited); ``fail`` reports the
    time-out (default ``pytest.fail``), with whatever diagnostics it adds. A probe that
    cannot reach an HTTP server yet counts as not found.
    """
    while True:
        if check is not None:
            check()
        last_look = time.monotonic() >= deadline
        try:
            found = probe()
        except requests.RequestException:
            found = None
        if found:
            return found
        if last_look:
            (fail or pytest.fail)(f"timed out waiting for {description}")
        time.sleep(max(0.0, min(poll, deadline - time.monotonic())))


def redis_server() -> str:
    """Debian's redis-server; skips only where it is missing and cannot be installed."""
    found = shutil.which("redis-server")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        pytest.fail(
            "redis-server is not installed but can be: scripts/test.sh installs it "
            "(apt-get install redis-server)"
        )
    pytest.skip(
        "redis-server is not installed and cannot be installed without root "
        "(scripts/test.sh installs it when run as root)"
    )


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    """Compose's ``${NAME}``, ``${NAME:-default}``, ``${NAME:?error}``, nested ones included."""

    def resolve(match: re.Match) -> str:
        name, op, arg = match["name"], match["op"] or "", match["arg"] or ""
        present = name in variables and (variables[name] != "" or not op.startswith(":"))
        if present:
            return variables[name]
        if op.endswith("?"):
            raise KeyError(f"{name} must be set: {arg}")
        return arg if op.endswith("-") else ""

    while True:
        resolved = _VARIABLE.sub(resolve, value)
        if resolved == value:
            return resolved.replace("$$", "$")
        value = resolved


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _with_address(url: str, host: str, port: int) -> str:
    """``url`` pointed at ``host:port``, its scheme, credentials and path kept."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{host}:{port}" if credentials else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _sqlalchemy_url(libpq_url: str) -> str:
    return urlunsplit(urlsplit(libpq_url)._replace(scheme="postgresql+psycopg"))


def _database_of(url: str) -> tuple[str | None, str]:
    parts = urlsplit(url.removeprefix("db+"))
    return parts.hostname, parts.path.lstrip("/")


@dataclass
class StackPorts:
    redis: int = field(default_factory=free_port)
    api: int = field(default_factory=free_port)
    scheduler_health: int = field(default_factory=free_port)
    worker_logs: int = field(default_factory=free_port)
    trigger_logs: int = field(default_factory=free_port)


def compose_environment(
    service: dict[str, Any],
    *,
    ports: StackPorts,
    metadata_url: str,
    clinic_connection: str,
    passwords_file: Path,
    secret_values: Mapping[str, str],
) -> dict[str, str]:
    """One compose service's environment, mapped onto this machine as the module says."""
    compose_env = {key: str(value) for key, value in service["environment"].items()}

    def stated(key: str) -> str:  # a value as the file states it, defaults filled in
        return interpolate(compose_env[key], {})

    sql_conn = _sqlalchemy_url(metadata_url)
    result_backend = stated("AIRFLOW__CELERY__RESULT_BACKEND")
    if not result_backend.startswith("db+") or _database_of(result_backend) != _database_of(
        stated("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
    ):
        raise AssertionError(f"unexpected Celery result backend in compose: {result_backend}")
    mapped = {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sql_conn,
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + sql_conn,
        "AIRFLOW__CELERY__BROKER_URL": _with_address(
            stated("AIRFLOW__CELERY__BROKER_URL"), "127.0.0.1", ports.redis
        ),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": _with_address(
            stated("AIRFLOW__CORE__EXECUTION_API_SERVER_URL"), "127.0.0.1", ports.api
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
        "AIRFLOW_CONN_IDENT_DB": clinic_connection,
        "PYTHONPATH": str(ROOT / "plugins"),  # the image mounts ./plugins there
    }
    env = {key: mapped.get(key) or secret_values.get(key) or stated(key) for key in compose_env}
    leftovers = {
        key: value
        for key, value in env.items()
        if re.search(r"(//|@)(postgres|redis|airflow-[a-z-]+)(:\d|/|$)|/opt/airflow", value)
    }
    if leftovers:
        raise AssertionError(f"compose settings not mapped to this machine: {leftovers}")
    return env


@dataclass
class AirflowStack:
    folder: Path
    base_url: str
    username: str
    password: str
    metadata_url: str
    deadline: float
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    launches: dict[str, tuple[list[str], dict[str, str]]] = field(default_factory=dict)
    _token: str | None = None

    # -- diagnostics ---------------------------------------------------
    def log_path(self, name: str) -> Path:
        return self.folder / f"{name}.log"

    def log_text(self, name: str) -> str:
        path = self.log_path(name)
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def diagnostics(self, lines: int = 25) -> str:
        parts = []
        for name in self.processes:
            tail = "\n".join(self.log_text(name).splitlines()[-lines:])
            parts.append(f"--- {name} (last {lines} lines of {self.log_path(name)}) ---\n{tail}")
        return "\n".join(parts)

    def fail(self, message: str) -> NoReturn:
        pytest.fail(f"{message}\n{self.diagnostics()}", pytrace=False)

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                self.fail(f"{name} exited with {process.returncode}")

    def wait_for(
        self, description: str, probe, *, poll: float = 1.0, within: float | None = None
    ) -> Any:
        """Poll ``probe`` until it returns something truthy, within ``within`` seconds (if
        given) and the stack's deadline; every service must stay up meanwhile."""
        deadline = (
            self.deadline if within is None else min(self.deadline, time.monotonic() + within)
        )
        return wait_for(
            description,
            probe,
            deadline=deadline,
            poll=poll,
            check=self.check_alive,
            fail=self.fail,
        )

    # -- processes -----------------------------------------------------
    def launch(self, name: str, command: list[str], env: dict[str, str]) -> None:
        """Start a service in a session of its own, its output appended to its log."""
        self.launches[name] = (command, env)
        with self.log_path(name).open("ab") as log:
            self.processes[name] = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def restart_scheduler_creating_runs(self) -> None:
        """Restart the scheduler with ``use_job_schedule`` on, as compose runs it: it then
        creates runs from asset events and from the clock for every unpaused DAG."""
        name = "airflow-scheduler"
        with psycopg.connect(self.metadata_url) as meta:
            (last_job,) = meta.execute(
                "select coalesce(max(id), 0) from job where job_type = 'SchedulerJob'"
            ).fetchone()
        _stop([self.processes.pop(name)])
        command, env = self.launches[name]
        self.launch(name, command, {**env, "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "True"})

        def heartbeating() -> bool:
            with psycopg.connect(self.metadata_url) as meta:
                return bool(
                    meta.execute(
                        "select 1 from job where job_type = 'SchedulerJob' and id > %s"
                        " and state = 'running' and latest_heartbeat > start_date",
                        (last_job,),
                    ).fetchone()
                )

        self.wait_for("the restarted scheduler to heartbeat", heartbeating)

    # -- REST API ------------------------------------------------------
    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        if self._token is None:
            response = requests.post(
                f"{self.base_url}/auth/token",
                json={"username": self.username, "password": self.password},
                timeout=30,
            )
            response.raise_for_status()
            self._token = response.json()["access_token"]
        headers = {"Authorization": f"Bearer {self._token}"}
        return requests.request(
            method, f"{self.base_url}{path}", headers=headers, timeout=30, **kwargs
        )

    def wait_for_dag(self, dag_id: str) -> dict:
        """The DAG as the api-server shows it, once the dag-processor has parsed it."""

        def parsed() -> dict | None:
            response = self.api("GET", f"/api/v2/dags/{dag_id}")
            return response.json() if response.status_code == 200 else None

        return self.wait_for(f"the dag-processor to parse {dag_id}", parsed)

    def unpause(self, dag_id: str) -> None:
        response = self.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})
        assert response.status_code == 200, response.text
        assert response.json()["is_paused"] is False

    def trigger(self, dag_id: str) -> str:
        response = self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None})
        assert response.status_code == 200, response.text
        return response.json()["dag_run_id"]

    def wait_for_run(self, dag_id: str, run_id: str) -> dict:
        def finished() -> dict | None:
            response = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
            response.raise_for_status()
            run = response.json()
            return run if run["state"] in ("success", "failed") else None

        return self.wait_for(f"run {run_id} of {dag_id} to finish", finished, poll=2.0)

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict]:
        response = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        response.raise_for_status()
        return {ti["task_id"]: ti for ti in response.json()["task_instances"]}


def _stop(processes: list[subprocess.Popen]) -> None:
    """Terminate each process with every descendant and its process group, then kill."""
    tree: list[psutil.Process] = []
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            parent = psutil.Process(process.pid)
            tree.extend([parent, *parent.children(recursive=True)])
    for process in processes:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)
    for member in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.terminate()
    _, alive = psutil.wait_procs(tree, timeout=STOP_GRACE_SECONDS)
    for process in processes:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
    for member in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    psutil.wait_procs(alive, timeout=10)
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)


@contextlib.contextmanager
def airflow_stack(
    folder: Path,
    *,
    metadata_url: str,
    clinic_connection: str,
    extra_env: Mapping[str, str],
    timeout_seconds: float,
) -> Generator[AirflowStack]:
    """Run compose's Airflow services here; ``metadata_url`` names an empty database."""
    deadline = time.monotonic() + timeout_seconds
    redis_binary = redis_server()
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    ports = StackPorts()
    home = folder / "airflow-home"
    home.mkdir(parents=True)
    password = secrets.token_urlsafe(12)
    passwords_file = folder / "passwords.json"
    secret_values = {
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(48),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(24),
    }
    environments = {
        name: compose_environment(
            compose["services"][name],
            ports=ports,
            metadata_url=metadata_url,
            clinic_connection=clinic_connection,
            passwords_file=passwords_file,
            secret_values=secret_values,
        )
        for name in SERVICES
    }
    username = environments["airflow-apiserver"]["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"]
    username = username.split(",")[0].split(":")[0]
    passwords_file.write_text(json.dumps({username: password}), encoding="utf-8")
    local = {
        # What the image and its volumes provide in compose.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        # Ports that are fixed in compose (one service per container) and shared here.
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(ports.scheduler_health),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(ports.worker_logs),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(ports.trigger_logs),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
        # Added for tests (see the module docstring).
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": QUEUE,
    }
    base_env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_"))
    }
    stack = AirflowStack(
        folder=folder,
        base_url=f"http://127.0.0.1:{ports.api}",
        username=username,
        password=password,
        metadata_url=metadata_url,
        deadline=deadline,
    )
    try:
        with stack.log_path("redis").open("wb") as log:
            stack.processes["redis"] = subprocess.Popen(
                [
                    *(redis_binary, "--bind", "127.0.0.1", "--port", str(ports.redis)),
                    *("--save", "", "--appendonly", "no", "--dir", str(folder)),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        migrate_env = {**base_env, **environments["airflow-scheduler"], **local}
        try:
            migrated = subprocess.run(
                [sys.executable, "-m", "airflow", "db", "migrate"],
                env=migrate_env,
                capture_output=True,
                text=True,
                timeout=max(1.0, deadline - time.monotonic()),
            )
        except subprocess.TimeoutExpired:
            stack.fail("airflow db migrate did not finish in time")
        if migrated.returncode != 0:
            stack.fail(f"airflow db migrate failed:\n{migrated.stdout}\n{migrated.stderr}")
        for name in SERVICES:
            command = compose["services"][name]["command"].split()
            if name == "airflow-apiserver":
                command += ["--host", "127.0.0.1", "--port", str(ports.api), "--workers", "1"]
            if name == "airflow-worker":
                command += ["--queues", QUEUE]
            env = {**base_env, **environments[name], **local, **extra_env}
            stack.launch(name, [sys.executable, "-m", "airflow", *command], env)

        def healthy() -> bool:
            response = requests.get(f"{stack.base_url}/api/v2/monitor/health", timeout=5)
            if response.status_code != 200:
                return False
            components = response.json()
            return all(
                (components.get(part) or {}).get("status") == "healthy"
                for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
            )

        stack.wait_for("the api-server, scheduler, triggerer and dag-processor", healthy)
        stack.wait_for(
            "the Celery worker to connect to the broker",
            lambda: " ready." in stack.log_text("airflow-worker"),
        )
        yield stack
    finally:
        _stop(list(stack.processes.values()))


# -- what the whole-stack tests share ---------------------------------------------------


def load_demo_clinic(conn: psycopg.Connection):
    """A small demo clinic (6 doctors, 10 days from now) with no leads, nothing published."""
    from ident_dev import demo

    network = demo.generate(6, 10)
    demo.load(conn, network)
    conn.execute(
        "truncate integration.leads, integration.lead_rejects, integration.publish_log,"
        " integration.publish_state, integration.schedule_state, integration.schedule_cells,"
        " integration.publish_budget cascade"
    )
    conn.commit()
    return network


@contextlib.contextmanager
def started_simulators(clinic, conn_ids: tuple[str, ...], *, seed: int) -> Generator[dict]:
    """The simulators of ``conn_ids`` (simulators.catalog), started for the clinic's doctors."""
    from ident_dev.simulators.catalog import build_simulators

    doctors = [(doctor_id, name) for doctor_id, name, *_ in clinic.doctors]
    built = build_simulators(doctors, [branch_id for branch_id, *_ in clinic.branches], seed=seed)
    for conn_id in conn_ids:
        built[conn_id].server.start()
    try:
        yield built
    finally:
        for conn_id in conn_ids:
            built[conn_id].server.stop()


def stack_with(services: Mapping, conn_ids: tuple[str, ...], folder: Path, **options: Any):
    """:func:`airflow_stack` with the connections of ``conn_ids`` pointed at their simulators."""
    return airflow_stack(
        folder,
        extra_env={services[c].env_var: services[c].airflow_connection for c in conn_ids},
        **options,
    )
