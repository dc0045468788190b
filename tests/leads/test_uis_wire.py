"""UIS Data API details over real loopback HTTP: fields, offsets, the request's Content-Type.

Facts under test come from the vendor's documentation copies named in the connector's
docstring: every field the report documents may be asked for, an unknown name in ``fields``
is ``unexpected_parameters`` (-32602), ``offset`` is at most 100 000 and the body is sent as
``application/json; charset=UTF-8``. The public PyPI SDK ``comagic-data-api-sdk`` is driven
against the simulator with its default field list.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests
from comagic import Comagic
from comagic.models import OfflineMessage

from ident_dev.simulators.uis import (
    DOCUMENTED_FIELDS,
    NEWEST_FIELDS,
    REPORT_FIELDS,
    SDK_FIELDS,
    UisSimulator,
)
from ident_hooks.leads.normalise import UTM_KEYS
from ident_hooks.leads.sources import SourceError, SourceSettings, parse_records
from ident_hooks.leads.sources import uis as uis_adapter
from ident_hooks.leads.sources.uis import UisSource

MOSCOW = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 12, 2, 11, 0, tzinfo=UTC)
DAY_START = datetime(2026, 12, 2, tzinfo=MOSCOW)
PERIOD = {"access_token": "uis-token", "date_from": "2026-12-02 00:00:00"}


def rpc(simulator: UisSimulator, params: dict) -> dict:
    body = {"jsonrpc": "2.0", "id": 1, "method": "get.offline_messages_report", "params": params}
    return requests.post(f"{simulator.base_url}/v2.0", json=body, timeout=5).json()


def fetch(client, *, page_size: int = 0) -> list:
    settings = SourceSettings(source="uis", page_size=page_size)
    return list(UisSource.fetch(client, DAY_START, NOW, settings=settings))


@pytest.fixture
def uis(running, doctors) -> UisSimulator:
    return running(UisSimulator(doctors=doctors, seed=41, clock=lambda: NOW))


def test_an_unknown_field_is_unexpected_parameters_and_our_fields_pass(uis, client_for):
    uis.add_lead(NOW - timedelta(hours=1))
    params = {**PERIOD, "date_till": "2026-12-02 14:00:00"}

    refused = rpc(uis, {**params, "fields": ["id", "visitor_phone", "date_time"]})

    assert refused["error"]["code"] == -32602
    assert refused["error"]["data"] == {
        "mnemonic": "unexpected_parameters",
        "field": "fields",
        "value": ["visitor_phone"],
    }
    assert set(uis_adapter.FIELDS) <= REPORT_FIELDS
    records = fetch(client_for(uis, "uis", "uis-token"))
    assert len(records) == 1 and set(records[0]) == set(uis_adapter.FIELDS)


def test_every_documented_field_is_served_and_we_ask_only_for_ones_both_copies_list(uis):
    uis.add_lead(NOW - timedelta(hours=1))
    params = {**PERIOD, "date_till": "2026-12-02 14:00:00"}
    every = [*DOCUMENTED_FIELDS, *SDK_FIELDS]

    (record,) = rpc(uis, {**params, "fields": every})["result"]["data"]

    assert list(record) == every
    assert len(DOCUMENTED_FIELDS) == 79  # the top-level rows of the CallGear copy's table
    assert {"visits_count", "ext_id", "source_id", "eq_utm_referrer"} <= set(DOCUMENTED_FIELDS)
    refused = rpc(uis, {**params, "fields": ["utm_referrer", "tag_id", "utm_expid"]})["error"]
    assert refused["data"]["value"] == ["tag_id", "utm_expid"]  # nested or undocumented
    # The connector: no name that only the newest copy or only the SDK knows, UTM and referrer.
    asked = set(uis_adapter.FIELDS)
    assert asked <= set(DOCUMENTED_FIELDS) - set(NEWEST_FIELDS) - set(SDK_FIELDS)
    assert {"referrer", "referrer_domain", "entrance_page", *UTM_KEYS} <= asked


def test_the_public_sdks_default_request_is_served_and_agrees_with_our_leads(
    uis, client_for, matcher
):
    created = [uis.add_lead(NOW - timedelta(minutes=7 * i + 1)) for i in range(12)]
    sdk = Comagic(token="uis-token", uis=True)
    sdk.API_URL = f"{uis.base_url}/v2.0"  # the SDK fixes the host; the request is its own

    messages = list(
        sdk.get_offline_messages_report(
            date_from=datetime(2026, 12, 2), date_till=datetime(2026, 12, 2, 14)
        )
    )

    (asked,) = uis.received("/v2.0")
    assert asked.json()["params"]["fields"] == OfflineMessage.fields()
    assert set(SDK_FIELDS) <= set(OfflineMessage.fields())
    assert sorted(message["id"] for message in messages) == sorted(r["id"] for r in created)
    settings = SourceSettings(source="uis")
    records = fetch(client_for(uis, "uis", "uis-token"))
    leads = parse_records(UisSource, records, settings=settings, matcher=matcher).leads
    by_id = {int(lead.external_id): lead for lead in leads}
    tagged = 0
    for message in messages:
        lead = by_id[message["id"]]
        assert lead.referrer == (message["referrer"] or message["referrer_domain"])
        assert lead.landing_url == message["entrance_page"]
        if message["utm_source"]:
            tagged += 1
            assert (lead.utm_source, lead.utm_medium) == (
                message["utm_source"],
                message["utm_medium"],
            )
    assert tagged and any(message["referrer"] for message in messages)


def test_requests_declare_json_in_utf8(uis, client_for):
    uis.add_lead(NOW - timedelta(hours=1), visitor_name="Ёлкина Дарья")

    records = fetch(client_for(uis, "uis", "uis-token"))

    assert records[0]["visitor_name"] == "Ёлкина Дарья"
    calls = uis.received("/v2.0")
    assert {call.headers["content-type"] for call in calls} == {"application/json; charset=UTF-8"}
    assert calls[0].json()["params"]["fields"] == list(uis_adapter.FIELDS)


def test_the_simulator_refuses_offsets_past_100000(uis):
    params = {**PERIOD, "date_till": "2026-12-02 14:00:00"}
    assert rpc(uis, {**params, "offset": 100_000})["result"]["data"] == []
    refused = rpc(uis, {**params, "offset": 100_001})["error"]
    assert refused["code"] == -32602
    assert refused["data"] == {
        "mnemonic": "invalid_parameter_value",
        "field": "offset",
        "value": 100_001,
    }
    assert rpc(uis, {**params, "limit": 10_001})["error"]["data"]["field"] == "limit"


def test_a_period_past_the_offset_limit_is_read_in_narrower_periods(
    running, client_for, doctors, monkeypatch
):
    monkeypatch.setattr(uis_adapter, "MAX_OFFSET", 100)  # 100 000 scaled down with the server
    small = running(UisSimulator(doctors=doctors, seed=42, max_offset=100))
    created = [small.add_lead(NOW - timedelta(seconds=37 * i + 1)) for i in range(250)]

    records = fetch(client_for(small, "uis", "uis-token"), page_size=50)

    assert sorted(r["id"] for r in records) == sorted(r["id"] for r in created)
    calls = [call.json()["params"] for call in small.received("/v2.0")]
    assert max(params["offset"] for params in calls) <= 100
    windows = {(params["date_from"], params["date_till"]) for params in calls}
    assert ("2026-12-02 00:00:00", "2026-12-02 14:00:00") in windows  # measured first
    assert len(windows) > 2  # then read in halves, and halves of halves


def test_more_requests_in_one_second_than_the_offset_reaches_fail_clearly(
    running, client_for, doctors, monkeypatch
):
    monkeypatch.setattr(uis_adapter, "MAX_OFFSET", 100)
    small = running(UisSimulator(doctors=doctors, seed=43, max_offset=100))
    moment = NOW - timedelta(minutes=3)
    for _ in range(150):
        small.add_lead(moment)

    with pytest.raises(SourceError, match="cannot be narrowed further") as failure:
        fetch(client_for(small, "uis", "uis-token"), page_size=50)

    assert "150 site requests" in str(failure.value)
    assert not failure.value.retryable
    assert max(call.json()["params"]["offset"] for call in small.received("/v2.0")) == 0


class GrowingUisSimulator(UisSimulator):
    """A Data API whose period gains 40 new requests before each reply."""

    def _report(self, params: dict) -> dict:
        for _ in range(40):
            self.add_lead(NOW - timedelta(seconds=1))  # the newest: appended to the order
        return super()._report(params)


def test_a_period_that_grows_past_the_offset_limit_while_read_fails_retryably(
    running, client_for, doctors, monkeypatch
):
    monkeypatch.setattr(uis_adapter, "MAX_OFFSET", 100)
    growing = running(GrowingUisSimulator(doctors=doctors, seed=44, max_offset=100))
    for i in range(60):
        growing.add_lead(NOW - timedelta(seconds=37 * i + 60))

    with pytest.raises(SourceError, match="grew past the Data API's largest offset") as failure:
        fetch(client_for(growing, "uis", "uis-token"), page_size=50)

    assert failure.value.retryable  # the next run measures the period again and halves it
    assert "between 2026-12-02 00:00:00 and 2026-12-02 14:00:00" in str(failure.value)
    # 100 at the first reply (no halving yet), 140 at the second: offset 150 is out of reach.
    assert [c.json()["params"]["offset"] for c in growing.received("/v2.0")] == [0, 50, 100]


class OffsetIgnoringUisSimulator(UisSimulator):
    """A Data API that answers offset 0 whatever ``offset`` asks for."""

    def _report(self, params: dict) -> dict:
        return super()._report({**params, "offset": 0})


def test_a_server_that_ignores_offset_stops_the_walk_with_a_warning(
    running, client_for, doctors, caplog
):
    stuck = running(OffsetIgnoringUisSimulator(doctors=doctors, seed=45))
    created = [stuck.add_lead(NOW - timedelta(minutes=i + 1)) for i in range(17)]

    with caplog.at_level(logging.WARNING, logger="ident_hooks.leads.paging"):
        records = fetch(client_for(stuck, "uis", "uis-token"), page_size=6)

    oldest_first = sorted(created, key=lambda record: record["date_time"])
    assert [r["id"] for r in records] == [r["id"] for r in oldest_first[:6]]
    # Not walked on to the total of 17 (offsets 0, 6, 12): the repeated page ends it.
    assert [c.json()["params"]["offset"] for c in stuck.received("/v2.0")] == [0, 6]
    (warning,) = caplog.records
    assert warning.getMessage().startswith("uis: the page at offset=6 brought 6 records")
    assert "seems to ignore offset" in warning.getMessage()
