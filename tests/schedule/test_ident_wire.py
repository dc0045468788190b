"""IDENT PostTimeTable on the wire: integer ids, one whole timetable, a snapshot receiver.

The facts (integrations.md, Corrections, "IDENT HTTP protocol"; ``brearey/smmikod``
``src/index.ts`` and ``__tests__/posttimetable.json``): ids are JSON integers and a
receiver answers 400 to anything else; IDENT posts the whole timetable in one request and
a receiver keeps each POST as the latest snapshot.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
import requests

from ident_dev.airflow_stack import wait_for
from ident_dev.simulators.ident_timetable import IdentTimetableSimulator
from ident_hooks.errors import PermanentFailure
from ident_hooks.schedule.aggregators import RequestTooLarge, publisher
from ident_hooks.schedule.engine import compute_schedule, resolve_settings
from ident_hooks.schedule.publish import publish_schedule
from ident_hooks.schedule.reader import read_snapshot

DAY, NEXT_DAY = "2026-12-02", "2026-12-03"
NO_WAIT = {"sleep": lambda _seconds: None}


def aliased(clinic, aggregator: str = "sberzdorovie"):
    """The schedule and branches with ``ident_id`` as the reader gives them."""
    work, busy, doctors, rules = clinic.frames()
    doctors = doctors.assign(ident_id=[2129 + n for n in range(len(doctors))])
    branches = clinic.branches()
    branches = branches.assign(ident_id=[1 + n for n in range(len(branches))])
    schedule = compute_schedule(
        work, busy, doctors, rules, resolve_settings(aggregator, None), clinic.NOW
    )
    return schedule, branches


@pytest.fixture
def network(clinic):
    """Two branches in two time zones; d3 is fully booked, d4 works in both branches."""
    clinic.work("d1", "b1", f"{DAY} 09:00", f"{DAY} 11:00")
    clinic.busy("d1", f"{DAY} 09:30", f"{DAY} 10:00")
    clinic.work("d2", "ekb", f"{DAY} 10:00", f"{DAY} 11:00", clinic.YEKT)
    clinic.work("d3", "b1", f"{DAY} 12:00", f"{DAY} 13:00")
    clinic.busy("d3", f"{DAY} 12:00", f"{DAY} 13:00")
    clinic.work("d4", "b1", f"{DAY} 14:00", f"{DAY} 15:00")
    clinic.work("d4", "ekb", f"{NEXT_DAY} 09:00", f"{NEXT_DAY} 10:00", clinic.YEKT)
    return clinic


# -- the builder ---------------------------------------------------------------------


@pytest.mark.parametrize("aggregator", ["sberzdorovie", "32top"])
def test_the_whole_timetable_is_one_request_with_integer_ids(network, aggregator):
    schedule, branches = aliased(network, aggregator)
    requests_ = publisher(aggregator).build_requests(schedule, branches)
    assert [(r.endpoint, r.kind, r.branch_ids, r.doctor_count) for r in requests_] == [
        ("PostTimeTable", "timetable", ("b1", "ekb"), 4)
    ]
    body = json.loads(requests_[0].body)
    assert body["Doctors"] == [
        {"Id": 2129, "Name": "Врач d1"},
        {"Id": 2130, "Name": "Врач d2"},
        {"Id": 2131, "Name": "Врач d3"},
        {"Id": 2132, "Name": "Врач d4"},
    ]
    assert body["Branches"] == [{"Id": 1, "Name": "Филиал b1"}, {"Id": 2, "Name": "Филиал ekb"}]
    intervals = body["Intervals"]
    assert all(type(i["DoctorId"]) is int and type(i["BranchId"]) is int for i in intervals)
    assert len(intervals) == len(schedule.cells)
    assert intervals[:2] == [
        {
            "DoctorId": 2129,
            "BranchId": 1,
            "StartDateTime": f"{DAY}T09:00:00+03:00",
            "LengthInMinutes": 30,
            "IsBusy": False,
        },
        {
            "DoctorId": 2129,
            "BranchId": 1,
            "StartDateTime": f"{DAY}T09:30:00+03:00",
            "LengthInMinutes": 30,
            "IsBusy": True,
        },
    ]
    assert {
        "DoctorId": 2131,
        "BranchId": 1,
        "StartDateTime": f"{DAY}T12:00:00+03:00",
        "LengthInMinutes": 60,
        "IsBusy": True,
    } in intervals
    assert sorted(
        (i["BranchId"], i["StartDateTime"]) for i in intervals if i["DoctorId"] == 2132
    ) == [
        (1, f"{DAY}T14:00:00+03:00"),
        (1, f"{DAY}T14:30:00+03:00"),
        (2, f"{NEXT_DAY}T09:00:00+05:00"),
        (2, f"{NEXT_DAY}T09:30:00+05:00"),
    ]


def test_a_timetable_over_the_receivers_limit_is_refused_not_split(clinic):
    for doctor in range(6):
        for day in range(2, 7):
            date = f"2026-12-{day:02d}"
            clinic.work(f"d{doctor}", f"b{doctor % 2}", f"{date} 09:00", f"{date} 18:00")
    schedule, branches = aliased(clinic)
    (whole,) = publisher("sberzdorovie").build_requests(schedule, branches)
    size = len(whole.body)
    assert size > 30_000
    # The kind's default limit: the largest public receiver's bodyParser.json 50 MiB.
    assert publisher("sberzdorovie").spec.max_request_bytes == 50 * 1024 * 1024
    (exact,) = publisher("sberzdorovie").build_requests(schedule, branches, max_request_bytes=size)
    assert exact.body == whole.body
    with pytest.raises(
        RequestTooLarge,
        match=f"is {size} bytes, more than the receiver's limit of {size - 1} bytes",
    ):
        publisher("sberzdorovie").build_requests(schedule, branches, max_request_bytes=size - 1)


def test_a_branch_without_an_ident_id_is_refused(network):
    schedule, branches = aliased(network)
    branches.loc[branches["branch_id"] == "ekb", "ident_id"] = None
    with pytest.raises(ValueError, match=r"branches without an IDENT id .*\['ekb'\]"):
        publisher("sberzdorovie").build_requests(schedule, branches)
    with pytest.raises(ValueError, match="doctors carry no ident_id column"):
        publisher("sberzdorovie").build_requests(network.schedule("sberzdorovie"), branches)


def test_a_timetable_missing_ident_ids_fails_for_good_not_for_a_retry(network):
    schedule, branches = aliased(network)
    branches.loc[branches["branch_id"] == "ekb", "ident_id"] = None
    with pytest.raises(PermanentFailure):
        publisher("sberzdorovie").build_requests(schedule, branches)


# -- the receiver ----------------------------------------------------------------------


def post(sim, body, key="k"):
    return requests.post(
        f"{sim.base_url}/PostTimeTable",
        data=body if isinstance(body, bytes) else json.dumps(body),
        headers={"IDENT-Integration-Key": key, "Content-Type": "application/json"},
        timeout=5,
    )


def timetable(doctors, branches, intervals):
    return {
        "Doctors": [{"Id": d, "Name": f"Врач {d}"} for d in doctors],
        "Branches": [{"Id": b, "Name": f"Филиал {b}"} for b in branches],
        "Intervals": [
            {
                "DoctorId": d,
                "BranchId": b,
                "StartDateTime": start,
                "LengthInMinutes": 30,
                "IsBusy": False,
            }
            for d, b, start in intervals
        ],
    }


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("Doctors", "2129"),
        ("Doctors", 2129.0),
        ("Doctors", True),
        ("Doctors", 2**31),
        ("Branches", "msk"),
        ("DoctorId", "2129"),
        ("BranchId", "1"),
    ],
)
def test_the_receiver_answers_400_to_ids_that_are_not_integers(started, where, value):
    sim = started(IdentTimetableSimulator(key="k"))
    body = timetable([2129], [1], [(2129, 1, f"{DAY}T09:00:00+03:00")])
    if where in ("Doctors", "Branches"):
        body[where][0]["Id"] = value
    else:
        body["Intervals"][0][where] = value
    answer = post(sim, body)
    assert answer.status_code == 400
    assert answer.headers["Content-Type"].startswith("text/plain")
    assert "integer" in answer.text
    assert sim.snapshot is None and sim.accepted == 0


def test_each_post_replaces_the_whole_timetable(started):
    sim = started(IdentTimetableSimulator(key="k"))
    first = timetable(
        [7, 8], [1, 2], [(7, 1, f"{DAY}T09:00:00+03:00"), (8, 2, f"{DAY}T09:00:00+05:00")]
    )
    assert (post(sim, first).status_code, post(sim, first).status_code) == (200, 200)
    assert sim.doctors == {7: "Врач 7", 8: "Врач 8"} and sim.branches == {
        1: "Филиал 1",
        2: "Филиал 2",
    }
    # The second part of a split timetable leaves only itself at a snapshot receiver.
    assert post(sim, timetable([8], [2], [(8, 2, f"{DAY}T10:00:00+05:00")])).status_code == 200
    assert sim.accepted == 3
    assert sim.doctors == {8: "Врач 8"} and sim.branches == {2: "Филиал 2"}
    assert sim.intervals(1, 7) == []
    assert [i["StartDateTime"] for i in sim.intervals(2, 8)] == [f"{DAY}T10:00:00+05:00"]


def test_the_receiver_refuses_an_id_listed_twice_and_an_oversized_body(started):
    sim = started(IdentTimetableSimulator(key="k", max_body_bytes=400))
    twice = timetable([7, 7], [1], [])
    answer = post(sim, twice)
    assert (answer.status_code, answer.text) == (400, "Doctors[1]: Id 7 is listed twice")
    big = timetable([7], [1], [(7, 1, f"{DAY}T{h:02d}:00:00+03:00") for h in range(9, 15)])
    assert post(sim, big).status_code == 413
    assert sim.snapshot is None
    assert IdentTimetableSimulator(key="k").max_body_bytes == 50 * 1024 * 1024


# -- publishing from the clinic database -------------------------------------------------


@pytest.fixture
def clinic_db(clinic_conn, clinic):
    """Two branches, three doctors with work time, in the clinic database."""
    clinic_conn.execute("truncate integration.publish_log, integration.publish_state")
    clinic_conn.execute(
        "insert into clinic.branches (branch_id, name, timezone) values"
        " ('msk', 'Москва, Тверская', 'Europe/Moscow'),"
        " ('ekb', 'Екатеринбург, Ленина', 'Asia/Yekaterinburg')"
    )
    for doctor_id, name in (
        ("doc-1", "Петров Геннадий Андреевич"),
        ("doc-2", "Иванова Мария Сергеевна"),
        ("doc-3", "Семёнов Илья Игоревич"),
    ):
        add_doctor(clinic_conn, doctor_id, name)
    for doctor_id, branch_id, zone, day in (
        ("doc-1", "msk", clinic.MSK, DAY),
        ("doc-2", "ekb", clinic.YEKT, DAY),
        ("doc-3", "msk", clinic.MSK, DAY),
        ("doc-3", "ekb", clinic.YEKT, NEXT_DAY),
    ):
        add_work(clinic_conn, clinic, doctor_id, branch_id, zone, day)
    clinic_conn.commit()
    return clinic_conn


def add_doctor(conn, doctor_id, name):
    conn.execute(
        "insert into clinic.doctors (doctor_id, full_name, specialty) values (%s, %s, 'Терапевт')",
        (doctor_id, name),
    )


def add_work(conn, clinic, doctor_id, branch_id, zone, day):
    conn.execute(
        "insert into clinic.work_intervals (doctor_id, branch_id, starts_at, ends_at)"
        " values (%s, %s, %s, %s)",
        (doctor_id, branch_id, clinic.at(f"{day} 09:00", zone), clinic.at(f"{day} 12:00", zone)),
    )


def aliases(conn) -> dict[tuple[str, str], int]:
    rows = conn.execute("select entity, clinic_id, ident_id from integration.ident_ids")
    return {(entity, clinic_id): ident_id for entity, clinic_id, ident_id in rows}


@pytest.fixture
def receiver(started, service_connection):
    sim = started(IdentTimetableSimulator(key="ident-key", path_prefix="/ident"))
    conn_id = service_connection("ident_wire", f"{sim.base_url}/ident", "ident-key")
    return sim, publisher("sberzdorovie").client(conn_id, **NO_WAIT)


def test_one_publish_run_leaves_every_branch_and_doctor_at_a_snapshot_receiver(
    clinic_db, clinic, receiver
):
    sim, client = receiver
    summary = publish_schedule("sberzdorovie", conn=clinic_db, client=client, now=clinic.NOW)
    assert (summary.status, summary.requests_sent, sim.accepted) == ("sent", 1, 1)
    ids = aliases(clinic_db)
    assert sim.branches == {
        ids["branch", "msk"]: "Москва, Тверская",
        ids["branch", "ekb"]: "Екатеринбург, Ленина",
    }
    assert sim.doctors == {
        ids["doctor", "doc-1"]: "Петров Геннадий Андреевич",
        ids["doctor", "doc-2"]: "Иванова Мария Сергеевна",
        ids["doctor", "doc-3"]: "Семёнов Илья Игоревич",
    }
    assert sorted(sim.timetable) == sorted(
        (ids["branch", branch], ids["doctor", doctor])
        for branch, doctor in (
            ("msk", "doc-1"),
            ("ekb", "doc-2"),
            ("msk", "doc-3"),
            ("ekb", "doc-3"),
        )
    )
    assert all(len(intervals) == 6 for intervals in sim.timetable.values())  # 3 h of 30 min
    sent = sim.received("PostTimeTable")[0].json()
    assert all(type(d["Id"]) is int for d in sent["Doctors"] + sent["Branches"])


def test_ident_ids_stay_and_a_new_doctor_gets_an_unused_one(clinic_db, clinic, receiver):
    sim, client = receiver
    publish_schedule("sberzdorovie", conn=clinic_db, client=client, now=clinic.NOW)
    first = dict(sim.doctors)
    before = aliases(clinic_db)
    used = set(before.values())

    again = publish_schedule(
        "sberzdorovie", conn=clinic_db, client=client, now=clinic.NOW + timedelta(minutes=10)
    )
    assert (again.requests_sent, again.requests_skipped) == (0, 1)  # the same body
    assert aliases(clinic_db) == before

    add_doctor(clinic_db, "doc-4", "Орлова Анна Олеговна")
    add_work(clinic_db, clinic, "doc-4", "msk", clinic.MSK, NEXT_DAY)
    clinic_db.commit()
    publish_schedule(
        "sberzdorovie", conn=clinic_db, client=client, now=clinic.NOW + timedelta(minutes=20)
    )
    assert sim.accepted == 2
    new_id = aliases(clinic_db)["doctor", "doc-4"]
    assert new_id not in used
    assert sim.doctors == {**first, new_id: "Орлова Анна Олеговна"}

    # A deleted doctor keeps the number: it is never handed to anyone else.
    gone = before["doctor", "doc-2"]
    clinic_db.execute("delete from clinic.doctors where doctor_id = 'doc-2'")
    clinic_db.commit()
    publish_schedule(
        "sberzdorovie", conn=clinic_db, client=client, now=clinic.NOW + timedelta(minutes=30)
    )
    assert gone not in sim.doctors and len(sim.doctors) == 3
    add_doctor(clinic_db, "doc-5", "Новиков Артём Сергеевич")
    add_doctor(clinic_db, "doc-2", "Иванова Мария Сергеевна")
    clinic_db.commit()
    snapshot = read_snapshot(clinic_db, "sberzdorovie", None, now=clinic.NOW, days_ahead=30)
    by_doctor = dict(zip(snapshot.doctors["doctor_id"], snapshot.doctors["ident_id"], strict=True))
    assert by_doctor["doc-2"] == gone
    assert by_doctor["doc-5"] not in {*used, new_id}
    assert dict(
        zip(snapshot.branches["branch_id"], snapshot.branches["ident_id"], strict=True)
    ) == {
        "msk": before["branch", "msk"],
        "ekb": before["branch", "ekb"],
    }


def test_two_runs_assigning_the_same_new_doctor_agree(clinic_db, clinic, clinic_db_url):
    import psycopg

    add_doctor(clinic_db, "doc-9", "Волков Максим Андреевич")
    clinic_db.commit()
    first = read_snapshot(clinic_db, "32top", None, now=clinic.NOW, days_ahead=30)
    seen = {}

    def other_run():
        with psycopg.connect(clinic_db_url, application_name="other-run") as other:
            snapshot = read_snapshot(other, "sberzdorovie", None, now=clinic.NOW, days_ahead=30)
            doctors = snapshot.doctors
            seen.update(zip(doctors["doctor_id"], doctors["ident_id"], strict=True))

    def other_run_waits_on_a_lock() -> bool:
        with psycopg.connect(clinic_db_url, autocommit=True) as observer:
            return observer.execute(
                "select exists (select from pg_stat_activity"
                " where application_name = 'other-run' and wait_event_type = 'Lock')"
            ).fetchone()[0]

    thread = threading.Thread(target=other_run)
    thread.start()
    # Only once it waits on the uncommitted alias of doc-9 does the commit test the race.
    wait_for(
        "the other run to wait on doc-9's alias",
        other_run_waits_on_a_lock,
        deadline=time.monotonic() + 30,
        poll=0.05,
    )
    clinic_db.commit()
    thread.join(timeout=10)
    mine = dict(zip(first.doctors["doctor_id"], first.doctors["ident_id"], strict=True))
    assert seen == mine
    assert list(aliases(clinic_db)).count(("doctor", "doc-9")) == 1
