"""Publishing to НаПоправку: slots on every run, clinics and doctors at least daily, and the
doctors the service could not match recorded where the data team looks.

The vendor wants slots every 10 minutes or more often, changed or not, and clinics and
doctors daily or more often (``napopravku/rta-api-service-client``, ``README.md``). Real
PostgreSQL, the simulator over loopback HTTP, the clock passed as ``now=``.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest

from ident_dev import demo
from ident_dev.simulators.base import SimRequest, SimResponse
from ident_dev.simulators.napopravku import NapopravkuSimulator
from ident_hooks.schedule.aggregators import publisher
from ident_hooks.schedule.publish import publish_schedule

NOW = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)  # 09:00 in Moscow
TOKEN = "napopravku-token"


class ReshapingSimulator(NapopravkuSimulator):
    """Keeps the doctors it is sent, but answers ``POST doctors`` with ``reply`` when set."""

    reply: dict | None = None

    def _post_doctors(self, request: SimRequest) -> SimResponse:
        response = super()._post_doctors(request)
        if response.status == 200 and self.reply is not None:
            return SimResponse(200, self.reply)
        return response


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clinic(clinic_conn):
    network = demo.generate(4, 5, now=NOW)
    demo.load(clinic_conn, network)
    clinic_conn.execute(
        "truncate integration.publish_log, integration.publish_state, integration.leads,"
        " integration.schedule_state, integration.publish_budget cascade"
    )
    clinic_conn.commit()
    return network


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(started, clock):
    return started(ReshapingSimulator(token=TOKEN, clock=clock))


@pytest.fixture
def client(service, service_connection):
    conn_id = service_connection("napopravku_publish", f"{service.base_url}/api/v1", TOKEN)
    return publisher("napopravku").client(conn_id, backoff_seconds=0, sleep=lambda _: None)


def _publish(clinic_conn, client, now, *, on_change=True):
    return publish_schedule(
        "napopravku", conn=clinic_conn, client=client, now=now, on_change=on_change
    )


def _sent(service) -> dict[str, int]:
    return {
        endpoint: len(service.received(f"/api/v1/{endpoint}"))
        for endpoint in ("clinics", "doctors", "slots")
    }


def _log(clinic_conn) -> list[tuple]:
    rows = clinic_conn.execute(
        "select status, requests_sent, requests_skipped, not_matched_doctors"
        " from integration.publish_log where aggregator = 'napopravku' order by publish_id"
    ).fetchall()
    clinic_conn.commit()
    return rows


def _working_doctors(clinic_conn) -> list[str]:
    rows = clinic_conn.execute(
        "select distinct doctor_id from clinic.work_intervals where ends_at > %s order by 1",
        (NOW,),
    ).fetchall()
    clinic_conn.commit()
    return [doctor_id for (doctor_id,) in rows]


def test_a_second_run_with_nothing_changed_still_sends_the_slots(
    clinic, clinic_conn, service, client, clock
):
    """Rereading the clinic on every tick (``publish_on_change: false``)."""
    first = _publish(clinic_conn, client, NOW, on_change=False)
    branches = len(clinic.branches)
    assert _sent(service) == {"clinics": 1, "doctors": 1, "slots": branches}
    assert first.free_slots > 0

    second = _publish(clinic_conn, client, NOW, on_change=False)  # the very same schedule

    assert second.payload_hash == first.payload_hash
    assert _sent(service) == {"clinics": 1, "doctors": 1, "slots": 2 * branches}
    slot_bodies = [call.json() for call in service.received("/api/v1/slots")]
    assert slot_bodies[branches:] == slot_bodies[:branches]
    assert [row[:3] for row in _log(clinic_conn)] == [
        ("sent", 2 + branches, 0),
        ("sent", branches, 2),
    ]


def test_unchanged_slots_still_go_every_10_minutes_without_reading_the_clinic(
    clinic, clinic_conn, service, client, clock
):
    """Change-driven: nothing changed, yet the service's 10-minute rule is kept."""
    branches = len(clinic.branches)
    # Slots start on the half hour: between 08:55 and 08:57 no slot crosses the 2-hour cut-off.
    start = NOW - timedelta(minutes=5)
    _publish(clinic_conn, client, start)
    after_two = _publish(clinic_conn, client, start + timedelta(minutes=2))
    clock.now = start + timedelta(minutes=10)
    after_ten = _publish(clinic_conn, client, clock.now)

    modes = clinic_conn.execute(
        "select mode, doctors_recomputed, requests_sent from integration.publish_log"
        " where aggregator = 'napopravku' order by publish_id"
    ).fetchall()
    clinic_conn.commit()
    assert modes == [("full", None, 2 + branches), ("idle", 0, 0), ("idle", 0, branches)]
    assert after_two.requests_sent == 0 and after_ten.requests_sent == branches
    assert _sent(service) == {"clinics": 1, "doctors": 1, "slots": 2 * branches}
    # What went out from the kept state is what a full reread would have sent.
    reread = publish_schedule(
        "napopravku",
        conn=clinic_conn,
        client=client,
        now=clock.now,
        on_change=False,
    )
    slot_bodies = [call.json() for call in service.received("/api/v1/slots")]
    assert reread.payload_hash == after_ten.payload_hash
    assert slot_bodies[-branches:] == slot_bodies[branches : 2 * branches]


