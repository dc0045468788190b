"""Builders of slot-engine inputs from readable branch-local times."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from ident_hooks.schedule.engine import Schedule, compute_schedule
from ident_hooks.schedule.publish import settings_for

MSK = "Europe/Moscow"
YEKT = "Asia/Yekaterinburg"
# 08:00 in Moscow on 2026-12-01; with the default 2 hours, today's slots start at 10:00.
NOW = dt.datetime(2026, 12, 1, 5, 0, tzinfo=dt.UTC)


def at(local: str, zone: str = MSK) -> pd.Timestamp:
    """A branch-local wall-clock time (``"2026-12-02 09:00"``) as a UTC timestamp."""
    return pd.Timestamp(local).tz_localize(ZoneInfo(zone)).tz_convert("UTC")


def labels(frame: pd.DataFrame, doctor_id: str | None = None, date: str | None = None) -> list:
    """``(branch, date, "HH:MM-HH:MM")`` rows of a result frame, for readable assertions."""
    rows = frame
    if doctor_id is not None:
        rows = rows[rows["doctor_id"] == doctor_id]
    if date is not None:
        rows = rows[rows["local_date"] == date]
    return [
        (str(b), str(d), f"{s}-{e}")
        for b, d, s, e in zip(
            rows["branch_id"],
            rows["local_date"],
            rows["local_start"],
            rows["local_end"],
            strict=True,
        )
    ]


class ClinicData:
    """Doctors, work intervals, busy time and rules, turned into the engine's frames.

    Tests reach the module's helpers through it (``clinic.at``, ``clinic.labels``,
    ``clinic.NOW``) because conftest modules are not importable by name.
    """

    MSK = MSK
    YEKT = YEKT
    NOW = NOW
    at = staticmethod(at)
    labels = staticmethod(labels)

    def __init__(self) -> None:
        self.doctor_rows: dict[str, dict] = {}
        self.work_rows: list[dict] = []
        self.busy_rows: list[dict] = []
        self.rule_rows: list[dict] = []
        self.branch_rows: dict[str, dict] = {}

    def doctor(self, doctor_id: str, *, active: bool = True, specialty: str = "Терапевт"):
        self.doctor_rows[doctor_id] = {
            "doctor_id": doctor_id,
            "full_name": f"Врач {doctor_id}",
            "specialty": specialty,
            "is_active": active,
        }
        return self

    def work(self, doctor_id: str, branch_id: str, start: str, end: str, zone: str = MSK):
        if doctor_id not in self.doctor_rows:
            self.doctor(doctor_id)
        self.branch_rows.setdefault(
            branch_id,
            {"branch_id": branch_id, "name": f"Филиал {branch_id}", "address": f"ул. {branch_id}"},
        )
        self.work_rows.append(
            {
                "doctor_id": doctor_id,
                "branch_id": branch_id,
                "starts_at": at(start, zone),
                "ends_at": at(end, zone),
                "timezone": zone,
            }
        )
        return self

    def busy(self, doctor_id: str, start: str, end: str, zone: str = MSK):
        self.busy_rows.append(
            {"doctor_id": doctor_id, "starts_at": at(start, zone), "ends_at": at(end, zone)}
        )
        return self

    def rule(self, doctor_id: str, *, publish: bool = True, slot_minutes: int | None = None):
        self.rule_rows.append(
            {"doctor_id": doctor_id, "publish": publish, "slot_minutes": slot_minutes}
        )
        return self

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        stamp = pd.DatetimeTZDtype("us", "UTC")
        work = pd.DataFrame(
            self.work_rows, columns=["doctor_id", "branch_id", "starts_at", "ends_at", "timezone"]
        ).astype({"starts_at": stamp, "ends_at": stamp})
        busy = pd.DataFrame(self.busy_rows, columns=["doctor_id", "starts_at", "ends_at"]).astype(
            {"starts_at": stamp, "ends_at": stamp}
        )
        doctors = pd.DataFrame(
            list(self.doctor_rows.values()),
            columns=["doctor_id", "full_name", "specialty", "is_active"],
        )
        rules = pd.DataFrame(self.rule_rows, columns=["doctor_id", "publish", "slot_minutes"])
        return work, busy, doctors, rules

    def branches(self) -> pd.DataFrame:
        return pd.DataFrame(
            list(self.branch_rows.values()), columns=["branch_id", "name", "address"]
        )

    def schedule(
        self, aggregator: str = "prodoctorov", settings: dict | None = None, now=NOW
    ) -> Schedule:
        return compute_schedule(*self.frames(), settings_for(aggregator, settings), now)


@pytest.fixture
def clinic() -> ClinicData:
    return ClinicData()


@pytest.fixture
def unpublished_demo(clinic_conn):
    """The clinic database with a small demo network (6 doctors, 40 days from 08:50 Moscow
    on 2026-12-02) that nothing has been published from yet."""
    from ident_dev import demo

    demo.load(clinic_conn, demo.generate(6, 40, now=dt.datetime(2026, 12, 2, 5, 50, tzinfo=dt.UTC)))
    clinic_conn.execute(
        "truncate integration.publish_log, integration.publish_state, integration.leads,"
        " integration.schedule_state, integration.schedule_cells, integration.publish_budget"
        " cascade"
    )
    clinic_conn.commit()
    return clinic_conn


@pytest.fixture
def service_connection(monkeypatch: pytest.MonkeyPatch):
    """Point an Airflow connection (env ``AIRFLOW_CONN_<ID>``) at a simulator."""

    def point(conn_id: str, base_url: str, secret: str) -> str:
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{conn_id.upper()}",
            json.dumps({"conn_type": "http", "host": base_url, "password": secret}),
        )
        return conn_id

    return point


@pytest.fixture
def started():
    """Start simulators for one test and stop them afterwards."""
    servers = []

    def start(server):
        servers.append(server.start())
        return server

    yield start
    for server in servers:
        server.stop()
