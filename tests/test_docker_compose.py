"""The production docker-compose file keeps the shape Airflow 3.3's official one has."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yaml"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def test_services_of_a_celery_deployment(compose):
    assert set(compose["services"]) == {
        "postgres",
        "redis",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-worker",
        "airflow-triggerer",
        "airflow-init",
        "intake",
    }
    commands = {name: svc.get("command") for name, svc in compose["services"].items()}
    assert commands["airflow-apiserver"] == "api-server"
    assert commands["airflow-worker"] == "celery worker"
    # Pushed leads come in through our own service, not the Airflow api-server.
    assert commands["intake"].startswith("python -m ident_hooks.intake")
    assert compose["services"]["intake"]["ports"] == ["8091:8091"]


def test_every_airflow_service_shares_the_essentials(compose):
    for name, service in compose["services"].items():
        if not name.startswith("airflow-"):
            continue
        env = service["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false", name
        assert "JWT_SECRET" in env["AIRFLOW__API_AUTH__JWT_SECRET"], name
        assert "SECRET_KEY" in env["AIRFLOW__API__SECRET_KEY"], name
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].endswith("/execution/"), name
        assert "ident" in env["AIRFLOW_CONN_IDENT_DB"], name
        assert service["build"] == ".", name


def test_image_is_airflow_3_3_2_plus_our_pins():
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "FROM apache/airflow:3.3.2" in dockerfile
    assert "requirements.txt" in dockerfile


def test_init_applies_clinic_migrations(compose):
    init = "\n".join(compose["services"]["airflow-init"]["command"])
    assert "ident_hooks.db --create-database" in init


def _compose_cli() -> list[str] | None:
    """The compose CLI here: Docker's plugin (v2) or, failing that, Debian's docker-compose
    (v1, which scripts/test.sh installs where it can)."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def _compose_config(**variables: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*_compose_cli(), "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **variables},
    )


needs_compose = pytest.mark.skipif(
    _compose_cli() is None, reason="neither docker compose nor docker-compose is installed"
)


@needs_compose
def test_docker_compose_config_validates():
    result = _compose_config(
        AIRFLOW__API_AUTH__JWT_SECRET="test-secret",
        AIRFLOW__API__SECRET_KEY="test-key",
        IDENT_DB_URL="postgresql://airflow:pw@postgres:5432/ident",
    )
    assert result.returncode == 0, result.stderr


@needs_compose
def test_docker_compose_refuses_to_run_without_the_shared_secrets():
    result = _compose_config(AIRFLOW__API__SECRET_KEY="test-key")
    assert result.returncode != 0
    assert "set a long random JWT secret in .env" in result.stderr


def test_the_celery_executor_test_runs_every_long_running_airflow_service(compose, tmp_path):
    """tests/dags/test_celery_executor.py runs these services with these settings, mapped
    to this machine; a setting it could not map would stop it (checked here quickly)."""
    from ident_dev.airflow_stack import SERVICES, StackPorts, compose_environment

    long_running = {name for name in compose["services"] if name.startswith("airflow-")}
    assert set(SERVICES) == long_running - {"airflow-init"}
    ports = StackPorts()
    for name in SERVICES:
        env = compose_environment(
            compose["services"][name],
            ports=ports,
            metadata_url="postgresql://postgres@/airflow_x?host=/tmp/pg",
            clinic_connection='{"conn_type": "postgres"}',
            passwords_file=tmp_path / "passwords.json",
            secret_values={"AIRFLOW__API_AUTH__JWT_SECRET": "j", "AIRFLOW__API__SECRET_KEY": "k"},
        )
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__CELERY__BROKER_URL"] == f"redis://:@127.0.0.1:{ports.redis}/0"
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == (
            "db+postgresql+psycopg://postgres@/airflow_x?host=/tmp/pg"
        )
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == (
            f"http://127.0.0.1:{ports.api}/execution/"
        )
