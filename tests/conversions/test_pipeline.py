"""The pipeline every conversion sink runs through, on real dag.test() runs of
send_conversions_<sink> and a pinned clock.

The service here is a stand-in written for this test only (:class:`AcceptingService`,
talking to nothing): it accepts the events that carry a Metrica ClientID in one upload and
finishes that upload when followed. What the real connectors send over the wire is tested
with their simulators beside this file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import ClassVar
from zoneinfo import ZoneInfo

import pytest
import time_machine

from ident_hooks.config import load_config
from ident_hooks.conversions import (
    ConversionConnector,
    ConversionEvent,
    ConversionRefused,
    Delivery,
    Upload,
)
from ident_hooks.registry import YANDEX_METRICA_OAUTH, ConversionSinkKind

MOSCOW = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=MOSCOW)
DAY = timedelta(days=1)
CLIENT_ID = "1700000000123456789"


class AcceptingService(ConversionConnector):
    """Accepts what has a ClientID, one upload per call; refuses when told to."""

    link_window = timedelta(days=21)
    auth = YANDEX_METRICA_OAUTH
    received: ClassVar[list[list[ConversionEvent]]] = []
    followed: ClassVar[list[str]] = []
    refuse: ClassVar[bool] = False

    def deliver(self, events: Sequence[ConversionEvent], now: datetime) -> list[Delivery]:
        if self.refuse:
            raise ConversionRefused("goal lead_created is not in counter 44147844")
        AcceptingService.received.append(list(events))
        carried = tuple(event for event in events if event.ym_client_id)
        if not carried:
            return []
        upload = Upload(f"u{len(self.received)}", "offline_conversions", len(carried))
        return [Delivery(upload, carried)]

    def follow(self, upload: Upload) -> Upload:
        AcceptingService.followed.append(upload.upload_id)
        return replace(
            upload, status="PROCESSED", finished=True, line_quantity=upload.rows_sent,
            linked_quantity=upload.rows_sent - 1, user_not_found_quantity=1,
            goal_not_found_quantity=0,
        )  # fmt: skip


@pytest.fixture
def service(monkeypatch, airflow_db):
    monkeypatch.setattr(ConversionSinkKind, "connector_class", lambda kind: AcceptingService)
    monkeypatch.setattr(AcceptingService, "received", [])
    monkeypatch.setattr(AcceptingService, "followed", [])
    monkeypatch.setattr(AcceptingService, "refuse", False)
    # Nothing listens there, and nothing is sent.
    monkeypatch.setenv(
        "AIRFLOW_CONN_YANDEX_METRICA",
        json.dumps({"conn_type": "yandex_metrica", "host": "http://127.0.0.1:9/", "password": "k"}),
    )
    return AcceptingService


def _run(dag_id: str, at: datetime):
    from airflow.dag_processing.dagbag import DagBag

    with time_machine.travel(at, tick=True):
        return DagBag().get_dag(dag_id).test()


def _sent(conn) -> list[tuple]:
    rows = conn.execute(
        "select event, lead_id, appointment_id, occurred_at, amount, upload_id"
        " from integration.conversions_sent where sink = 'yandex_metrica'"
        " order by occurred_at, event"
    ).fetchall()
    conn.commit()
    return rows


def _uploads(conn) -> list[tuple]:
    rows = conn.execute(
        "select upload_id, rows_sent, status, finished, linked_quantity, user_not_found_quantity"
        " from integration.conversion_uploads where sink = 'yandex_metrica' order by upload_id"
    ).fetchall()
    conn.commit()
    return rows


def test_a_run_sends_what_is_new_records_it_and_the_next_run_sends_nothing_again(
    service, clinic_data, conversions_db
):
    sink = load_config().conversion_sink("yandex_metrica")
    lead = clinic_data.lead(NOW - 5 * DAY, "+79161234567", ym_client_id=CLIENT_ID)
    visit = clinic_data.appointment(NOW - 2 * DAY, "8 916 123-45-67", amount="4500.00")
    without_id = clinic_data.lead(NOW - DAY, "+79160000002")

    run = _run(sink.dag_id, NOW)
    assert run.state == "success"
    (offered,) = service.received
    assert {(e.event, e.lead_id) for e in offered} == {
        ("lead", lead), ("first_visit", lead), ("lead", without_id),
    }  # fmt: skip
    assert _sent(conversions_db) == [
        ("lead", lead, None, NOW - 5 * DAY, None, "u1"),
        ("first_visit", lead, visit, NOW - 2 * DAY, Decimal("4500.00"), "u1"),
    ]
    assert _uploads(conversions_db) == [("u1", 2, None, False, None, None)]

    # An hour later the upload is followed to its end; the lead without an id is offered
    # again (the service did not take it), nothing sent goes twice.
    assert _run(sink.dag_id, NOW + timedelta(hours=1)).state == "success"
    assert service.followed == ["u1"]
    assert [(e.event, e.lead_id) for e in service.received[1]] == [("lead", without_id)]
    assert _uploads(conversions_db) == [("u1", 2, "PROCESSED", True, 1, 1)]
    assert len(_sent(conversions_db)) == 2

    assert _run(sink.dag_id, NOW + timedelta(hours=2)).state == "success"
    assert service.followed == ["u1"]  # finished uploads are not asked about again


def test_a_refused_upload_fails_the_run_at_once_and_marks_nothing_as_sent(
    service, clinic_data, conversions_db
):
    sink = load_config().conversion_sink("yandex_metrica")
    clinic_data.lead(NOW - DAY, "+79161234567", ym_client_id=CLIENT_ID)
    service.refuse = True

    run = _run(sink.dag_id, NOW)
    assert run.state == "failed"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states == {"send_conversions": "failed"}  # failed, not up for retry
    assert (_sent(conversions_db), _uploads(conversions_db)) == ([], [])

    service.refuse = False
    assert _run(sink.dag_id, NOW + timedelta(hours=1)).state == "success"
    assert [event for event, *_ in _sent(conversions_db)] == ["lead"]
