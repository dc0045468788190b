"""ПроДокторов wire format of the public v2 clients (integrations.md, Corrections → ПроДокторов).

The branch name goes beside ``data``; a branch is one whole request; the simulator
refuses what the public clients never send and keeps one document per branch.
"""

from __future__ import annotations

import json

import pytest
import requests

from ident_dev.simulators.prodoctorov import ProdoctorovSimulator
from ident_hooks.schedule.aggregators import RequestTooLarge, publisher

DAY = "2026-12-02"
PATH = "/v2/doctors/send_schedule/"


def build(clinic, **options):
    return publisher("prodoctorov").build_requests(
        clinic.schedule("prodoctorov"), clinic.branches(), **options
    )


def send(sim, body, token="t"):
    return requests.post(
        f"{sim.base_url}{PATH}",
        data=json.dumps(body),
        headers={"Content-Type": "application/json", "Authorization": f"Token {token}"},
        timeout=5,
    )


def cell(start="10:00", end="10:30", free=True, dt=DAY):
    return {"dt": dt, "time_start": start, "time_end": end, "free": free}


def body(branches: dict[str, dict], names: dict[str, str] | None = None) -> dict:
    """``{"schedule": {<id>: <name>, ..., "data": branches}}``; ``names=None`` names each id."""
    names = {branch_id: f"Филиал {branch_id}" for branch_id in branches} if names is None else names
    return {"schedule": {**names, "data": branches}}


def doctor(*cells, efio="Петров Геннадий Андреевич", espec="Уролог"):
    return {"efio": efio, "espec": espec, "cells": list(cells)}


@pytest.fixture
def sim(started):
    return started(ProdoctorovSimulator(token="t"))


# -- what we send ------------------------------------------------------------------------


def test_the_branch_name_goes_beside_data_under_the_branch_id(clinic):
    clinic.work("d1", "b1", f"{DAY} 09:00", f"{DAY} 10:00")
    clinic.work("d2", "ekb", f"{DAY} 09:00", f"{DAY} 10:00", clinic.YEKT)
    moscow, yekaterinburg = (json.loads(r.body) for r in build(clinic))
    assert list(moscow["schedule"]) == ["b1", "data"]  # the name first, as every client sends
    assert moscow["schedule"]["b1"] == "Филиал b1"
    assert list(moscow["schedule"]["data"]) == ["b1"]
    assert yekaterinburg["schedule"]["ekb"] == "Филиал ekb"
    assert list(yekaterinburg["schedule"]["data"]["ekb"]) == ["d2"]


def test_a_blank_branch_name_is_sent_as_the_branch_id(clinic):
    clinic.work("d1", "b1", f"{DAY} 09:00", f"{DAY} 10:00")
    clinic.branch_rows["b1"]["name"] = "  "
    (request,) = build(clinic)
    assert json.loads(request.body)["schedule"]["b1"] == "b1"


def test_a_branch_is_one_request_whatever_its_size(clinic):
    for number in range(6):
        for day in range(2, 7):
            date = f"2026-12-{day:02d}"
            clinic.work(f"d{number}", "b1", f"{date} 09:00", f"{date} 18:00")
            clinic.busy(f"d{number}", f"{date} 12:00", f"{date} 12:45")
    schedule = clinic.schedule("prodoctorov")
    (request,) = build(clinic)
    assert (request.branch_ids, request.doctor_count) == (("b1",), 6)
    doctors = json.loads(request.body)["schedule"]["data"]["b1"]
    assert sorted(doctors) == [f"d{number}" for number in range(6)]
    assert sum(len(block["cells"]) for block in doctors.values()) == len(schedule.cells)
    # Over a receiver's limit it is refused before sending, naming the limit: never split.
    with pytest.raises(RequestTooLarge, match="more than the receiver's limit of 2000 bytes"):
        build(clinic, max_request_bytes=2_000)


def test_cells_carry_exactly_the_public_fields_and_formats(clinic):
    clinic.work("d1", "b1", f"{DAY} 09:00", f"{DAY} 10:00")
    clinic.busy("d1", f"{DAY} 09:30", f"{DAY} 10:00")
    (request,) = build(clinic)
    block = json.loads(request.body)["schedule"]["data"]["b1"]["d1"]
    assert block == {
        "efio": "Врач d1",
        "espec": "Терапевт",
        "cells": [cell("09:00", "09:30", True), cell("09:30", "10:00", False)],
    }


