"""ПроДокторов and IDENT PostTimeTable simulators, and publishing to them end to end."""

from __future__ import annotations

import json

import pytest
import requests

from ident_dev.simulators.base import Fault
from ident_dev.simulators.ident_timetable import IdentTimetableSimulator
from ident_dev.simulators.prodoctorov import ProdoctorovSimulator
from ident_hooks.http_client import ServiceRejected
from ident_hooks.schedule.aggregators import publisher
from ident_hooks.schedule.engine import compute_schedule, resolve_settings

DAY = "2026-12-02"
NO_WAIT = {"sleep": lambda _seconds: None}


@pytest.fixture
def network(clinic):
    for doctor, branch in (("d1", "b1"), ("d2", "b1"), ("d3", "b2")):
        for day in ("2026-12-02", "2026-12-03"):
            clinic.work(doctor, branch, f"{day} 09:00", f"{day} 13:00")
    clinic.busy("d1", f"{DAY} 10:00", f"{DAY} 11:15")
    clinic.busy("d3", f"{DAY} 09:00", f"{DAY} 09:30")
    return clinic


def publish(aggregator, schedule, branches, conn_id, **build_options):
    target = publisher(aggregator)
    client = target.client(conn_id, **NO_WAIT)
    outgoing = target.build_requests(schedule, branches, **build_options)
    statuses = [request.send(client).status_code for request in outgoing]
    assert set(statuses) == ({204} if aggregator == "prodoctorov" else {200})
    return outgoing


def post(server, path, body, headers):
    return requests.post(f"{server.base_url}{path}", data=body, headers=headers, timeout=5)


# -- ПроДокторов ------------------------------------------------------------------------


def test_prodoctorov_receives_and_keeps_every_cell(network, started, service_connection):
    sim = started(ProdoctorovSimulator(token="pd-token"))
    conn = service_connection("pd_test", sim.base_url, "pd-token")
    schedule = network.schedule("prodoctorov")
    sim.inject(Fault(status=503, times=1))  # a hiccup is retried
    # A branch is one document there: one request each.
    outgoing = publish("prodoctorov", schedule, network.branches(), conn)
    assert [request.branch_ids for request in outgoing] == [("b1",), ("b2",)]
    for branch, doctor in (("b1", "d1"), ("b1", "d2"), ("b2", "d3")):
        expected = schedule.cells[
            (schedule.cells["branch_id"] == branch) & (schedule.cells["doctor_id"] == doctor)
        ]
        kept = sim.cells(branch, doctor)
        assert [(c["dt"], c["time_start"], c["time_end"], c["free"]) for c in kept] == [
            (str(d), str(s), str(e), bool(f))
            for d, s, e, f in zip(
                expected["local_date"],
                expected["local_start"],
                expected["local_end"],
                expected["is_free"],
                strict=True,
            )
        ]
    assert sim.schedules["b1"]["name"] == "Филиал b1"
    assert sim.schedules["b1"]["doctors"]["d1"]["efio"] == "Врач d1"
    assert ("2026-12-02", "10:00", "11:15", False) in [
        (c["dt"], c["time_start"], c["time_end"], c["free"]) for c in sim.cells("b1", "d1")
    ]