def test_not_matched_doctors_land_in_publish_log_and_the_task_log(
    clinic, clinic_conn, service, client, caplog
):
    unmatched = _working_doctors(clinic_conn)[:2]
    service.unmatched_doctors = set(unmatched)
    names = {doctor_id: name for doctor_id, name, *_ in clinic.doctors}

    with caplog.at_level(logging.WARNING, logger="ident_hooks.schedule.publish"):
        summary = _publish(clinic_conn, client, NOW)

    assert summary.not_matched_doctors == unmatched
    reply = service.received("/api/v1/doctors")
    assert len(reply) == 1
    assert _log(clinic_conn)[-1][3] == unmatched
    (warning,) = [r for r in caplog.records if "not_matched" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    for doctor_id in unmatched:
        assert f"{doctor_id} ({names[doctor_id]})" in warning.getMessage()
    assert "integration.publish_log.not_matched_doctors" in warning.getMessage()

    # Doctors unchanged and not sent: the next run knows nothing new (NULL, not "none").
    _publish(clinic_conn, client, NOW)
    assert _log(clinic_conn)[-1][3] is None


def test_every_doctor_matched_is_recorded_as_an_empty_list(clinic, clinic_conn, service, client):
    _publish(clinic_conn, client, NOW)
    assert _log(clinic_conn)[-1][3] == []


@pytest.mark.parametrize(
    ("not_matched", "expected"),
    [
        pytest.param(lambda d, c: {c: [d[0], d[1]]}, lambda d: [d[0], d[1]], id="by-clinic"),
        pytest.param(lambda d, c: {d[1]: ["no profile"]}, lambda d: [d[1]], id="by-doctor"),
        pytest.param(lambda d, c: [d[0]], lambda d: [d[0]], id="list-of-ids"),
        pytest.param(
            lambda d, c: [{"mis_doctor_id": d[1]}], lambda d: [d[1]], id="list-of-objects"
        ),
        pytest.param(lambda d, c: [], lambda d: [], id="empty"),
    ],
)
def test_not_matched_is_read_in_any_of_its_plausible_shapes(
    clinic, clinic_conn, service, client, not_matched, expected
):
    doctors = _working_doctors(clinic_conn)
    reply = {
        "result": {
            "created": 0,
            "updated": len(doctors),
            "matched": {},
            "not_matched": not_matched(doctors, "msk-1"),
        }
    }
    service.reply = reply
    summary = _publish(clinic_conn, client, NOW)
    assert summary.not_matched_doctors == expected(doctors)
    assert _log(clinic_conn)[-1][3] == expected(doctors)


def test_a_doctors_reply_without_not_matched_records_nothing(clinic, clinic_conn, service, client):
    service.reply = {"result": True}
    summary = _publish(clinic_conn, client, NOW)
    assert summary.status == "sent" and summary.not_matched_doctors is None
    assert _log(clinic_conn)[-1][3] is None


def test_the_simulator_answers_clinics_and_doctors_with_counts(service, client):
    clinics = {"clinics": [{"mis_clinic_id": "msk-1", "name": "Улыбка", "comment": ""}]}
    doctor = {"mis_doctor_id": "d1", "name": "Петров", "comment": "", "mis_clinic_ids": ["msk-1"]}
    service.unmatched_doctors = {"d2"}

    def post(endpoint, body):
        return client.request("POST", endpoint, json=body).json()

    assert post("clinics", clinics) == {"result": {"created": 1, "updated": 0}}
    assert post("clinics", clinics) == {"result": {"created": 0, "updated": 1}}
    doctors = {"doctors": [doctor, {**doctor, "mis_doctor_id": "d2"}]}
    assert post("doctors", doctors) == {
        "result": {
            "created": 2,
            "updated": 0,
            "matched": {"msk-1": ["d1"]},
            "not_matched": {"msk-1": ["d2"]},
        }
    }
    assert json.loads(json.dumps(service.doctors["d2"])) == {**doctor, "mis_doctor_id": "d2"}
