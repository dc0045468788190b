"""First visits of UIS leads as deals in UIS (``upload.deals_history``), over loopback HTTP.

The facts under test are the vendor's (``callgear/callgear.github.io``,
``data_api/ca_deal/upload_deals_history/index.html``, named in the connector's docstring):
a deal is keyed by ``ext_id`` (a re-send updates it), linked by ``communication_id`` +
``communication_type`` only to a communication at most 30 days older than the deal, with
its amount as ``revenue``; at most 1 000 deals per call; one invalid deal refuses the call;
errors come with HTTP 200.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import requests

from ident_dev.simulators.uis import UisSimulator
from ident_hooks.config import load_config
from ident_hooks.conversions import ConversionEvent, ConversionRefused
from ident_hooks.conversions.uis_deals import (
    MAX_DEALS_PER_CALL,
    SALES_FUNNEL_EXT_ID,
    VISIT_STAGE_EXT_ID,
    UisDeals,
)
from ident_hooks.errors import TransientFailure

NOW = datetime(2026, 12, 2, 11, 0, tzinfo=UTC)
PHONE = "+79161234567"
FUNNELS = {SALES_FUNNEL_EXT_ID: [VISIT_STAGE_EXT_ID, "lost"]}


@pytest.fixture
def uis() -> Iterator[UisSimulator]:
    simulator = UisSimulator(seed=7, clock=lambda: NOW, sales_funnels=FUNNELS).start()
    yield simulator
    simulator.stop()


@pytest.fixture
def connector_for(monkeypatch: pytest.MonkeyPatch) -> Callable[..., UisDeals]:
    """``connector_for(simulator, token)``: the configured sink's connector on a connection
    to the simulator."""

    def make(simulator: UisSimulator, token: str = "uis-token") -> UisDeals:
        connection = {"conn_type": "uis_data_api", "host": simulator.base_url, "password": token}
        monkeypatch.setenv("AIRFLOW_CONN_UIS_DEALS_TEST", json.dumps(connection))
        sink = load_config().conversion_sink("uis_deals")
        connector = sink.spec.connector_class()
        client = connector.client("uis_deals_test", backoff_seconds=0, sleep=lambda _: None)
        return connector(client, sink, clinic_timezone="Europe/Moscow")

    return make


def visit(
    external_id: str,
    *,
    source_kind: str = "uis_notification",
    lead_at: datetime = NOW - timedelta(days=3),
    visit_at: datetime = NOW - timedelta(hours=2),
    appointment_id: str = "appt-1",
    amount: Decimal | None = Decimal("4500.00"),
    event: str = "first_visit",
) -> ConversionEvent:
    return ConversionEvent(
        event=event,
        lead_id=101,
        occurred_at=visit_at,
        lead_created_at=lead_at,
        source={"uis": "uis", "uis_notification": "uis_calls"}.get(source_kind, source_kind),
        source_kind=source_kind,
        external_id=external_id,
        phone_e164=PHONE,
        appointment_id=appointment_id,
        amount=amount if event == "first_visit" else None,
    )


def rpc(uis: UisSimulator, method: str, params: dict) -> dict:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    reply = requests.post(f"{uis.base_url}/v2.0", json=body, timeout=5)
    assert reply.status_code == 200  # JSON-RPC errors are HTTP 200 too
    return reply.json()


def deals_history(uis: UisSimulator) -> dict:
    return rpc(uis, "get.deals_history", {"access_token": "uis-token"})["result"]


def test_a_visit_of_a_uis_call_lead_is_one_deal_linked_to_the_call_with_its_amount(
    uis, connector_for
):
    call_at = NOW - timedelta(days=3)
    call_id = uis.add_call(call_at)
    request = uis.add_lead(NOW - timedelta(days=5))
    call_visit = visit(f"call:{call_id}", lead_at=call_at, visit_at=NOW - timedelta(hours=2))
    request_visit = visit(
        str(request["id"]),
        source_kind="uis",
        appointment_id="appt-2",
        amount=Decimal("1250.50"),
    )

    deliveries = connector_for(uis).deliver([call_visit, request_visit], NOW)

    (delivery,) = deliveries
    assert delivery.events == (call_visit, request_visit)
    upload = delivery.upload
    assert (upload.channel, upload.rows_sent, upload.finished) == ("deals_history", 2, True)
    (sent,) = uis.received("/v2.0")
    assert sent.json()["id"] == upload.upload_id
    assert sent.headers["content-type"] == "application/json; charset=UTF-8"
    assert uis.deal_links == {
        "visit-appt-1": (call_id, "call"),
        "visit-appt-2": (request["id"], "offline_message"),
    }
    history = {deal["ext_id"]: deal for deal in deals_history(uis)["data"]}
    assert history["visit-appt-1"]["revenue"] == 4500
    assert history["visit-appt-2"]["revenue"] == 1250.5
    assert history["visit-appt-1"]["communication_id"] == call_id
    deal = uis.deals["visit-appt-1"]
    # The visit's time in the clinic's zone (Moscow, UTC+3): the deal is won at the visit.
    assert deal["created_date_time"] == deal["closed_date_time"] == "2026-12-02 12:00:00"
    assert deal["sales_funnel_ext_id"] == SALES_FUNNEL_EXT_ID
    assert deal["stage_ext_id"] == VISIT_STAGE_EXT_ID


def test_a_visit_without_a_known_amount_goes_without_revenue(uis, connector_for):
    call_id = uis.add_call(NOW - timedelta(days=1))

    connector_for(uis).deliver([visit(f"call:{call_id}", amount=None)], NOW)

    assert "revenue" not in uis.deals["visit-appt-1"]
    assert uis.deal_links["visit-appt-1"] == (call_id, "call")


def test_sending_the_same_visit_twice_leaves_one_deal(uis, connector_for):
    call_id = uis.add_call(NOW - timedelta(days=2))
    event = visit(f"call:{call_id}")
    connector = connector_for(uis)

    first = connector.deliver([event], NOW)
    again = connector.deliver([event], NOW)

    assert first[0].upload.upload_id == again[0].upload.upload_id  # a stable id
    assert len(uis.received("/v2.0")) == 2
    assert list(uis.deals) == ["visit-appt-1"]
    assert deals_history(uis)["metadata"]["total_items"] == 1


def test_events_that_are_no_uis_communication_are_left_out(uis, connector_for):
    call_id = uis.add_call(NOW - timedelta(days=2))
    carried = visit(f"call:{call_id}")
    left_out = [
        visit("flexbe-77", source_kind="flexbe", appointment_id="appt-2"),
        visit(f"call:{call_id}", event="lead", appointment_id="appt-3"),
        visit("session:12", appointment_id="appt-4"),  # no id kind UIS numbers
        visit("call:not-a-number", appointment_id="appt-5"),
        visit(f"call:{call_id}", appointment_id="appt-6", visit_at=NOW + timedelta(hours=1)),
    ]
    connector = connector_for(uis)

    assert connector.deliver(left_out, NOW) == []
    assert uis.received("/v2.0") == []  # nothing to send: no call at all
    (delivery,) = connector.deliver([*left_out, carried], NOW)

    assert delivery.events == (carried,)
    assert list(uis.deals) == ["visit-appt-1"]


def test_a_communication_older_than_30_days_is_stored_unlinked(uis, connector_for):
    assert UisDeals.link_window == timedelta(days=30)  # the pipeline leaves older ones
    visit_at = NOW - timedelta(hours=1)
    old_call = uis.add_call(visit_at - timedelta(days=30, minutes=1))
    recent_call = uis.add_call(visit_at - timedelta(days=29, hours=23))

    connector_for(uis).deliver(
        [
            visit(f"call:{old_call}", visit_at=visit_at, appointment_id="old"),
            visit(f"call:{recent_call}", visit_at=visit_at, appointment_id="recent"),
        ],
        NOW,
    )

    assert uis.deal_links == {"visit-old": None, "visit-recent": (recent_call, "call")}
    unlinked = next(d for d in deals_history(uis)["data"] if d["ext_id"] == "visit-old")
    assert unlinked["communication_id"] is None


def test_more_than_a_thousand_visits_go_in_calls_of_at_most_a_thousand(uis, connector_for):
    call_id = uis.add_call(NOW - timedelta(days=1))
    events = [visit(f"call:{call_id}", appointment_id=f"a{n}") for n in range(1001)]

    deliveries = connector_for(uis).deliver(events, NOW)

    assert [len(d.events) for d in deliveries] == [MAX_DEALS_PER_CALL, 1]
    assert len({d.upload.upload_id for d in deliveries}) == 2
    assert len(uis.deals) == 1001


def test_calls_accepted_before_a_failure_are_returned_and_the_rest_waits(connector_for):
    limited = UisSimulator(clock=lambda: NOW, sales_funnels=FUNNELS, minute_limit=1).start()
    try:
        call_id = limited.add_call(NOW - timedelta(days=1))
        events = [visit(f"call:{call_id}", appointment_id=f"a{n}") for n in range(1001)]

        (delivery,) = connector_for(limited).deliver(events, NOW)
    finally:
        limited.stop()

    assert delivery.events == tuple(events[:MAX_DEALS_PER_CALL])
    assert len(limited.deals) == MAX_DEALS_PER_CALL  # the second call met limit_exceeded


def test_a_wrong_token_is_refused_without_the_token_and_a_limit_is_retried(uis, connector_for):
    call_id = uis.add_call(NOW - timedelta(days=1))
    event = visit(f"call:{call_id}")

    with pytest.raises(ConversionRefused) as refused:
        connector_for(uis, "wrong-secret-5f2a").deliver([event], NOW)
    uis.inject_rpc_error("limit_exceeded")
    with pytest.raises(TransientFailure) as limited:
        connector_for(uis).deliver([event], NOW)

    assert "access_token_invalid" in str(refused.value)
    assert "wrong-secret-5f2a" not in str(refused.value)
    assert "limit_exceeded" in str(limited.value)
    assert uis.deals == {}


def test_a_funnel_missing_from_the_account_refuses_the_upload(connector_for):
    bare = UisSimulator(clock=lambda: NOW).start()  # nobody created the funnel
    try:
        call_id = bare.add_call(NOW - timedelta(days=1))
        with pytest.raises(ConversionRefused, match="sales_funnel_ext_id"):
            connector_for(bare).deliver([visit(f"call:{call_id}")], NOW)
    finally:
        bare.stop()


def test_no_phone_or_name_in_clear_reaches_uis(uis, connector_for):
    request = uis.add_lead(NOW - timedelta(days=1))
    call_id = uis.add_call(NOW - timedelta(days=1))

    connector_for(uis).deliver(
        [
            visit(f"call:{call_id}"),
            visit(str(request["id"]), source_kind="uis", appointment_id="appt-2"),
        ],
        NOW,
    )

    (sent,) = uis.received("/v2.0")
    body = sent.body.decode("utf-8")
    digits = PHONE.removeprefix("+")
    for secret in (digits, digits[1:], request["visitor_phone_number"], request["visitor_name"]):
        assert secret not in body
    assert "visitor" not in body and "phone" not in body


def test_the_simulator_refuses_deals_as_the_data_api_does(uis):
    call_id = uis.add_call(NOW - timedelta(days=1))
    deal = {
        "ext_id": "d-1",
        "name": "Первый визит",
        "created_date_time": "2026-12-02 12:00:00",
        "modified_stage_date_time": "2026-12-02 12:00:00",
        "sales_funnel_ext_id": SALES_FUNNEL_EXT_ID,
        "stage_ext_id": VISIT_STAGE_EXT_ID,
        "communication_id": call_id,
        "communication_type": "call",
        "revenue": 3000,
    }

    def refusal(*deals: dict, token: str = "uis-token") -> dict:
        return rpc(uis, "upload.deals_history", {"access_token": token, "deals": list(deals)})[
            "error"
        ]["data"]

    without = {name: {k: v for k, v in deal.items() if k != name} for name in deal}
    assert refusal(deal, token="nope")["mnemonic"] == "access_token_invalid"
    assert refusal(without["ext_id"]) == {
        "mnemonic": "required_parameter_missed",
        "field": "ext_id",
        "value": None,
    }
    assert refusal(without["created_date_time"])["field"] == "created_date_time"
    bad_date = {**deal, "created_date_time": "02.12.2026 12:00"}
    assert refusal(bad_date)["mnemonic"] == "invalid_parameter_value"
    future = {**deal, "created_date_time": "2026-12-02 14:00:01"}  # NOW is 14:00 in Moscow
    assert refusal(future)["field"] == "created_date_time"
    assert refusal(without["communication_type"])["field"] == "communication_type"
    assert refusal({**deal, "communication_type": "sms"})["field"] == "communication_type"
    assert refusal({**deal, "amount": 3000})["mnemonic"] == "unexpected_parameters"
    assert refusal({**deal, "stage_ext_id": "paid"})["field"] == "stage_ext_id"
    assert refusal(deal, {**deal, "ext_id": "d-2", "revenue": "3000"})["field"] == "revenue"
    assert uis.deals == {}  # one invalid deal refuses the whole call
    ok = rpc(uis, "upload.deals_history", {"access_token": "uis-token", "deals": [deal]})
    assert ok["result"]["data"] == {}
    # Neither a contact nor a communication: stored, attributed to nothing.
    unattributed = {
        **{k: v for k, v in deal.items() if k not in ("communication_id", "communication_type")},
        "ext_id": "d-3",
    }
    rpc(uis, "upload.deals_history", {"access_token": "uis-token", "deals": [unattributed]})
    assert uis.deal_links == {"d-1": (call_id, "call"), "d-3": None}


def test_a_link_changes_only_when_the_deal_moves_on(uis):
    first_call = uis.add_call(NOW - timedelta(days=2))
    second_call = uis.add_call(NOW - timedelta(days=1))
    deal = {
        "ext_id": "d-1",
        "name": "Первый визит",
        "created_date_time": "2026-12-02 12:00:00",
        "modified_date_time": "2026-12-02 12:00:00",
        "modified_stage_date_time": "2026-12-02 12:00:00",
        "sales_funnel_ext_id": SALES_FUNNEL_EXT_ID,
        "stage_ext_id": VISIT_STAGE_EXT_ID,
        "communication_id": first_call,
        "communication_type": "call",
    }

    def upload(**changes: object) -> None:
        params = {"access_token": "uis-token", "deals": [{**deal, **changes}]}
        assert "result" in rpc(uis, "upload.deals_history", params)

    upload()
    upload(communication_id=second_call)
    assert uis.deal_links == {"d-1": (first_call, "call")}
    upload(communication_id=second_call, modified_date_time="2026-12-02 12:30:00")
    assert uis.deal_links == {"d-1": (second_call, "call")}
    assert len(uis.deals) == 1
