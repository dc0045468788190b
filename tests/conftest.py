"""Test harness: a real PostgreSQL and a real Airflow metadata database per session.

The server is the embedded one (``.local/test-pgdata``) unless ``IDENT_TEST_DB_URL``
names another; either way the session creates its own ``ident_test_*`` and
``airflow_test_*`` databases and drops them at the end. Airflow is configured the
standard way, through ``AIRFLOW__*``, ``AIRFLOW_CONN_*`` and ``AIRFLOW_VAR_*``
environment variables, before anything imports it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))

from ident_dev import embedded_pg  # noqa: E402
from ident_hooks.config import CONFIG_PATH_VARIABLE, DEFAULT_CONFIG_PATH  # noqa: E402

_SESSION = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
_state: dict[str, object] = {}


def _url_with_database(url: str, database: str, scheme: str | None = None) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme=scheme or parts.scheme, path=f"/{database}"))


def pytest_configure(config: pytest.Config) -> None:
    external = os.environ.get("IDENT_TEST_DB_URL")
    clinic_db, airflow_db = f"ident_test_{_SESSION}", f"airflow_test_{_SESSION}"
    if external:
        admin_url = external
        clinic_url = _url_with_database(external, clinic_db)
        metadata_url = _url_with_database(external, airflow_db, "postgresql+psycopg")
    else:
        datadir = ROOT / ".local" / "test-pgdata"
        _state["server"] = embedded_pg.start(datadir, stop_on_exit=True)
        admin_url = embedded_pg.socket_url(datadir, "postgres")
        clinic_url = embedded_pg.socket_url(datadir, clinic_db)
        metadata_url = f"postgresql+psycopg://postgres@/{airflow_db}?host={datadir}"
    for database in (clinic_db, airflow_db):
        embedded_pg.ensure_database(admin_url, database, recreate=True)
    _state.update(admin_url=admin_url, databases=(clinic_db, airflow_db), clinic_url=clinic_url)

    airflow_home = Path(tempfile.mkdtemp(prefix="airflow_home_"))
    os.environ.update(
        {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
            "AIRFLOW_CONN_IDENT_DB": embedded_pg.airflow_connection(clinic_url),
            "PYTHONPATH": str(ROOT / "plugins"),
        }
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    if "admin_url" not in _state:
        return
    if "airflow.settings" in sys.modules:
        # Close Airflow's pooled connections before their database is dropped.
        sys.modules["airflow.settings"].dispose_orm()
    for database in _state["databases"]:
        embedded_pg.drop_database(_state["admin_url"], database)
    if "server" in _state:
        _state["server"].cleanup()


@pytest.fixture(scope="session")
def clinic_db_url() -> str:
    """The session's clinic database, migrated once."""
    from ident_hooks.db import prepare_database

    url = _state["clinic_url"]
    with psycopg.connect(url) as conn:
        prepare_database(conn)
    return url


@pytest.fixture
def clinic_conn(clinic_db_url: str) -> Iterator[psycopg.Connection]:
    """A connection to the clinic database with the clinic tables emptied first."""
    with psycopg.connect(clinic_db_url) as conn:
        conn.execute(
            "truncate clinic.appointments, clinic.work_intervals, clinic.export_rules,"
            " clinic.export_settings, clinic.doctors, clinic.branches cascade"
        )
        conn.commit()
        yield conn


@pytest.fixture
def fresh_db_url() -> Iterator[str]:
    """An empty database of its own, dropped after the test."""
    name = f"ident_fresh_{uuid.uuid4().hex[:10]}"
    admin_url = _state["admin_url"]
    embedded_pg.ensure_database(admin_url, name)
    yield _url_with_database(admin_url, name)
    embedded_pg.drop_database(admin_url, name)


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """Airflow's metadata database, migrated once per session (needed by dag.test())."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        env=os.environ.copy(),
        capture_output=True,
    )


@pytest.fixture
def point_ident_db(monkeypatch: pytest.MonkeyPatch):
    """Point the ``ident_db`` Airflow connection at another database for one test."""

    def point(url: str) -> None:
        monkeypatch.setenv("AIRFLOW_CONN_IDENT_DB", embedded_pg.airflow_connection(url))

    return point


@pytest.fixture
def aggregator_options(monkeypatch: pytest.MonkeyPatch, tmp_path):
    """Run with include/integrations.yaml plus ``options`` on every aggregator instance
    (``gzip``, ``max_request_bytes`` ...), through ``IDENT_INTEGRATIONS_CONFIG``."""

    def configure(**options) -> None:
        config = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))
        for entry in config["aggregators"].values():
            entry.update(options)
        path = tmp_path / f"integrations-{len(list(tmp_path.glob('integrations-*')))}.yaml"
        path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
        monkeypatch.setenv(CONFIG_PATH_VARIABLE, str(path))

    return configure
