"""The production docker-compose file keeps the shape Airflow 3.3's official one has."""

from __future__ import annotations

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
    }
    commands = {name: svc.get("command") for name, svc in compose["services"].items()}
    assert commands["airflow-apiserver"] == "api-server"
    assert commands["airflow-worker"] == "celery worker"


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


def _compose_cli() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _compose_cli(), reason="the docker compose CLI plugin is not installed")
def test_docker_compose_config_validates(tmp_path):
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={
            "AIRFLOW__API_AUTH__JWT_SECRET": "test-secret",
            "AIRFLOW__API__SECRET_KEY": "test-key",
            "PATH": "/usr/bin:/bin",
        },
    )
    assert result.returncode == 0, result.stderr
