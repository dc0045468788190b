"""The day ends at 23:59: nothing is published as ending at 24:00 or at/before its start.

Shifts that end at local midnight, in Moscow and in Yekaterinburg: a free slot that would
end at midnight is not offered, a busy cell that would end there ends at 23:59, and the
HH:MM payloads (ПроДокторов, НаПоправку) never carry ``24:00``.
"""

from __future__ import annotations

import json

import pytest

from ident_dev.simulators.prodoctorov import ProdoctorovSimulator
from ident_hooks.schedule.aggregators import publisher
from ident_hooks.schedule.engine import MINUTE_LABELS

DAY = "2026-12-02"
NEXT = "2026-12-03"
ZONES = pytest.mark.parametrize("zone", ["Europe/Moscow", "Asia/Yekaterinburg"])


def evening(clinic, zone: str):
    """d1 is free 20:00-24:00; d2 works 20:00-24:00 booked from 22:00 to midnight;
    d3 works a night shift 22:00-02:00."""
    clinic.work("d1", "b1", f"{DAY} 20:00", f"{NEXT} 00:00", zone)
    clinic.work("d2", "b1", f"{DAY} 20:00", f"{NEXT} 00:00", zone)
    clinic.busy("d2", f"{DAY} 22:00", f"{NEXT} 00:00", zone)
    clinic.work("d3", "b1", f"{DAY} 22:00", f"{NEXT} 02:00", zone)
    return clinic


def test_minute_labels_stop_at_23_59():
    assert len(MINUTE_LABELS) == 24 * 60
    assert (MINUTE_LABELS[0], MINUTE_LABELS[-1]) == ("00:00", "23:59")
    assert "24:00" not in set(MINUTE_LABELS)
    with pytest.raises(IndexError):
        MINUTE_LABELS[24 * 60]


@ZONES
def test_no_slot_ends_at_midnight_and_a_busy_evening_ends_at_23_59(clinic, zone):
    schedule = evening(clinic, zone).schedule("prodoctorov")
    free, busy = schedule.free, schedule.busy
    starts = ["20:00", "20:30", "21:00", "21:30", "22:00", "22:30", "23:00"]
    ends = [*starts[1:], "23:30"]  # 23:30-24:00 would end at midnight: not offered
    assert clinic.labels(free, "d1") == [
        ("b1", DAY, f"{start}-{end}") for start, end in zip(starts, ends, strict=True)
    ]
    assert clinic.labels(busy, "d2") == [("b1", DAY, "22:00-23:59")]
    assert clinic.labels(free, "d3") == [
        ("b1", DAY, "22:00-22:30"),
        ("b1", DAY, "22:30-23:00"),
        ("b1", DAY, "23:00-23:30"),
        ("b1", NEXT, "00:00-00:30"),
        ("b1", NEXT, "00:30-01:00"),
        ("b1", NEXT, "01:00-01:30"),
        ("b1", NEXT, "01:30-02:00"),
    ]
    cells = schedule.cells
    assert "24:00" not in set(cells["local_end"].astype(str))
    assert (cells["local_end"].astype(str) > cells["local_start"].astype(str)).all()
    assert (cells["ends_at"] > cells["starts_at"]).all()
    assert busy["length_minutes"].tolist() == [119]


@ZONES
def test_prodoctorov_gets_no_24_00_and_the_simulator_takes_it(
    clinic, zone, started, service_connection
):
    evening(clinic, zone)
    requests = publisher("prodoctorov").build_requests(
        clinic.schedule("prodoctorov"), clinic.branches()
    )
    assert all(b"24:00" not in request.body for request in requests)
    doctors = json.loads(requests[0].body)["schedule"]["data"]["b1"]
    cells = [c for block in doctors.values() for c in block["cells"]]
    assert all(c["time_start"] < c["time_end"] for c in cells)
    assert {"dt": DAY, "time_start": "22:00", "time_end": "23:59", "free": False} in doctors["d2"][
        "cells"
    ]
    assert doctors["d1"]["cells"][-1]["time_end"] == "23:30"

    sim = started(ProdoctorovSimulator(token="t"))
    client = publisher("prodoctorov").client(service_connection("pd_day", sim.base_url, "t"))
    assert [request.send(client).status_code for request in requests] == [204]
    assert sim.cells("b1", "d2")[-1]["time_end"] == "23:59"


@ZONES
def test_napopravku_gets_no_24_00(clinic, zone):
    evening(clinic, zone)
    requests = publisher("napopravku").build_requests(
        clinic.schedule("napopravku"), clinic.branches()
    )
    assert all(b"24:00" not in request.body for request in requests)
    slots = json.loads(requests[-1].body)
    ranges = {
        (doctor["mis_doctor_id"], date["date"]): [(s["from"], s["to"]) for s in date["slots"]]
        for doctor in slots["clinics"][0]["doctors"]
        for date in doctor["dates"]
    }
    assert ranges[("d1", DAY)] == [("20:00", "23:30")]
    assert ranges[("d2", DAY)] == [("20:00", "22:00")]
    assert ranges[("d3", DAY)] == [("22:00", "23:30")]
    assert ranges[("d3", NEXT)] == [("00:00", "02:00")]
    assert all(start < end for day in ranges.values() for start, end in day)
