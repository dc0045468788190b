"""Payload builders: wire shapes of integrations.md, splitting, registry."""

from __future__ import annotations

import json

import pytest

from ident_hooks.config import load_config
from ident_hooks.registry import IDENT_INTEGRATION_KEY, NAPOPRAVKU_BEARER, PRODOCTOROV_TOKEN
from ident_hooks.schedule.aggregators import RequestTooLarge, publisher

DAY = "2026-12-02"


def bodies(requests) -> list[dict]:
    return [json.loads(request.body) for request in requests]


@pytest.fixture
def network(clinic):
    """d1 works in Moscow (b1) with one booking; d2 in Yekaterinburg (ekb); d3 is fully booked."""
    clinic.work("d1", "b1", f"{DAY} 09:00", f"{DAY} 11:00")
    clinic.busy("d1", f"{DAY} 09:30", f"{DAY} 10:00")
    clinic.work("d2", "ekb", f"{DAY} 10:00", f"{DAY} 11:00", clinic.YEKT)
    clinic.work("d3", "b1", f"{DAY} 12:00", f"{DAY} 13:00")
    clinic.busy("d3", f"{DAY} 12:00", f"{DAY} 13:00")
    return clinic


def test_every_configured_aggregator_speaks_a_registered_kind_with_its_auth():
    kinds = {a.name: a.kind for a in load_config().aggregators}
    assert kinds == {
        "prodoctorov": "prodoctorov",
        "napopravku": "napopravku",
        "sberzdorovie": "ident_timetable",
        "32top": "ident_timetable",
    }
    assert publisher("prodoctorov").auth == PRODOCTOROV_TOKEN
    assert publisher("napopravku").auth == NAPOPRAVKU_BEARER
    assert publisher("sberzdorovie").auth == IDENT_INTEGRATION_KEY
    assert publisher("sberzdorovie") == publisher("32top")
    with pytest.raises(KeyError, match="no aggregator 'docdoc'"):
        publisher("docdoc")


def test_prodoctorov_gets_free_and_busy_cells_per_branch(network):
    schedule = network.schedule("prodoctorov")
    requests = publisher("prodoctorov").build_requests(schedule, network.branches())
    assert [(r.method, r.endpoint, r.branch_ids) for r in requests] == [
        ("POST", "v2/doctors/send_schedule/", ("b1",)),
        ("POST", "v2/doctors/send_schedule/", ("ekb",)),
    ]
    moscow, yekaterinburg = bodies(requests)
    assert moscow == {
        "schedule": {
            "b1": "Филиал b1",
            "data": {
                "b1": {
                    "d1": {
                        "efio": "Врач d1",
                        "espec": "Терапевт",
                        "cells": [
                            {"dt": DAY, "time_start": "09:00", "time_end": "09:30", "free": True},
                            {"dt": DAY, "time_start": "09:30", "time_end": "10:00", "free": False},
                            {"dt": DAY, "time_start": "10:00", "time_end": "10:30", "free": True},
                            {"dt": DAY, "time_start": "10:30", "time_end": "11:00", "free": True},
                        ],
                    },
                    "d3": {
                        "efio": "Врач d3",
                        "espec": "Терапевт",
                        "cells": [
                            {"dt": DAY, "time_start": "12:00", "time_end": "13:00", "free": False}
                        ],
                    },
                }
            },
        }
    }
    ekb_cells = yekaterinburg["schedule"]["data"]["ekb"]["d2"]["cells"]
    assert [(c["time_start"], c["free"]) for c in ekb_cells] == [("10:00", True), ("10:30", True)]
    assert "Врач".encode() in requests[0].body  # UTF-8, not \u escapes


def test_a_doctor_with_nothing_left_is_sent_with_no_cells(clinic):
    clinic.work("d1", "b1", "2026-12-01 06:00", "2026-12-01 09:00")  # over by 10:00 today
    requests = publisher("prodoctorov").build_requests(clinic.schedule(), clinic.branches())
    assert bodies(requests)[0]["schedule"]["data"]["b1"]["d1"]["cells"] == []


