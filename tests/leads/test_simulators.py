"""The simulators follow integrations.md: auth, shapes, paging, errors and generated data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import requests

from ident_dev.simulators.base import Fault
from ident_dev.simulators.flexbe import FlexbeSimulator
from ident_dev.simulators.ident_tickets import IdentTicketsSimulator
from ident_dev.simulators.napopravku import NapopravkuSimulator
from ident_dev.simulators.uis import UisSimulator
from ident_hooks.leads.normalise import normalise_phone, referrer_host

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
BEARER = {"Authorization": "Bearer napopravku-token"}


def rpc(uis, params, method="get.offline_messages_report"):
    body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": params}
    reply = requests.post(f"{uis.base_url}/v2.0", json=body, timeout=5)
    assert reply.status_code == 200  # JSON-RPC errors are HTTP 200 too
    return reply.json()


def test_generated_leads_are_deterministic_and_realistic(doctors):
    first = IdentTicketsSimulator(doctors=doctors, seed=42)
    second = IdentTicketsSimulator(doctors=doctors, seed=42)
    leads = first.generate(300, NOW)
    assert leads == second.generate(300, NOW)
    assert all(
        NOW - timedelta(seconds=110) <= datetime.fromisoformat(t["DateAndTime"]) <= NOW
        for t in leads
    )
    phones = [t["ClientPhone"] for t in leads]
    assert len({phone[:2] for phone in phones}) >= 4  # "8 ", "+7", "89", "91", ...
    valid = sum(normalise_phone(phone) is not None for phone in phones)
    assert 0.85 * len(phones) < valid < len(phones)  # a few typos on purpose
    hosts = {referrer_host(t["HttpReferer"]) for t in leads}
    assert hosts >= {"yandex.ru", "google.com", "vk.com", "ok.ru", "t.me", "prodoctorov.ru"}
    assert None in hosts and "napopravku.ru" in hosts
    with_doctor = [t for t in leads if "DoctorId" in t]
    assert 0.2 * len(leads) < len(with_doctor) < 0.6 * len(leads)
    assert {t["DoctorName"] for t in with_doctor} <= {name for _, name in doctors}
    for fixed in (first.add_lead(NOW, ClientFullName="Тест"), first.records[-1]):
        assert fixed["ClientFullName"] == "Тест"


def test_tickets_auth_paging_and_faults(running, doctors):
    site = running(IdentTicketsSimulator(doctors=doctors, key="k", path_prefix="/ident"))
    site.generate(7, NOW)
    url = f"{site.base_url}/ident/GetTickets"
    params = {"dateTimeFrom": "2026-11-26T00:00:00+03:00", "dateTimeTo": NOW.isoformat()}
    assert requests.get(url, params=params, timeout=5).status_code == 401
    wrong = requests.get(url, params=params, headers={"IDENT-Integration-Key": "x"}, timeout=5)
    assert (wrong.status_code, wrong.text) == (403, "Invalid IDENT-Integration-Key")
    key = {"IDENT-Integration-Key": "k"}
    page = requests.get(url, params={**params, "limit": 5, "offset": 5}, headers=key, timeout=5)
    assert len(page.json()) == 2
    site.inject(Fault(status=500, times=1))
    assert requests.get(url, params=params, headers=key, timeout=5).status_code == 500
    assert len(requests.get(url, params=params, headers=key, timeout=5).json()) == 7


def test_32top_style_sends_surname_and_start_only(doctors):
    top = IdentTicketsSimulator(doctors=doctors, style="32top")
    ticket = top.add_lead(NOW, with_doctor=True)
    assert "PlanStart" in ticket and "PlanEnd" not in ticket and "DoctorId" not in ticket
    assert " " not in ticket["DoctorName"]


def test_uis_validates_like_the_data_api(running):
    uis = running(UisSimulator(minute_limit=3, clock=lambda: NOW))
    uis.add_lead(NOW - timedelta(hours=1))
    base = {"access_token": "uis-token", "date_from": "2026-11-26 00:00:00"}
    ok = rpc(uis, {**base, "date_till": "2026-11-26 12:00:00", "fields": ["id", "utm_source"]})
    assert ok["id"] == 7 and set(ok["result"]["data"][0]) == {"id", "utm_source"}
    assert ok["result"]["metadata"]["total_items"] == 1
    assert ok["result"]["metadata"]["limits"]["minute_remaining"] == 2
    too_long = rpc(uis, {**base, "date_till": "2027-02-26 00:00:01"})
    assert too_long["error"]["data"]["mnemonic"] == "date_interval_limit_reached"
    assert too_long["error"]["code"] == -32602
    bad_token = rpc(uis, {**base, "access_token": "x", "date_till": "2026-11-26 12:00:00"})
    assert bad_token["error"]["data"]["mnemonic"] == "access_token_invalid"
    assert rpc(uis, base)["error"]["data"] == {
        "mnemonic": "required_parameter_missed",
        "field": "date_till",
        "value": None,
    }
    assert rpc(uis, base, method="get.calls_report")["error"]["code"] == -32601
    assert rpc(uis, {**base, "date_till": "2026-11-26 12:00:00"})["error"]["data"]["mnemonic"] == (
        "limit_exceeded"
    )  # the fourth call this minute


def test_flexbe_shapes_and_errors(running):
    flexbe = running(FlexbeSimulator(leads_as="object", max_count=2))
    leads = [flexbe.add_lead(NOW - timedelta(minutes=m)) for m in (3, 2, 1)]
    url = f"{flexbe.base_url}/mod/api/"
    reply = requests.get(
        url, params={"api_key": "flexbe-key", "method": "getLeads", "count": 50}, timeout=5
    )
    body = reply.json()
    assert body["status"] == 1 and body["data"]["total"] == 3
    assert list(body["data"]["leads"]) == [str(lead["id"]) for lead in leads[:2]]  # capped
    dated = {
        "date_from": int((NOW - timedelta(minutes=2)).timestamp()),
        "date_to": int(NOW.timestamp()),
    }
    reply = requests.get(
        url, params={"api_key": "flexbe-key", "method": "getLeads", **dated}, timeout=5
    )
    assert reply.json()["data"]["total"] == 2
    bad = requests.get(url, params={"api_key": "nope", "method": "getLeads"}, timeout=5).json()
    assert bad == {"status": 0, "error": {"code": 0, "msg": "Invalid api key"}}
    unknown = requests.get(url, params={"api_key": "flexbe-key", "method": "x"}, timeout=5).json()
    assert unknown["error"]["code"] == 2


def test_napopravku_bookings_api(running, clock):
    service = running(NapopravkuSimulator(clock=clock))
    url = f"{service.base_url}/api/v1/appointments"
    assert requests.get(url, timeout=5).json() == {"message": "Unauthenticated."}
    service.generate(3, clock())
    listed = requests.get(url, params={"paging[per_page]": 2}, headers=BEARER, timeout=5).json()
    assert listed["result"]["meta"] == {
        "total": 3,
        "per_page": 2,
        "page": 1,
        "from": 1,
        "to": 2,
        "last_page": 2,
    }
    item = listed["result"]["items"][0]
    assert set(item) >= {"uuid", "clinic", "doctor", "start_time", "patient_phone", "created_at"}
    too_big = requests.get(url, params={"paging[per_page]": 101}, headers=BEARER, timeout=5)
    assert too_big.status_code == 422 and "paging.per_page" in too_big.json()["errors"]
    ack = f"{url}/set-received"
    missing = requests.post(
        ack, json={"appointment_uuid": "nope", "success": True}, headers=BEARER, timeout=5
    )
    assert missing.status_code == 404
    malformed = requests.post(
        ack, json={"appointment_uuid": item["uuid"]}, headers=BEARER, timeout=5
    )
    assert malformed.status_code == 422 and "success" in malformed.json()["errors"]
    done = requests.post(
        ack,
        json={"appointment_uuid": item["uuid"], "success": True, "message": ""},
        headers=BEARER,
        timeout=5,
    )
    assert done.json() == {"result": True}
    pending = requests.get(url, params={"is_received": "0"}, headers=BEARER, timeout=5).json()
    assert item["uuid"] not in {i["uuid"] for i in pending["result"]["items"]}
    clock.advance(minutes=10)
    cancelled = requests.get(url, params={"is_cancelled": "1"}, headers=BEARER, timeout=5).json()
    assert cancelled["result"]["meta"]["total"] == 2  # the acknowledged one stays


def post(service, endpoint, body):
    return requests.post(
        f"{service.base_url}/api/v1/{endpoint}", json=body, headers=BEARER, timeout=5
    )


def test_napopravku_schedule_endpoints_validate_strictly(running, clock):
    service = running(NapopravkuSimulator(clock=clock))
    today = clock().date()
    assert post(
        service,
        "clinics",
        {"clinics": [{"mis_clinic_id": "msk-1", "name": "Улыбка", "comment": None}]},
    ).json() == {"result": {"created": 1, "updated": 0}}
    doctor = {
        "mis_doctor_id": "doc-1",
        "name": "Петров Г. А.",
        "comment": "",
        "mis_clinic_ids": ["msk-1"],
    }
    assert post(service, "doctors", {"doctors": [doctor]}).status_code == 200
    slots = {
        "clinics": [
            {
                "mis_clinic_id": "msk-1",
                "doctors": [
                    {
                        "mis_doctor_id": "doc-1",
                        "dates": [
                            {
                                "date": today.isoformat(),
                                "slots": [
                                    {"from": "16:00", "to": "17:00", "duration": 15},
                                    {"from": "10:00", "to": "10:30", "duration": None},
                                ],
                            }
                        ],
                    }
                ],
            }
        ]
    }
    assert post(service, "slots", slots).status_code == 200
    assert service.expanded_slots("msk-1", "doc-1", today.isoformat()) == [
        ("10:00", "10:30"),
        ("16:00", "16:15"),
        ("16:15", "16:30"),
        ("16:30", "16:45"),
        ("16:45", "17:00"),
    ]
    assert service.payloads["slots"] == [slots] and set(service.clinics) == {"msk-1"}

    errors = post(
        service, "doctors", {"doctors": [{**doctor, "mis_clinic_ids": ["spb-1"], "extra": 1}]}
    ).json()
    assert set(errors["errors"]) == {"doctors.0.extra", "doctors.0.mis_clinic_ids.0"}
    day = slots["clinics"][0]["doctors"][0]["dates"][0]
    bad_days = [
        {**day, "date": (today + timedelta(days=33)).isoformat()},
        {**day, "slots": [{"from": "9:00", "to": "10:00", "duration": 15}]},
        {**day, "slots": [{"from": "10:00", "to": "11:00"}, {"from": "10:30", "to": "12:00"}]},
        {**day, "slots": [{"from": "11:00", "to": "10:00", "duration": 0}]},
    ]
    for bad_day in bad_days:
        body = {
            "clinics": [
                {
                    "mis_clinic_id": "msk-1",
                    "doctors": [{"mis_doctor_id": "doc-1", "dates": [bad_day]}],
                }
            ]
        }
        reply = post(service, "slots", body)
        assert reply.status_code == 422, bad_day
        assert all(
            path.startswith("clinics.0.doctors.0.dates.0") for path in reply.json()["errors"]
        )
    unknown_doctor = {
        "clinics": [
            {"mis_clinic_id": "msk-1", "doctors": [{"mis_doctor_id": "doc-9", "dates": []}]}
        ]
    }
    assert (
        "clinics.0.doctors.0.mis_doctor_id"
        in post(service, "slots", unknown_doctor).json()["errors"]
    )
    assert len(service.payloads["slots"]) == 1  # rejected payloads are not kept