def test_prodoctorov_answers_204_and_refuses_bad_tokens_the_drf_way(started):
    sim = started(ProdoctorovSimulator(token="pd-token"))
    body = json.dumps(
        {
            "schedule": {
                "1": "Клиника на Ленина",
                "data": {
                    "1": {
                        "7": {
                            "efio": "Петров Геннадий Андреевич",
                            "espec": "Уролог",
                            "cells": [
                                {
                                    "dt": "2026-12-01",
                                    "time_start": "10:00",
                                    "time_end": "10:20",
                                    "free": True,
                                    "room": "12 кабинет",
                                }
                            ],
                        }
                    }
                },
            }
        }
    )
    path = "/v2/doctors/send_schedule/"
    json_type = {"Content-Type": "application/json"}
    ok = post(sim, path, body, {**json_type, "Authorization": "Token pd-token"})
    assert (ok.status_code, ok.content) == (204, b"")
    assert sim.cells("1", "7")[0]["room"] == "12 кабинет"
    missing = post(sim, path, body, json_type)
    wrong = post(sim, path, body, {**json_type, "Authorization": "Bearer pd-token"})
    assert (missing.status_code, wrong.status_code) == (401, 401)
    assert wrong.json() == {"detail": "Invalid token."}
    assert wrong.headers["WWW-Authenticate"] == "Token"
    text = post(sim, path, body, {"Content-Type": "text/plain", "Authorization": "Token pd-token"})
    assert text.status_code == 415


@pytest.mark.parametrize(
    ("cells", "problem"),
    [
        ([{"dt": "2026-12-01", "time_start": "10:00", "time_end": "10:20"}], "needs dt"),
        ([{"dt": "01.12.2026", "time_start": "10:00", "time_end": "10:20", "free": True}], "dt"),
        (
            [{"dt": "2026-12-01", "time_start": "10:20", "time_end": "10:00", "free": True}],
            "time_end",
        ),
        (
            [{"dt": "2026-12-01", "time_start": "9:00", "time_end": "10:00", "free": True}],
            "time_start",
        ),
        ([{"dt": "2026-12-01", "time_start": "10:00", "time_end": "10:20", "free": "yes"}], "free"),
        (
            [
                {"dt": "2026-12-01", "time_start": "10:00", "time_end": "10:30", "free": True},
                {"dt": "2026-12-01", "time_start": "10:20", "time_end": "10:40", "free": False},
            ],
            "overlap",
        ),
    ],
)
def test_prodoctorov_refuses_a_wrong_shape(started, cells, problem):
    sim = started(ProdoctorovSimulator(token="t"))
    body = {
        "schedule": {"1": "Ф", "data": {"1": {"7": {"efio": "A", "espec": "B", "cells": cells}}}}
    }
    answer = post(
        sim,
        "/v2/doctors/send_schedule/",
        json.dumps(body),
        {"Content-Type": "application/json", "Authorization": "Token t"},
    )
    assert answer.status_code == 400
    assert problem in " ".join(answer.json()["errors"])
    assert sim.schedules == {}


def test_a_wrong_token_stops_publishing_after_one_request(network, started, service_connection):
    sim = started(ProdoctorovSimulator(token="right"))
    conn = service_connection("pd_test", sim.base_url, "wrong-token")
    with pytest.raises(ServiceRejected, match="HTTP 401: Invalid token.") as failure:
        publish("prodoctorov", network.schedule("prodoctorov"), network.branches(), conn)
    assert "wrong-token" not in str(failure.value)
    assert len(sim.received()) == 1


def test_faults_can_be_injected(started):
    sim = started(ProdoctorovSimulator(token="t"))
    sim.inject(Fault(status=429, retry_after="3", times=1))
    answer = post(sim, "/v2/doctors/send_schedule/", "{}", {"Authorization": "Token t"})
    assert (answer.status_code, answer.headers["Retry-After"]) == (429, "3")


# -- IDENT PostTimeTable ----------------------------------------------------------------