# -- what the simulator accepts and keeps --------------------------------------------------


def test_the_simulator_refuses_a_body_without_the_branch_name(sim):
    old_shape = {"schedule": {"data": {"1": {"7": doctor(cell())}}}}
    answer = send(sim, old_shape)
    assert answer.status_code == 400
    assert answer.json()["detail"] == "Invalid schedule."
    assert any("1: the branch name is required beside data" in e for e in answer.json()["errors"])
    assert send(sim, body({"1": {"7": doctor(cell())}}, names={"1": " "})).status_code == 400
    # A name for another branch is no name for this one.
    assert send(sim, body({"1": {"7": doctor(cell())}}, names={"2": "Б"})).status_code == 400
    assert sim.schedules == {}


@pytest.mark.parametrize(
    ("start", "end", "problem"),
    [
        ("10:00", "10:00", "must be after time_start"),
        ("10:30", "10:00", "must be after time_start"),
        ("23:30", "00:00", "must be after time_start"),  # a midnight end in Go's 15:04
        ("23:30", "24:00", "24:00 is not a time of day"),
        ("24:00", "24:00", "24:00 is not a time of day"),
        ("23:30", "24:01", "must be HH:MM"),
    ],
)
def test_the_simulator_refuses_a_cell_that_does_not_end_after_it_starts(sim, start, end, problem):
    answer = send(sim, body({"1": {"7": doctor(cell(start, end))}}))
    assert answer.status_code == 400
    assert problem in " ".join(answer.json()["errors"])
    assert sim.schedules == {}


def test_the_simulator_accepts_the_last_minute_and_a_doctor_without_espec(sim):
    without_espec = {"efio": "Иванова Анна Сергеевна", "cells": [cell("23:00", "23:59", False)]}
    assert send(sim, body({"1": {"7": without_espec}})).status_code == 204
    assert sim.cells("1", "7") == [cell("23:00", "23:59", False)]
    assert sim.schedules["1"]["doctors"]["7"]["espec"] == ""


def test_a_request_replaces_the_whole_document_of_its_branch(sim):
    first = body(
        {
            "1": {"7": doctor(cell("10:00", "10:30")), "8": doctor(cell("11:00", "11:30"))},
            "2": {"9": doctor(cell("12:00", "12:30"))},
        }
    )
    assert send(sim, first).status_code == 204
    second = body({"1": {"8": doctor(cell("15:00", "15:30", dt="2026-12-03"))}}, {"1": "Новое"})
    assert send(sim, second).status_code == 204
    assert sim.schedules["1"]["name"] == "Новое"
    assert list(sim.schedules["1"]["doctors"]) == ["8"]  # doctor 7 was not sent: gone
    assert sim.cells("1", "7") == []
    assert sim.cells("1", "8") == [cell("15:00", "15:30", dt="2026-12-03")]  # 2026-12-02 gone
    assert sim.cells("2", "9") == [cell("12:00", "12:30")]  # another branch is untouched


def test_what_we_send_is_what_the_simulator_keeps(clinic, sim, service_connection):
    clinic.work("d1", "b1", f"{DAY} 09:00", f"{DAY} 11:00")
    clinic.busy("d1", f"{DAY} 09:30", f"{DAY} 10:00")
    clinic.work("d2", "ekb", f"{DAY} 10:00", f"{DAY} 11:00", clinic.YEKT)
    target = publisher("prodoctorov")
    client = target.client(service_connection("pd_wire", sim.base_url, "t"))
    for request in build(clinic):
        assert request.send(client).status_code == 204
    assert {branch: doc["name"] for branch, doc in sim.schedules.items()} == {
        "b1": "Филиал b1",
        "ekb": "Филиал ekb",
    }
    assert [(c["time_start"], c["time_end"], c["free"]) for c in sim.cells("b1", "d1")] == [
        ("09:00", "09:30", True),
        ("09:30", "10:00", False),
        ("10:00", "10:30", True),
        ("10:30", "11:00", True),
    ]
    assert [c["time_start"] for c in sim.cells("ekb", "d2")] == ["10:00", "10:30"]
