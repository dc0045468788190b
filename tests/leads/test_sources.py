"""Each lead-source connector against its simulator over real loopback HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from ident_dev.simulators.base import Fault
from ident_dev.simulators.flexbe import FlexbeSimulator, request_params
from ident_dev.simulators.ident_tickets import IdentTicketsSimulator
from ident_dev.simulators.napopravku import NapopravkuSimulator
from ident_dev.simulators.uis import UisSimulator
from ident_hooks.config import load_config
from ident_hooks.http_client import ServiceRejected
from ident_hooks.leads.sources import (
    Acknowledging,
    PullSource,
    PushSource,
    SourceError,
    SourceLimitReached,
    SourceSettings,
    parse_records,
)
from ident_hooks.leads.sources.napopravku import NapopravkuSource
from ident_hooks.leads.sources.uis import split_period
from ident_hooks.registry import LEAD_SOURCE_KINDS

MOSCOW = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
DAY_START = datetime(2026, 11, 26, tzinfo=MOSCOW)  # 00:00 clinic time of the last lead's day


def pull(simulator, client, source, matcher, *, period=(DAY_START, NOW), page_size=0):
    connector = load_config().lead_source(source).spec.connector_class()
    settings = SourceSettings(source=source, page_size=page_size)
    records = list(connector.fetch(client, *period, settings=settings))
    return records, parse_records(connector, records, settings=settings, matcher=matcher)


def test_configured_sources_name_their_connector_by_kind():
    config = load_config()
    assert config.lead_source("32top").kind == config.lead_source("site_main").kind
    assert config.lead_source("site_main").spec.connector_class().kind == "ident_tickets"
    for unknown in ("site_main", "bitrix", "32top"):
        assert unknown not in LEAD_SOURCE_KINDS


def test_every_kind_names_a_connector_that_declares_what_the_registry_says():
    for kind in LEAD_SOURCE_KINDS.values():
        connector = kind.connector_class()
        assert connector.kind == kind.name
        assert issubclass(connector, PushSource if kind.push else PullSource)
        assert issubclass(connector, Acknowledging) == kind.acknowledges
    assert NapopravkuSource.record_key == "uuid"


# -- IDENT GetTickets (sites, 32top) ---------------------------------------------------------
def test_site_tickets_walk_every_page_and_keep_marketing_fields(
    running, client_for, doctors, matcher
):
    site = running(IdentTicketsSimulator(doctors=doctors, seed=1, path_prefix="/ident"))
    site.generate(23, NOW, spread_seconds=3600)
    site.add_lead(NOW - timedelta(days=2))  # before the period
    client = client_for(site, "site_main", "ident-key", "/ident")

    records, batch = pull(site, client, "site_main", matcher, page_size=5)

    assert len(records) == len(batch.leads) == 23 and not batch.rejects
    calls = site.received("GetTickets")
    # A short page is not the end (partners clamp limit): only the empty one at 23 is.
    assert [call.arg("offset") for call in calls] == ["0", "5", "10", "15", "20", "23"]
    assert {call.arg("limit") for call in calls} == {"5"}
    assert datetime.fromisoformat(calls[0].arg("dateTimeFrom")) == DAY_START
    assert datetime.fromisoformat(calls[0].arg("dateTimeTo")) == NOW
    assert {call.headers["ident-integration-key"] for call in calls} == {"ident-key"}
    by_id = {record["Id"]: record for record in records}
    for lead in batch.leads:
        ticket = by_id[lead.external_id]
        assert lead.source == "site_main"
        assert lead.utm_source == ticket["UtmSource"] and lead.utm_term == ticket["UtmTerm"]
        assert lead.referrer == ticket["HttpReferer"]
        assert lead.raw == ticket
        if "DoctorId" in ticket:
            assert lead.doctor_id == ticket["DoctorId"]
            assert lead.requested_end - lead.requested_start == timedelta(minutes=30)
    assert any(lead.utm_source for lead in batch.leads)
    assert {lead.referrer_host for lead in batch.leads} >= {"yandex.ru", None}


def test_32top_matches_doctor_by_surname(running, client_for, doctors, matcher):
    top = running(IdentTicketsSimulator(doctors=doctors, seed=2, style="32top"))
    expected = {}
    for doctor_id, full_name in [doctors[0], doctors[3]]:
        ticket = top.add_lead(NOW - timedelta(minutes=5), with_doctor=True)
        ticket["DoctorName"] = full_name.split(" ")[0].upper()
        expected[ticket["Id"]] = doctor_id
    ambiguous = top.add_lead(NOW - timedelta(minutes=4), DoctorName="Иванова")
    client = client_for(top, "32top", "ident-key")

    _, batch = pull(top, client, "32top", matcher)

    doctors_by_lead = {lead.external_id: lead.doctor_id for lead in batch.leads}
    assert {key: doctors_by_lead[key] for key in expected} == expected
    assert doctors_by_lead[ambiguous["Id"]] is None
    unmatched = next(lead for lead in batch.leads if lead.external_id == ambiguous["Id"])
    assert unmatched.doctor_name_raw == "Иванова"


def test_malformed_tickets_are_rejected_one_by_one(running, client_for, doctors, matcher):
    site = running(IdentTicketsSimulator(doctors=doctors, seed=3))
    good = site.generate(4, NOW)
    for kind in ("missing_id", "bad_time", "wrong_type"):
        site.add_malformed(kind, NOW - timedelta(seconds=30))
    site.add_record("not an object", NOW - timedelta(seconds=20))
    odd = site.add_lead(
        NOW - timedelta(seconds=10),
        ClientFullName="Robert'); DROP TABLE leads;--\x00 👩\u200d⚕️",
        Comment="я" * 200_000,
    )
    client = client_for(site, "site_main", "ident-key")

    _, batch = pull(site, client, "site_main", matcher)

    assert sorted(lead.external_id for lead in batch.leads) == sorted(
        [ticket["Id"] for ticket in good] + [odd["Id"]]
    )
    assert sorted(reject.reason.split(":")[0] for reject in batch.rejects) == [
        "ClientFullName",
        "DateAndTime",
        "Id",
        "record is not an object",
    ]
    assert all(reject.source == "site_main" for reject in batch.rejects)
    kept = next(lead for lead in batch.leads if lead.external_id == odd["Id"])
    assert kept.name == "Robert'); DROP TABLE leads;-- 👩\u200d⚕️"
    assert kept.comment == "я" * 200_000
    assert "\x00" not in kept.raw["ClientFullName"]


def test_wrong_key_fails_at_once_without_leaking_it(running, client_for, matcher):
    site = running(IdentTicketsSimulator(key="right-key"))
    client = client_for(site, "site_main", "wrong-secret-key")
    with pytest.raises(ServiceRejected) as failure:
        pull(site, client, "site_main", matcher)
    assert failure.value.status == 403
    assert "wrong-secret-key" not in str(failure.value)
    assert len(site.requests) == 1


def test_late_lead_with_earlier_time_is_found_by_the_next_pull(
    running, client_for, doctors, matcher
):
    site = running(IdentTicketsSimulator(doctors=doctors, seed=4))
    site.generate(3, NOW - timedelta(hours=1))
    client = client_for(site, "site_main", "ident-key")
    _, first = pull(site, client, "site_main", matcher)
    late = site.add_lead(NOW - timedelta(hours=5))  # appears now, created hours ago
    _, second = pull(
        site, client, "site_main", matcher, period=(DAY_START, NOW + timedelta(minutes=2))
    )
    assert late["Id"] not in {lead.external_id for lead in first.leads}
    assert late["Id"] in {lead.external_id for lead in second.leads}


def test_server_errors_midway_are_retried_by_the_client(running, client_for, doctors, matcher):
    site = running(IdentTicketsSimulator(doctors=doctors, seed=5))
    site.generate(12, NOW)
    # An overloaded partner says when to come back; a plain 503 would mean switched off.
    site.inject(Fault(status=503, retry_after="1", times=1, path_contains="GetTickets"))
    site.inject(Fault(status=429, retry_after="1", times=1, path_contains="GetTickets"))
    client = client_for(site, "site_main", "ident-key")
    records, batch = pull(site, client, "site_main", matcher, page_size=5)
    assert len(batch.leads) == 12 and len(records) == 12


# -- UIS --------------------------------------------------------------------------------------
def test_uis_pages_until_total_items_and_fills_utm_from_landing_url(
    running, client_for, doctors, matcher
):
    uis = running(UisSimulator(doctors=doctors, seed=6))
    uis.generate(17, NOW, spread_seconds=3600)
    client = client_for(uis, "uis", "uis-token")

    records, batch = pull(uis, client, "uis", matcher, page_size=6)

    assert len(records) == len(batch.leads) == 17
    calls = [call.json()["params"] for call in uis.received("/v2.0")]
    assert [params["offset"] for params in calls] == [0, 6, 12]
    assert calls[0]["date_from"] == "2026-11-26 00:00:00"  # account (Moscow) time
    assert calls[0]["date_till"] == "2026-11-26 12:00:00"
    assert calls[0]["access_token"] == "uis-token"
    by_id = {str(record["id"]): record for record in records}
    from_url_only = 0
    for lead in batch.leads:
        record = by_id[lead.external_id]
        assert lead.landing_url == record["entrance_page"]
        assert lead.referrer == record["referrer"]
        if "utm_source=" in (record["entrance_page"] or ""):
            assert lead.utm_source is not None
            from_url_only += record["utm_source"] is None
    assert from_url_only > 0  # some tags existed only in the landing URL and survived


def test_uis_splits_periods_longer_than_three_months(running, client_for, doctors, matcher):
    uis = running(UisSimulator(doctors=doctors, seed=7))
    start = datetime(2026, 1, 31, tzinfo=MOSCOW)
    moments = [start + timedelta(days=days) for days in (0, 60, 95, 150, 230, 298)]
    for moment in moments:
        uis.add_lead(moment)
    client = client_for(uis, "uis", "uis-token")

    _, batch = pull(uis, client, "uis", matcher, period=(start, NOW))

    assert len(batch.leads) == len(moments)
    windows = [
        (c.json()["params"]["date_from"], c.json()["params"]["date_till"]) for c in uis.requests
    ]
    assert windows[0] == ("2026-01-31 00:00:00", "2026-04-30 00:00:00")
    assert windows[-1][1] == "2026-11-26 12:00:00"
    assert all(till == following for (_, till), (following, _) in pairwise(windows))
    assert len(split_period(start, NOW.astimezone(MOSCOW))) == len(windows) == 4


def test_uis_errors_are_reported_by_mnemonic(running, client_for, matcher):
    uis = running(UisSimulator())
    client = client_for(uis, "uis", "uis-token")
    uis.inject_rpc_error("limit_exceeded")
    with pytest.raises(SourceLimitReached, match="limit_exceeded") as limited:
        pull(uis, client, "uis", matcher)
    assert limited.value.retryable
    uis.inject_rpc_error("ip_not_whitelisted", "IP 10.0.0.1 is not allowed")
    with pytest.raises(SourceError, match="ip_not_whitelisted") as refused:
        pull(uis, client, "uis", matcher)
    assert not refused.value.retryable
    wrong = client_for(uis, "uis", "stale-token")
    with pytest.raises(SourceError, match="access_token_invalid") as invalid:
        pull(uis, wrong, "uis", matcher)
    assert "stale-token" not in str(invalid.value)


# -- Flexbe -------------------------------------------------------------------------------------
@pytest.mark.parametrize("leads_as", ["object", "list"])
def test_flexbe_sends_the_period_and_enforces_it_itself(
    running, client_for, doctors, matcher, leads_as
):
    flexbe = running(
        FlexbeSimulator(doctors=doctors, seed=8, leads_as=leads_as, honour_dates=False)
    )
    inside = flexbe.generate(9, NOW, spread_seconds=3600)
    flexbe.add_lead(DAY_START - timedelta(seconds=1))
    flexbe.add_lead(NOW)  # the period's end is exclusive
    client = client_for(flexbe, "flexbe", "flexbe-key")

    records, batch = pull(flexbe, client, "flexbe", matcher, page_size=4)

    assert sorted(lead.external_id for lead in batch.leads) == sorted(
        str(lead["id"]) for lead in inside
    )
    calls = [request_params(call) for call in flexbe.received("/mod/api")]
    assert [params["start"] for params in calls] == ["0", "4", "8"]
    assert {params["date_from"] for params in calls} == {str(int(DAY_START.timestamp()))}
    assert {params["date_to"] for params in calls} == {str(int(NOW.timestamp()))}
    assert {params["api_key"] for params in calls} == {"flexbe-key"}
    by_id = {str(record["id"]): record for record in records}
    for lead in batch.leads:
        utm = by_id[lead.external_id]["utm"]
        assert lead.landing_url == utm["url"]
        if "utm_source=" in utm["url"]:
            assert lead.utm_source is not None
        assert lead.phone_raw == by_id[lead.external_id]["client"]["phone"]


def test_flexbe_errors_and_malformed_leads(running, client_for, doctors, matcher):
    flexbe = running(FlexbeSimulator(doctors=doctors, seed=9, leads_as="list"))
    good = flexbe.generate(3, NOW)
    for kind in ("missing_id", "bad_time", "wrong_type"):
        flexbe.add_malformed(kind, NOW - timedelta(seconds=1))
    client = client_for(flexbe, "flexbe", "flexbe-key")

    _, batch = pull(flexbe, client, "flexbe", matcher)
    assert sorted(lead.external_id for lead in batch.leads) == sorted(str(g["id"]) for g in good)
    assert sorted(reject.reason.split(":")[0] for reject in batch.rejects) == [
        "client",
        "id",
        "time",
    ]

    flexbe.inject_api_error(1, "Limit exceeded")
    with pytest.raises(SourceLimitReached):
        pull(flexbe, client, "flexbe", matcher)
    with pytest.raises(SourceError, match="error 0: Invalid api key"):
        pull(flexbe, client_for(flexbe, "flexbe", "bad-key"), "flexbe", matcher)


# -- НаПоправку ---------------------------------------------------------------------------------
def test_napopravku_pages_acknowledges_and_skips_received(
    running, client_for, doctors, matcher, clock
):
    service = running(NapopravkuSimulator(doctors=doctors, seed=10, clock=clock))
    bookings = service.generate(130, clock(), spread_seconds=300)
    client = client_for(service, "napopravku", "napopravku-token", "/api/v1")

    records, batch = pull(service, client, "napopravku", matcher, period=(DAY_START, clock()))

    assert len(records) == len(batch.leads) == 130
    calls = service.received("/appointments")
    assert [call.arg("paging[page]") for call in calls] == ["1", "2"]
    assert {call.arg("paging[per_page]") for call in calls} == {"100"}
    assert {call.arg("is_received") for call in calls} == {"0"}
    assert {call.headers["authorization"] for call in calls} == {"Bearer napopravku-token"}
    first = next(lead for lead in batch.leads if lead.external_id == bookings[0]["uuid"])
    assert first.doctor_id == bookings[0]["doctor"]["mis_doctor_id"]
    assert first.branch_id == "msk-1"
    assert first.requested_start.strftime("%Y-%m-%d %H:%M:%S") == bookings[0]["start_time"]

    acknowledged = [lead.external_id for lead in batch.leads[:3]]
    for external_id in acknowledged:
        NapopravkuSource.acknowledge(client, external_id)
    assert [ack["appointment_uuid"] for ack in service.acknowledgements] == acknowledged
    assert all(ack["success"] is True for ack in service.acknowledgements)
    assert all(service.booking(uuid)["is_received"] for uuid in acknowledged)

    service.requests.clear()
    records, _ = pull(service, client, "napopravku", matcher, period=(DAY_START, clock()))
    assert len(records) == 127 and not set(acknowledged) & {r["uuid"] for r in records}


def test_napopravku_cancels_bookings_not_acknowledged_in_ten_minutes(
    running, client_for, doctors, matcher, clock
):
    service = running(NapopravkuSimulator(doctors=doctors, seed=11, clock=clock))
    booking = service.add_lead(clock())
    client = client_for(service, "napopravku", "napopravku-token", "/api/v1")
    _, batch = pull(service, client, "napopravku", matcher, period=(DAY_START, clock()))
    assert [lead.external_id for lead in batch.leads] == [booking["uuid"]]

    clock.advance(minutes=9, seconds=59)
    assert service.booking(booking["uuid"])["is_cancelled"] is False
    clock.advance(seconds=1)
    assert service.booking(booking["uuid"])["is_cancelled"] is True
    with pytest.raises(ServiceRejected) as late:
        NapopravkuSource.acknowledge(client, booking["uuid"])
    assert late.value.status == 422 and "10 minutes" in str(late.value)
    assert service.acknowledgements == []


def test_napopravku_malformed_bookings_are_rejected(running, client_for, doctors, matcher, clock):
    service = running(NapopravkuSimulator(doctors=doctors, seed=12, clock=clock))
    good = service.add_lead(clock())
    service.add_malformed("missing_id", clock())
    service.add_malformed("wrong_type", clock())
    service.add_lead(clock(), created_at="31.02.2026 25:61")
    client = client_for(service, "napopravku", "napopravku-token", "/api/v1")
    _, batch = pull(service, client, "napopravku", matcher, period=(DAY_START, clock()))
    assert [lead.external_id for lead in batch.leads] == [good["uuid"]]
    assert sorted(reject.reason.split(":")[0] for reject in batch.rejects) == [
        "created_at",
        "patient_surname",
        "uuid",
    ]