def test_napopravku_gets_clinics_doctors_then_free_ranges(network):
    network.work("d1", "ekb", f"{DAY} 14:00", f"{DAY} 15:00", network.YEKT)
    network.rule("d2", slot_minutes=15)
    requests = publisher("napopravku").build_requests(
        network.schedule("napopravku"), network.branches()
    )
    assert [(r.endpoint, r.kind, r.branch_ids) for r in requests] == [
        ("clinics", "clinics", ()),
        ("doctors", "doctors", ()),
        ("slots", "slots", ("b1",)),
        ("slots", "slots", ("ekb",)),
    ]
    clinics, doctors, moscow, yekaterinburg = bodies(requests)
    assert clinics == {
        "clinics": [
            {"mis_clinic_id": "b1", "name": "Филиал b1", "comment": "ул. b1"},
            {"mis_clinic_id": "ekb", "name": "Филиал ekb", "comment": "ул. ekb"},
        ]
    }
    assert doctors == {
        "doctors": [
            {
                "mis_doctor_id": "d1",
                "name": "Врач d1",
                "comment": "Терапевт",
                "mis_clinic_ids": ["b1", "ekb"],
            },
            {
                "mis_doctor_id": "d2",
                "name": "Врач d2",
                "comment": "Терапевт",
                "mis_clinic_ids": ["ekb"],
            },
            {
                "mis_doctor_id": "d3",
                "name": "Врач d3",
                "comment": "Терапевт",
                "mis_clinic_ids": ["b1"],
            },
        ]
    }
    # Every date of the horizon (today + 32) is sent, an empty one as "slots": [] (it
    # replaces the day).
    for body in (moscow, yekaterinburg):
        for doctor in body["clinics"][0]["doctors"]:
            dates = [day["date"] for day in doctor["dates"]]
            assert len(dates) == 33 and dates == sorted(set(dates)), doctor["mis_doctor_id"]
    moscow, yekaterinburg = offered(moscow), offered(yekaterinburg)
    assert moscow == {
        "clinics": [
            {
                "mis_clinic_id": "b1",
                "doctors": [
                    {
                        "mis_doctor_id": "d1",
                        "dates": [
                            {
                                "date": DAY,
                                "slots": [
                                    {"from": "09:00", "to": "09:30", "duration": 30},
                                    {"from": "10:00", "to": "11:00", "duration": 30},
                                ],
                            }
                        ],
                    },
                    {"mis_doctor_id": "d3", "dates": []},
                ],
            }
        ]
    }
    # d1's time in Moscow blocks nothing in Yekaterinburg (14:00 YEKT = 12:00 MSK).
    ekb_doctors = yekaterinburg["clinics"][0]["doctors"]
    assert ekb_doctors == [
        {
            "mis_doctor_id": "d1",
            "dates": [{"date": DAY, "slots": [{"from": "14:00", "to": "15:00", "duration": 30}]}],
        },
        {
            "mis_doctor_id": "d2",
            "dates": [{"date": DAY, "slots": [{"from": "10:00", "to": "11:00", "duration": 15}]}],
        },
    ]


def offered(body: dict) -> dict:
    """A НаПоправку slots body without its empty dates."""
    return {
        "clinics": [
            {
                **clinic,
                "doctors": [
                    {**doctor, "dates": [day for day in doctor["dates"] if day["slots"]]}
                    for doctor in clinic["doctors"]
                ],
            }
            for clinic in body["clinics"]
        ]
    }


# IDENT PostTimeTable (СберЗдоровье, 32top): tests/schedule/test_ident_wire.py.


def big_branch(clinic, doctors: int = 6, days: int = 5):
    for doctor in range(doctors):
        for day in range(2, 2 + days):
            date = f"2026-12-{day:02d}"
            clinic.work(f"d{doctor}", "b1", f"{date} 09:00", f"{date} 18:00")
            clinic.busy(f"d{doctor}", f"{date} 12:00", f"{date} 12:45")
    return clinic


def cells_of(aggregator: str, parsed: list[dict]) -> list:
    if aggregator == "napopravku":
        return sorted(
            (clinic["mis_clinic_id"], doctor["mis_doctor_id"], date["date"], slot["from"])
            for body in parsed
            if "clinics" in body and "doctors" in body["clinics"][0]
            for clinic in body["clinics"]
            for doctor in clinic["doctors"]
            for date in doctor["dates"]
            for slot in date["slots"]
        )


# ПроДокторов never splits a branch: tests/schedule/test_prodoctorov_wire.py; IDENT never
# splits its timetable: tests/schedule/test_ident_wire.py.
@pytest.mark.parametrize("aggregator", ["napopravku"])
@pytest.mark.parametrize("parts", [2, 8])
def test_a_large_branch_is_split_below_the_limit_without_losing_anything(clinic, aggregator, parts):
    schedule = big_branch(clinic).schedule(aggregator)
    whole = publisher(aggregator).build_requests(schedule, clinic.branches())
    limit = max(len(request.body) for request in whole) // parts
    split = publisher(aggregator).build_requests(
        schedule, clinic.branches(), max_request_bytes=limit
    )
    assert len(split) > len(whole)
    assert all(len(request.body) <= limit for request in split)
    assert cells_of(aggregator, bodies(split)) == cells_of(aggregator, bodies(whole))


def test_a_limit_too_small_for_one_doctor_day_is_refused(clinic):
    schedule = big_branch(clinic, doctors=1, days=1).schedule("napopravku")
    with pytest.raises(RequestTooLarge, match="doctor d0: one day needs"):
        publisher("napopravku").build_requests(schedule, clinic.branches(), max_request_bytes=150)


def test_napopravku_publishes_a_fully_booked_network_with_no_slots(clinic):
    clinic.work("d3", "b1", f"{DAY} 12:00", f"{DAY} 13:00")
    clinic.busy("d3", f"{DAY} 12:00", f"{DAY} 13:00")
    schedule = clinic.schedule("napopravku")
    assert schedule.free.empty
    requests = publisher("napopravku").build_requests(schedule, clinic.branches())
    slots = [
        body
        for request, body in zip(requests, bodies(requests), strict=True)
        if request.endpoint == "slots"
    ]
    # Nothing offered, and every day says so: a day left out would keep its old slots.
    assert [offered(body) for body in slots] == [
        {"clinics": [{"mis_clinic_id": "b1", "doctors": [{"mis_doctor_id": "d3", "dates": []}]}]}
    ]
    (doctor,) = slots[0]["clinics"][0]["doctors"]
    assert len(doctor["dates"]) == 33 and all(day["slots"] == [] for day in doctor["dates"])
