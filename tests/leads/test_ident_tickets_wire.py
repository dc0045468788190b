"""IDENT GetTickets on the wire: names in parts, integer ids, clamped limits, broken paging,
a partner that switched the integration off, the period's offsets.

The facts (integrations.md, Corrections, "IDENT HTTP protocol"): partners clamp ``limit``
silently (``ArayikK/Kleomed_web`` ``server/leads.py``: at most 1000), tickets carry the
name as ``ClientFullName`` or as ``ClientSurname`` + ``ClientName`` + ``ClientPatronymic``
(``Kontur\\Ident``), ``DoctorId`` is IDENT's integer id, a bad key is 401 or 403, text or
JSON, and some answer 503 when the integration is switched off.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from ident_dev.simulators.base import Fault
from ident_dev.simulators.ident_tickets import IdentTicketsSimulator
from ident_hooks.http_client import ServiceRejected
from ident_hooks.leads.normalise import DoctorMatcher
from ident_hooks.leads.sources import SourceSettings, parse_records
from ident_hooks.leads.sources.ident_tickets import IdentTicketsSource

MOSCOW = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
DAY_START = datetime(2026, 11, 26, tzinfo=MOSCOW)


def pull(client, matcher, *, source="site_main", page_size=0):
    settings = SourceSettings(source=source, page_size=page_size)
    records = list(IdentTicketsSource.fetch(client, DAY_START, NOW, settings=settings))
    return records, parse_records(IdentTicketsSource, records, settings=settings, matcher=matcher)


def offsets(site) -> list[int]:
    return [int(call.arg("offset")) for call in site.received("GetTickets")]


def test_a_partner_clamping_limit_to_100_still_gives_all_250(running, client_for, doctors, matcher):
    site = running(IdentTicketsSimulator(doctors=doctors, seed=11, clamp_limit=100))
    site.generate(250, NOW, spread_seconds=7200)
    client = client_for(site, "site_main", "ident-key")

    records, batch = pull(client, matcher)

    assert len(records) == len(batch.leads) == 250 and not batch.rejects
    assert {lead.external_id for lead in batch.leads} == {t["Id"] for t in site.records}
    assert {call.arg("limit") for call in site.received("GetTickets")} == {"500"}
    assert offsets(site) == [0, 100, 200, 250]  # moved on by what came back; empty = end


def test_the_1000_clamp_of_a_python_receiver_does_not_cut_a_large_page_size_short(
    running, client_for, doctors, matcher
):
    site = running(IdentTicketsSimulator(doctors=doctors, seed=12))  # clamps at 1000
    site.generate(1500, NOW, spread_seconds=7200)
    client = client_for(site, "site_main", "ident-key")

    records, _ = pull(client, matcher, page_size=5000)

    assert len(records) == 1500
    assert offsets(site) == [0, 1000, 1500]


def test_a_server_ignoring_offset_is_not_paged_forever(
    running, client_for, doctors, matcher, caplog
):
    site = running(
        IdentTicketsSimulator(doctors=doctors, seed=13, clamp_limit=100, ignore_offset=True)
    )
    site.generate(250, NOW, spread_seconds=7200)
    client = client_for(site, "site_main", "ident-key")

    with caplog.at_level(logging.WARNING, logger="ident_hooks.leads.paging"):
        records, batch = pull(client, matcher)

    assert offsets(site) == [0, 100]
    assert [t["Id"] for t in records] == [t["Id"] for t in site.records[:100]]
    assert len(batch.leads) == 100
    (warning,) = caplog.records
    assert warning.getMessage().startswith("site_main: the page at offset=100 brought 100")
    assert "seems to ignore offset" in warning.getMessage()
    assert "after 100 records" in warning.getMessage()


def test_a_name_in_parts_is_kept(running, client_for, doctors, matcher):
    site = running(IdentTicketsSimulator(doctors=doctors, seed=14, name_style="split"))
    tickets = site.generate(5, NOW)
    partial = site.add_lead(NOW - timedelta(seconds=5), ClientPatronymic=None)
    both = site.add_lead(
        NOW - timedelta(seconds=4),
        ClientFullName="Смирнова Ольга",
        ClientSurname="Другая",
    )
    client = client_for(site, "site_main", "ident-key")

    _, batch = pull(client, matcher)

    names = {lead.external_id: lead.name for lead in batch.leads}
    for ticket in tickets:
        assert "ClientFullName" not in ticket
        assert names[ticket["Id"]] == (
            f"{ticket['ClientSurname']} {ticket['ClientName']} {ticket['ClientPatronymic']}"
        )
    assert names[partial["Id"]] == f"{partial['ClientSurname']} {partial['ClientName']}"
    assert names[both["Id"]] == "Смирнова Ольга"


def test_integer_ids_are_taken_and_an_ident_doctor_id_is_not_a_clinic_id(running, client_for):
    clinic = DoctorMatcher([("3", "Петров Геннадий Андреевич"), ("7", "Иванова Мария Сергеевна")])
    # The partner knows the doctors by IDENT's integer ids, not by the clinic's text ids.
    site = running(
        IdentTicketsSimulator(doctors=[(3, "Иванова Мария Сергеевна")], seed=15, int_ids=True)
    )
    ticket = site.add_lead(NOW - timedelta(minutes=1), with_doctor=True)
    client = client_for(site, "site_main", "ident-key")

    records, batch = pull(client, clinic)

    assert type(ticket["Id"]) is int and ticket["DoctorId"] == 3
    assert records == [ticket]
    (lead,) = batch.leads
    assert lead.external_id == str(ticket["Id"])
    assert lead.doctor_id == "7"  # by DoctorName: IDENT's 3 is not the clinic's "3"
    assert lead.raw["DoctorId"] == 3


@pytest.mark.parametrize(
    ("bad_key", "status", "text"),
    [("text", 403, "Invalid IDENT-Integration-Key"), ("json", 401, "bad integration key")],
)
def test_a_bad_key_fails_at_once_in_text_or_json(
    running, client_for, matcher, bad_key, status, text
):
    site = running(IdentTicketsSimulator(key="right", bad_key=bad_key))
    client = client_for(site, "site_main", "wrong-secret")
    with pytest.raises(ServiceRejected) as failure:
        pull(client, matcher)
    assert failure.value.status == status and text in str(failure.value)
    assert "wrong-secret" not in str(failure.value)
    assert len(site.requests) == 1


@pytest.mark.parametrize("reason", ["text", "json"])
def test_a_partner_that_switched_the_integration_off_is_asked_once(
    running, client_for, matcher, reason
):
    from ident_hooks.http_client import ServiceSwitchedOff

    site = running(IdentTicketsSimulator(switched_off=reason))
    client = client_for(site, "site_main", "ident-key")

    with pytest.raises(ServiceSwitchedOff) as failure:
        pull(client, matcher)

    assert len(site.requests) == 1  # no retry storm
    message = str(failure.value)
    assert failure.value.status == 503 and "ident integration disabled" in message
    assert "switched the integration off on its side" in message
    assert client.conn_id in message and "switch the integration back on" in message


def test_only_a_plain_503_means_switched_off_and_transient_failures_are_retried(
    running, client_for, matcher
):
    from ident_hooks.http_client import ServiceSwitchedOff

    site = running(IdentTicketsSimulator(seed=16))
    ticket = site.add_lead(NOW - timedelta(minutes=1))
    client = client_for(site, "site_main", "ident-key")
    transient = [
        Fault(status=503, body="overloaded", retry_after="1"),
        Fault(status=502, body="bad gateway"),
        Fault(status=504, body="gateway timeout"),
        Fault(status=429, body="slow down", retry_after="1"),
    ]
    for fault in transient:
        site.inject(fault)
    records, _ = pull(client, matcher)
    assert records == [ticket]
    # Four failures, the page, the empty page that ends the period.
    assert len(site.requests) == len(transient) + 2

    site.requests.clear()
    site.inject(Fault(status=503, body="ident integration disabled"))
    with pytest.raises(ServiceSwitchedOff):
        pull(client, matcher)
    assert len(site.requests) == 1


MOSCOW_MOMENTS = {
    "before_midnight": datetime(2026, 12, 1, 23, 58, tzinfo=MOSCOW),
    "after_midnight": datetime(2026, 12, 2, 0, 3, tzinfo=MOSCOW),
}
YEKATERINBURG = ZoneInfo("Asia/Yekaterinburg")


@pytest.mark.parametrize(
    ("moment", "zone"),
    [
        (MOSCOW_MOMENTS["before_midnight"], MOSCOW),
        (MOSCOW_MOMENTS["after_midnight"], MOSCOW),
        (datetime(2026, 12, 2, 0, 3, tzinfo=YEKATERINBURG), YEKATERINBURG),
    ],
    ids=["msk-23:58", "msk-00:03", "yekaterinburg-00:03"],
)
def test_both_ends_of_the_period_carry_the_clinics_offset(
    running, client_for, doctors, matcher, moment, zone
):
    """A receiver that drops the offsets still gets every lead up to now."""
    with time_machine.travel(moment, tick=False):
        site = running(IdentTicketsSimulator(doctors=doctors, seed=17, tz=zone, offsets="ignored"))
        # From 00:00 of the day before, as a pull just after midnight asks.
        day_before = moment.date() - timedelta(days=1)
        period_from = datetime.combine(day_before, datetime.min.time(), zone)
        made = [
            site.add_lead(moment - timedelta(minutes=minutes))
            for minutes in (50 * 60, 4 * 60, 2 * 60 + 50, 30, 4, 1)
        ]
        client = client_for(site, "site_main", "ident-key")
        # What a worker whose own clock runs in UTC passes as "now".
        now = datetime.now(UTC)
        records = list(
            IdentTicketsSource.fetch(
                client,
                period_from,
                now,
                settings=SourceSettings(source="site_main", timezone=zone),
            )
        )

    expected = made[1:]  # the first is from before the period
    assert datetime.fromisoformat(made[0]["DateAndTime"]) < period_from
    assert [ticket["Id"] for ticket in records] == [ticket["Id"] for ticket in expected]
    offset = moment.strftime("%z")
    offset = f"{offset[:3]}:{offset[3:]}"
    for call in site.received("GetTickets"):
        assert call.arg("dateTimeFrom") == period_from.isoformat()
        assert call.arg("dateTimeTo") == moment.isoformat()
        assert call.arg("dateTimeTo").endswith(offset)
