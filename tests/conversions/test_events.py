"""Which conversions a sink has still to send, on a hand data set and an explicit clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from ident_hooks.config import ConversionSink
from ident_hooks.conversions import ConversionEvent, Delivery, Upload
from ident_hooks.conversions.events import pending_events
from ident_hooks.conversions.ledger import record_deliveries

MOSCOW = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=MOSCOW)
DAY = timedelta(days=1)
PHONE = "+79161234567"
SOURCE_KINDS = {"tilda": "tilda", "uis": "uis"}
SINK = ConversionSink(
    "metrica", "yandex_metrica", "Яндекс Метрика", "yandex_metrica",
    visit_window_days=30, lookback_days=21, counter_id="44147844",
)  # fmt: skip


def _pending(conn, sink=SINK, *, now=NOW, link_window=timedelta(days=21), earliest=None):
    events = pending_events(
        conn, sink, source_kinds=SOURCE_KINDS, now=now, link_window=link_window,
        earliest=earliest,
    )  # fmt: skip
    conn.commit()
    return events


def _of(events, event: str) -> list[ConversionEvent]:
    return [e for e in events if e.event == event]


def test_every_lead_but_spam_is_a_lead_event_with_its_identifiers(clinic_data, conversions_db):
    lead = clinic_data.lead(
        NOW - 2 * DAY, "8 (916) 123-45-67", external_id="t-1", ym_client_id="1700000000123456789",
        yclid="7263874623", gclid="Cj0KCQ",
    )  # fmt: skip
    clinic_data.lead(NOW - 2 * DAY, "+79160000002", status="spam")
    unconfigured = clinic_data.lead(NOW - DAY, None, source="old_form")

    assert _pending(conversions_db) == [
        ConversionEvent(
            event="lead",
            lead_id=lead,
            occurred_at=NOW - 2 * DAY,
            lead_created_at=NOW - 2 * DAY,
            source="tilda",
            source_kind="tilda",
            external_id="t-1",
            phone_e164=PHONE,
            ym_client_id="1700000000123456789",
            yclid="7263874623",
            gclid="Cj0KCQ",
        ),
        ConversionEvent(
            event="lead",
            lead_id=unconfigured,
            occurred_at=NOW - DAY,
            lead_created_at=NOW - DAY,
            source="old_form",
            source_kind=None,
            external_id=_external_id(conversions_db, unconfigured),
        ),
    ]


def _external_id(conn, lead_id: int) -> str:
    (external_id,) = conn.execute(
        "select external_id from integration.leads where lead_id = %s", (lead_id,)
    ).fetchone()
    conn.commit()
    return external_id


def test_a_visit_three_days_after_a_lead_is_its_first_visit_with_the_amount(
    clinic_data, conversions_db
):
    lead = clinic_data.lead(NOW - 5 * DAY, PHONE, ym_client_id="1700000000123456789")
    # Typed by the clinic's admin in another way than the lead's source did.
    visit = clinic_data.appointment(NOW - 2 * DAY, "8 (916) 123-45-67", amount="4500.00")
    clinic_data.appointment(NOW - DAY, PHONE, amount="900.00")  # the second visit: not first
    clinic_data.appointment(NOW - 4 * DAY, "+79160000009", amount="100.00")  # someone else

    (first,) = _of(_pending(conversions_db), "first_visit")
    assert first == ConversionEvent(
        event="first_visit", lead_id=lead, occurred_at=NOW - 2 * DAY,
        lead_created_at=NOW - 5 * DAY, source="tilda", source_kind="tilda",
        external_id=first.external_id, phone_e164=PHONE, ym_client_id="1700000000123456789",
        appointment_id=visit, amount=Decimal("4500.00"),
    )  # fmt: skip


def test_a_visit_without_an_amount_converts_without_one(clinic_data, conversions_db):
    clinic_data.lead(NOW - 5 * DAY, PHONE)
    clinic_data.appointment(NOW - 2 * DAY, PHONE)
    (first,) = _of(_pending(conversions_db), "first_visit")
    assert first.amount is None


def test_of_two_leads_of_a_phone_before_a_visit_only_the_later_converts(
    clinic_data, conversions_db
):
    clinic_data.lead(NOW - 6 * DAY, PHONE)
    later = clinic_data.lead(NOW - 4 * DAY, "+7 916 123 45 67")
    clinic_data.lead(NOW - 3 * DAY, PHONE, status="spam")  # spam is never the visit's lead
    visit = clinic_data.appointment(NOW - 2 * DAY, PHONE)

    (first,) = _of(_pending(conversions_db), "first_visit")
    assert (first.lead_id, first.appointment_id) == (later, visit)


def test_a_lead_made_after_a_visit_is_not_converted_by_it(clinic_data, conversions_db):
    clinic_data.appointment(NOW - 3 * DAY, PHONE)
    clinic_data.lead(NOW - 2 * DAY, PHONE)
    assert _of(_pending(conversions_db), "first_visit") == []


def test_a_visit_after_the_visit_window_is_no_conversion(clinic_data, conversions_db):
    sink = replace(SINK, visit_window_days=7)
    clinic_data.lead(NOW - 10 * DAY, PHONE)
    clinic_data.appointment(NOW - 2 * DAY, PHONE)  # 8 days after the lead
    assert _of(_pending(conversions_db, sink), "first_visit") == []
    # Within the window it would be.
    assert len(_of(_pending(conversions_db), "first_visit")) == 1


@pytest.mark.parametrize("status", ["scheduled", "cancelled", "no_show"])
def test_an_appointment_that_did_not_happen_is_no_visit(clinic_data, conversions_db, status):
    clinic_data.lead(NOW - 5 * DAY, PHONE)
    clinic_data.appointment(NOW - 2 * DAY, PHONE, status=status)
    assert _of(_pending(conversions_db), "first_visit") == []


def test_nothing_goes_with_a_time_in_the_future(clinic_data, conversions_db):
    clinic_data.lead(NOW - 5 * DAY, PHONE)
    clinic_data.appointment(NOW + timedelta(hours=1), PHONE)  # marked completed in advance
    clinic_data.lead(NOW + timedelta(minutes=5), "+79160000002")  # a clock running ahead

    events = _pending(conversions_db)
    assert [(e.event, e.occurred_at) for e in events] == [("lead", NOW - 5 * DAY)]
    # Once its time has come it goes.
    later = _pending(conversions_db, now=NOW + timedelta(hours=2))
    assert [e.event for e in later] == ["lead", "lead", "first_visit"]


def test_nothing_older_than_the_lookback_goes(clinic_data, conversions_db):
    clinic_data.lead(NOW - 22 * DAY, PHONE)
    clinic_data.appointment(NOW - 21 * DAY - timedelta(hours=1), PHONE)
    assert _pending(conversions_db) == []


def test_a_later_visit_is_not_the_first_when_the_first_was_before_the_lookback(
    clinic_data, conversions_db
):
    clinic_data.lead(NOW - 25 * DAY, PHONE)
    clinic_data.appointment(NOW - 23 * DAY, PHONE)  # the first visit: too old to send
    clinic_data.appointment(NOW - 10 * DAY, PHONE)
    assert _of(_pending(conversions_db), "first_visit") == []


def test_nothing_goes_beyond_the_services_link_window_or_before_its_earliest_time(
    clinic_data, conversions_db
):
    clinic_data.lead(NOW - 5 * DAY, PHONE)
    clinic_data.appointment(NOW - 2 * DAY, PHONE)  # 3 days after its lead

    narrow = _pending(conversions_db, link_window=timedelta(days=2))
    assert [e.event for e in narrow] == ["lead"]
    recent = _pending(conversions_db, earliest=NOW - 3 * DAY)
    assert [e.event for e in recent] == ["first_visit"]


def test_a_sink_gets_only_its_configured_events(clinic_data, conversions_db):
    sink = replace(SINK, events=("first_visit",))
    clinic_data.lead(NOW - 5 * DAY, PHONE, source="uis", external_id="call-77")
    clinic_data.appointment(NOW - 2 * DAY, PHONE)
    (event,) = _pending(conversions_db, sink)
    assert (event.event, event.source_kind, event.external_id) == ("first_visit", "uis", "call-77")


def test_what_the_ledger_has_for_this_sink_does_not_go_again(clinic_data, conversions_db):
    clinic_data.lead(NOW - 5 * DAY, PHONE)
    clinic_data.appointment(NOW - 2 * DAY, PHONE)
    clinic_data.lead(NOW - DAY, "+79160000002")
    first_visit, *_ = _of(_pending(conversions_db), "first_visit")
    lead, _second = _of(_pending(conversions_db), "lead")
    upload = Upload("u-1", "offline_conversions", 2)
    record_deliveries(conversions_db, SINK.name, [Delivery(upload, (lead, first_visit))], now=NOW)

    assert [(e.event, e.occurred_at) for e in _pending(conversions_db)] == [("lead", NOW - DAY)]
    # Another sink has sent nothing yet.
    other = replace(SINK, name="metrica_second")
    assert len(_pending(conversions_db, other)) == 3
