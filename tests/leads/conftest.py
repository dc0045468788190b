"""Lead-source fixtures: the clinic's doctors, simulators on loopback and real clients.

A client is the project's ``ServiceClient`` on an Airflow connection injected as
``AIRFLOW_CONN_<ID>`` that points at a running simulator; back-off sleeps are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from ident_dev.simulators.base import SimulatorServer
from ident_hooks.config import load_config
from ident_hooks.http_client import ServiceClient
from ident_hooks.leads.normalise import DoctorMatcher

DOCTORS = [
    ("doc-0001", "Петров Геннадий Андреевич"),
    ("doc-0002", "Иванова Мария Сергеевна"),
    ("doc-0003", "Иванова Анна Олеговна"),
    ("doc-0004", "Семёнов Илья Игоревич"),
    ("doc-0005", "Римская-Корсакова Ольга Павловна"),
]


class ManualClock:
    """A clock the test moves by hand (for the 10-minute acknowledgement rule)."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def doctors() -> list[tuple[str, str]]:
    return list(DOCTORS)


@pytest.fixture
def matcher() -> DoctorMatcher:
    return DoctorMatcher(DOCTORS)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 11, 26, 9, 0, tzinfo=UTC))


@pytest.fixture
def running() -> Iterator[Callable[[SimulatorServer], SimulatorServer]]:
    """Start simulators for one test and stop them afterwards."""
    started: list[SimulatorServer] = []

    def start(simulator: SimulatorServer) -> SimulatorServer:
        started.append(simulator.start())
        return simulator

    yield start
    for simulator in started:
        simulator.stop()


@pytest.fixture
def client_for(monkeypatch: pytest.MonkeyPatch) -> Callable[..., ServiceClient]:
    """``client_for(simulator, source, secret, path="")``: a ServiceClient for the source."""
    clients: list[ServiceClient] = []

    def make(simulator: SimulatorServer, source: str, secret: str, path: str = "") -> ServiceClient:
        conn_id = f"leads_{source}_{len(clients)}"
        connection = {"conn_type": "http", "host": simulator.base_url + path, "password": secret}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))
        client = (
            load_config()
            .lead_source(source)
            .spec.connector_class()
            .client(conn_id, backoff_seconds=0, sleep=lambda _: None)
        )
        clients.append(client)
        return client

    return make