@pytest.mark.parametrize("aggregator", ["sberzdorovie", "32top"])
def test_ident_timetable_receives_free_and_busy_intervals(
    network, started, service_connection, aggregator
):
    sim = started(IdentTimetableSimulator(key="ident-key", path_prefix="/ident"))
    conn = service_connection("ident_test", f"{sim.base_url}/ident", "ident-key")
    # IDENT ids are integers: the reader's aliases (integration.ident_ids) ride along.
    work, busy, doctors, rules = network.frames()
    doctors = doctors.assign(ident_id=[11, 12, 13])
    branches = network.branches().assign(ident_id=[1, 2])
    settings = resolve_settings(aggregator, None)
    schedule = compute_schedule(work, busy, doctors, rules, settings, network.NOW)
    assert len(publish(aggregator, schedule, branches, conn)) == 1
    assert sim.branches == {1: "Филиал b1", 2: "Филиал b2"}
    assert sim.doctors == {11: "Врач d1", 12: "Врач d2", 13: "Врач d3"}
    d1 = sim.intervals(1, 11)
    expected = schedule.cells[schedule.cells["doctor_id"] == "d1"]
    assert len(d1) == len(expected)
    assert [(i["StartDateTime"], i["LengthInMinutes"], i["IsBusy"]) for i in d1[:5]] == [
        (f"{DAY}T09:00:00+03:00", 30, False),
        (f"{DAY}T09:30:00+03:00", 30, False),
        (f"{DAY}T10:00:00+03:00", 75, True),
        (f"{DAY}T11:15:00+03:00", 30, False),
        (f"{DAY}T11:45:00+03:00", 30, False),
    ]
    assert sim.intervals(2, 13)[0]["IsBusy"] is True


def test_ident_timetable_checks_the_key_in_plain_text(started):
    sim = started(IdentTimetableSimulator(key="k"))
    body = json.dumps({"Doctors": [], "Branches": [], "Intervals": []})
    missing = post(sim, "/PostTimeTable", body, {})
    wrong = post(sim, "/PostTimeTable", body, {"IDENT-Integration-Key": "x"})
    right = post(sim, "/PostTimeTable", body, {"IDENT-Integration-Key": "k"})
    assert (missing.status_code, wrong.status_code, right.status_code) == (401, 403, 200)
    assert wrong.headers["Content-Type"].startswith("text/plain")
    assert wrong.text == "Invalid IDENT-Integration-Key"


def interval(**overrides):
    return {
        "DoctorId": 7,
        "BranchId": 1,
        "StartDateTime": "2026-12-01T10:00:00+03:00",
        "LengthInMinutes": 30,
        "IsBusy": False,
        **overrides,
    }


@pytest.mark.parametrize(
    ("intervals", "problem"),
    [
        ([interval(DoctorId=8)], "DoctorId is not among Doctors"),
        ([interval(StartDateTime="2026-12-01T10:00:00")], "with a UTC offset"),
        ([interval(LengthInMinutes=0)], "positive integer"),
        ([interval(IsBusy="no")], "IsBusy"),
        ([{k: v for k, v in interval().items() if k != "IsBusy"}], "must have exactly"),
        ([interval(), interval(StartDateTime="2026-12-01T10:15:00+03:00")], "overlap"),
    ],
)
def test_ident_timetable_refuses_a_wrong_shape(started, intervals, problem):
    sim = started(IdentTimetableSimulator(key="k"))
    body = {
        "Doctors": [{"Id": 7, "Name": "A"}],
        "Branches": [{"Id": 1, "Name": "B"}],
        "Intervals": intervals,
    }
    answer = post(sim, "/PostTimeTable", json.dumps(body), {"IDENT-Integration-Key": "k"})
    assert answer.status_code == 400
    assert problem in answer.text
    assert sim.timetable == {}


def test_a_doctor_listed_without_intervals_is_cleared(started):
    sim = started(IdentTimetableSimulator(key="k"))
    body = {
        "Doctors": [{"Id": 7, "Name": "A"}],
        "Branches": [{"Id": 1, "Name": "B"}],
        "Intervals": [interval()],
    }
    headers = {"IDENT-Integration-Key": "k"}
    assert post(sim, "/PostTimeTable", json.dumps(body), headers).status_code == 200
    assert len(sim.intervals(1, 7)) == 1
    body["Intervals"] = []
    assert post(sim, "/PostTimeTable", json.dumps(body), headers).status_code == 200
    assert sim.intervals(1, 7) == []
