"""Yandex Metrica's offline conversions and CRM orders, over real HTTP to its simulator."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email.parser import BytesParser
from email.policy import HTTP
from zoneinfo import ZoneInfo

import pytest
import requests
from urllib3 import encode_multipart_formdata

from ident_dev.simulators.base import Fault
from ident_dev.simulators.catalog import build_simulators
from ident_dev.simulators.yandex_metrica import YandexMetricaSimulator
from ident_hooks.config import ConversionSink, load_config
from ident_hooks.conversions import ConversionEvent, ConversionRefused
from ident_hooks.conversions.yandex_metrica import YandexMetricaConversions
from ident_hooks.errors import TransientFailure

TOKEN = "y0_AgAAAA-metrica-secret-token"
COUNTER = "51234567"
NOW = datetime(2026, 12, 6, 9, 30, tzinfo=UTC)
MOSCOW = ZoneInfo("Europe/Moscow")
KNOWN_CLIENT = "1764000000123456789"
OLD_CLIENT = "1761000000987654321"  # last seen 30 days ago: too old to link
KNOWN_YCLID = "4829176350192837465"
PHONE = "+79995551111"
# md5("79995551111"), computed outside Python (printf 79995551111 | md5sum).
PHONE_MD5 = "f09f2c3d48f31e2a802944ade2e5aec5"
GOALS = {"lead": "lead_created", "first_visit": "first_visit"}
UPLOAD = f"/management/v1/counter/{COUNTER}/offline_conversions/upload"
ORDERS = f"/cdp/api/v1/counter/{COUNTER}/data/simple_orders"


@pytest.fixture
def metrica(monkeypatch):
    with YandexMetricaSimulator(
        token=TOKEN,
        counter_id=COUNTER,
        goals={"lead_created", "first_visit"},
        visits={
            KNOWN_CLIENT: [NOW - timedelta(days=3)],
            OLD_CLIENT: [NOW - timedelta(days=30)],
            KNOWN_YCLID: [NOW - timedelta(days=2)],
        },
        join_threshold=date(2026, 11, 20),
        processing_polls=2,
        clock=lambda: NOW,
    ) as server:
        _connect(monkeypatch, server, TOKEN)
        yield server


def _connect(monkeypatch, server, token: str) -> None:
    connection = {"conn_type": "yandex_metrica", "host": server.base_url, "password": token}
    monkeypatch.setenv("AIRFLOW_CONN_METRICA_TEST", json.dumps(connection))


def _connector(**sink_options) -> YandexMetricaConversions:
    options = {"goals": GOALS, "counter_id": COUNTER, **sink_options}
    sink = ConversionSink("metrica", "yandex_metrica", "Яндекс Метрика", "metrica_test", **options)
    client = YandexMetricaConversions.client("metrica_test", max_attempts=2, sleep=lambda s: None)
    return YandexMetricaConversions(client, sink, clinic_timezone="Europe/Moscow")


def _event(lead_id: int, event: str = "lead", **fields) -> ConversionEvent:
    created = NOW - timedelta(hours=lead_id)
    return ConversionEvent(
        event=event,
        lead_id=lead_id,
        occurred_at=fields.pop("occurred_at", created),
        lead_created_at=created,
        source="site",
        source_kind="tilda",
        external_id=f"tilda-{lead_id}",
        **fields,
    )


def _file(request) -> list[dict[str, str]]:
    """The CSV rows of a request's multipart ``file`` part, read independently."""
    content_type = request.headers["content-type"]
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + request.body
    )
    (part,) = [p for p in message.iter_parts() if p.get_param("name", header="content-disposition")]
    assert part.get_param("name", header="content-disposition") == "file"
    return list(csv.DictReader(io.StringIO(part.get_payload(decode=True).decode("utf-8"))))


def test_conversions_by_client_id_carry_the_goal_the_time_and_the_price(metrica):
    lead = _event(1, ym_client_id=KNOWN_CLIENT)
    visit_at = NOW - timedelta(minutes=40)
    visit = _event(
        2, "first_visit", ym_client_id=KNOWN_CLIENT, occurred_at=visit_at, amount=Decimal("3500.50")
    )

    (delivery,) = _connector().deliver([lead, visit], NOW)

    assert list(delivery.events) == [lead, visit]
    (request,) = metrica.received(UPLOAD)
    assert request.headers["authorization"] == f"OAuth {TOKEN}"
    assert request.arg("client_id_type") == "CLIENT_ID"
    assert _file(request) == [
        {
            "Target": "lead_created",
            "DateTime": str(int(lead.occurred_at.timestamp())),
            "ClientId": KNOWN_CLIENT,
            "Price": "",
            "Currency": "",
        },
        {
            "Target": "first_visit",
            "DateTime": str(int(visit_at.timestamp())),
            "ClientId": KNOWN_CLIENT,
            "Price": "3500.50",
            "Currency": "RUB",
        },
    ]
    upload = delivery.upload
    assert (upload.channel, upload.rows_sent, upload.status, upload.finished) == (
        "offline_conversions", 2, "UPLOADED", False
    )  # fmt: skip
    assert upload.upload_id == str(next(iter(metrica.uploadings)))
    assert upload.line_quantity == 2


def test_an_event_with_only_a_yclid_goes_in_an_upload_of_its_own(metrica):
    by_client = _event(1, ym_client_id=KNOWN_CLIENT, yclid="111")
    by_yclid = _event(2, yclid=KNOWN_YCLID)

    deliveries = _connector().deliver([by_client, by_yclid], NOW)

    assert [list(d.events) for d in deliveries] == [[by_client], [by_yclid]]
    first, second = metrica.received(UPLOAD)
    assert [row["ClientId"] for row in _file(first)] == [KNOWN_CLIENT]
    assert second.arg("client_id_type") == "YCLID"
    assert _file(second) == [
        {
            "Target": "lead_created",
            "DateTime": str(int(by_yclid.occurred_at.timestamp())),
            "Yclid": KNOWN_YCLID,
        }
    ]


def test_leads_without_a_click_id_wait_unless_hashed_phones_are_allowed(metrica):
    lead = _event(7, phone_e164=PHONE)
    visit_at = datetime(2026, 12, 5, 16, 45, 10, tzinfo=UTC)
    visit = _event(8, "first_visit", phone_e164=PHONE, occurred_at=visit_at, amount=Decimal("7200"))
    no_phone = _event(9)

    assert _connector().deliver([lead, visit, no_phone], NOW) == []
    assert metrica.received() == []

    (delivery,) = _connector(send_hashed_phones=True).deliver([lead, visit, no_phone], NOW)

    assert list(delivery.events) == [lead, visit]
    assert (delivery.upload.channel, delivery.upload.status, delivery.upload.finished) == (
        "simple_orders", "PASSED", True
    )  # fmt: skip
    (request,) = metrica.received(ORDERS)
    assert (request.arg("merge_mode"), request.arg("delimiter_type")) == ("SAVE", "COMMA")
    assert metrica.orders == {
        "lead-7": {
            "id": "lead-7",
            "create_date_time": lead.occurred_at.astimezone(MOSCOW).strftime("%Y-%m-%d %H:%M:%S"),
            "phones_md5": PHONE_MD5,
            "order_status": "PAID",
            "revenue": "",
        },
        "first_visit-8": {
            "id": "first_visit-8",
            "create_date_time": "2026-12-05 19:45:10",  # the clinic's (the counter's) time
            "phones_md5": PHONE_MD5,
            "order_status": "PAID",
            "revenue": "7200",
        },
    }
    assert metrica.received(UPLOAD) == []


def test_no_phone_name_or_email_reaches_metrica_in_any_form(metrica):
    events = [
        _event(1, ym_client_id=KNOWN_CLIENT, phone_e164=PHONE),
        _event(2, yclid=KNOWN_YCLID, phone_e164=PHONE),
        _event(3, phone_e164=PHONE),
        _event(4, "first_visit", phone_e164=PHONE, amount=Decimal("1500")),
    ]
    connector = _connector(send_hashed_phones=True)
    deliveries = connector.deliver(events, NOW)
    for delivery in deliveries:
        connector.follow(delivery.upload)
    connector.earliest_linkable(NOW)

    assert len(metrica.conversions) == 2 and len(metrica.orders) == 2
    # The digits 9995551111 in any spelling: +7 999 555-11-11, 8 (999) 5551111, 79995551111.
    phone = re.compile(r"\D{0,3}".join("9995551111"))
    sent = [
        request.path.encode() + json.dumps(request.query).encode() + request.body
        for request in metrica.received()
    ]
    assert len(sent) == 6
    for body in sent:
        text = body.decode("utf-8")
        assert not phone.search(text), text
        assert "tilda-" not in text  # the lead's id at its source stays home
        assert "@" not in text  # no e-mail address


def test_a_wrong_token_is_refused_for_good_and_the_message_keeps_it_secret(metrica, monkeypatch):
    _connect(monkeypatch, metrica, "y0_AgAAAA-revoked-token")

    with pytest.raises(ConversionRefused) as refused:
        _connector().deliver([_event(1, ym_client_id=KNOWN_CLIENT)], NOW)

    assert "invalid_token" in str(refused.value) and "403" in str(refused.value)
    assert "revoked-token" not in str(refused.value)
    assert metrica.conversions == []


def test_a_goal_named_in_cyrillic_is_refused(metrica):
    with pytest.raises(ConversionRefused) as refused:
        _connector(goals={"lead": "заявка_с_сайта"}).deliver(
            [_event(1, ym_client_id=KNOWN_CLIENT)], NOW
        )
    assert "400" in str(refused.value) and "Target" in str(refused.value)
    assert metrica.conversions == []


def test_a_conversion_still_ahead_of_the_clock_waits(metrica):
    ahead = _event(1, ym_client_id=KNOWN_CLIENT, occurred_at=NOW + timedelta(minutes=5))
    assert _connector().deliver([ahead], NOW) == []
    assert metrica.received() == []


def test_uploads_accepted_before_a_refusal_are_returned_and_the_rest_waits(metrica):
    metrica.inject(Fault(status=400, body={"errors": [], "code": 400}, path_contains="simple"))
    events = [_event(1, ym_client_id=KNOWN_CLIENT), _event(2, phone_e164=PHONE)]

    (delivery,) = _connector(send_hashed_phones=True).deliver(events, NOW)

    assert list(delivery.events) == [events[0]]
    assert metrica.orders == {}
    # The next run has only the refused event left: now the refusal fails the run.
    metrica.inject(Fault(status=400, body={"errors": [], "code": 400}, path_contains="simple"))
    with pytest.raises(ConversionRefused):
        _connector(send_hashed_phones=True).deliver(events[1:], NOW)


def test_a_rate_limit_or_an_outage_is_transient(metrica):
    metrica.inject(Fault(status=429, body={"errors": [{"error_type": "quota_requests_by_ip"}]}))
    metrica.inject(Fault(status=503, body={"errors": [{"error_type": "backend_error"}]}))
    with pytest.raises(TransientFailure):
        _connector().deliver([_event(1, ym_client_id=KNOWN_CLIENT)], NOW)
    assert metrica.conversions == []


def test_an_upload_is_followed_to_processed_with_the_counts(metrica):
    events = [
        _event(1, ym_client_id=KNOWN_CLIENT),
        _event(2, ym_client_id="1765000000555555555"),  # a visitor the counter never saw
        _event(3, ym_client_id=OLD_CLIENT),  # seen only 30 days ago
        _event(4, "first_visit", ym_client_id=KNOWN_CLIENT),  # a goal the counter lacks
    ]
    connector = _connector(goals={"lead": "lead_created", "first_visit": "paid_visit"})
    (delivery,) = connector.deliver(events, NOW)

    followed = connector.follow(delivery.upload)
    assert (followed.status, followed.finished) == ("UPLOADED", False)
    followed = connector.follow(followed)
    assert (followed.status, followed.finished) == ("PROCESSED", True)
    assert (
        followed.linked_quantity,
        followed.user_not_found_quantity,
        followed.goal_not_found_quantity,
        followed.line_quantity,
    ) == (1, 2, 1, 4)
    assert connector.follow(followed) is followed  # finished: not asked again
    assert len(metrica.received("/uploading/")) == 2


def test_an_upload_that_links_nothing_ends_in_linkage_failure(metrica):
    connector = _connector()
    (delivery,) = connector.deliver([_event(1, ym_client_id="1765000000555555555")], NOW)
    followed = connector.follow(connector.follow(delivery.upload))
    assert (followed.status, followed.finished, followed.user_not_found_quantity) == (
        "LINKAGE_FAILURE", True, 1
    )  # fmt: skip


def test_earliest_linkable_is_the_counters_visit_join_threshold(metrica):
    assert _connector().earliest_linkable(NOW) == datetime(2026, 11, 20, tzinfo=MOSCOW)


# -- the simulator refuses what Metrica refuses ---------------------------------------


def _post(server, path: str, text: str | None, *, token: str | None = TOKEN, **params):
    fields = {"file": ("data.csv", text.encode("utf-8"), "text/csv")} if text is not None else {}
    body, content_type = encode_multipart_formdata(fields or {"comment": "no file"})
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"OAuth {token}"
    return requests.post(
        server.base_url + path, data=body, headers=headers, params=params, timeout=10
    )


@pytest.mark.parametrize(
    ("text", "token", "status", "error_type"),
    [
        (f"Target,DateTime,ClientId\nlead_created,{int(NOW.timestamp()) + 60},1\n", TOKEN, 400,
         "invalid_parameter"),
        (None, TOKEN, 400, "missing_parameter"),
        (f"DateTime,ClientId\n{int(NOW.timestamp())},1\n", TOKEN, 400, "invalid_parameter"),
        ("Target,ClientId\nlead_created,1\n", TOKEN, 400, "invalid_parameter"),
        (f"Target,DateTime,Phone\nlead_created,{int(NOW.timestamp())},1\n", TOKEN, 400,
         "invalid_parameter"),
        (f"Target,DateTime,ClientId\nцель,{int(NOW.timestamp())},1\n", TOKEN, 400,
         "invalid_parameter"),
        (f"Target,DateTime,ClientId\nlead_created,{int(NOW.timestamp())},1\n", None, 401,
         "unauthorized"),
        (f"Target,DateTime,ClientId\nlead_created,{int(NOW.timestamp())},1\n", "other", 403,
         "invalid_token"),
    ],
    ids=["future", "no-file", "no-target", "no-datetime", "no-identifier", "cyrillic-goal",
         "no-token", "bad-token"],
)  # fmt: skip
def test_the_simulator_refuses_an_upload_as_metrica_does(metrica, text, token, status, error_type):
    answer = _post(metrica, UPLOAD, text, token=token)
    assert answer.status_code == status
    body = answer.json()
    assert body["code"] == status and body["errors"][0]["error_type"] == error_type
    assert metrica.conversions == []


def test_the_simulator_refuses_another_counter_and_an_unknown_uploading(metrica):
    line = f"Target,DateTime,ClientId\nlead_created,{int(NOW.timestamp())},1\n"
    other = _post(metrica, UPLOAD.replace(COUNTER, "999"), line)
    assert (other.status_code, other.json()["errors"][0]["error_type"]) == (403, "access_denied")
    missing = requests.get(
        f"{metrica.base_url}/management/v1/counter/{COUNTER}/offline_conversions/uploading/77",
        headers={"Authorization": f"OAuth {TOKEN}"},
        timeout=10,
    )
    assert missing.status_code == 404


@pytest.mark.parametrize(
    "text",
    [
        "id,create_date_time,phones\nlead-1,2026-12-05 10:00:00,+79995551111\n",
        'id,create_date_time,phones\nlead-1,2026-12-05 10:00:00,"7 999 555 11 11"\n',
        "create_date_time,phones_md5\n2026-12-05 10:00:00," + PHONE_MD5 + "\n",
        "id,phones_md5\nlead-1," + PHONE_MD5 + "\n",
        "id,create_date_time,revenue\nlead-1,2026-12-05 10:00:00,100\n",
        "id,create_date_time,phones_md5\nlead-1,05.12.2026 10:00," + PHONE_MD5 + "\n",
    ],
    ids=["plus", "spaces", "no-id", "no-time", "no-identifier", "time-format"],
)
def test_the_simulator_refuses_orders_as_metrica_does(metrica, text):
    answer = _post(metrica, ORDERS, text, merge_mode="SAVE", delimiter_type="COMMA")
    assert answer.status_code == 400, answer.text
    assert metrica.orders == {}


def test_the_simulator_takes_orders_by_plain_digits(metrica):
    text = 'id,create_date_time,phones\nlead-1,2026-12-05 10:00:00,"79995551111,79995552222"\n'
    answer = _post(metrica, ORDERS, text, merge_mode="SAVE", delimiter_type="COMMA")
    assert answer.status_code == 200
    assert answer.json()["uploading"]["api_validation_status"] == "PASSED"
    assert set(metrica.orders) == {"lead-1"}


# -- the run command's simulators ------------------------------------------------------


def test_the_configured_metrica_sink_gets_a_simulator_with_its_counter_and_goals():
    config = load_config()
    (sink,) = [s for s in config.conversion_sinks if s.kind == "yandex_metrica"]
    services = build_simulators([], [], config=config)

    service = services[sink.connection]
    assert isinstance(service.server, YandexMetricaSimulator)
    assert service.conn_type == "yandex_metrica"
    assert service.server.counter_id == sink.counter_id
    assert service.server.goals == set(sink.goals.values()) == {"lead_created", "first_visit"}
    # The UIS deals sink shares the UIS connection, served by the UIS lead simulator.
    assert not isinstance(services["uis"].server, YandexMetricaSimulator)
    for service in services.values():
        service.server.stop()


def test_the_run_commands_simulator_links_the_demo_leads_click_ids(
    metrica, clinic_conn, clinic_db_url, point_ident_db
):
    from ident_dev import demo, devstack

    clinic_conn.execute("truncate integration.leads, report_build.lead_changes")
    clinic_conn.commit()
    demo.load(clinic_conn, demo.generate(5, 3, start=NOW.date(), now=NOW), replace=True)
    client_id, created_at = clinic_conn.execute(
        "select ym_client_id, created_at from integration.leads"
        " where ym_client_id is not null order by created_at desc limit 1"
    ).fetchone()
    clinic_conn.commit()
    point_ident_db(clinic_db_url)
    metrica.visits_of = devstack._lead_visits
    events = [
        _event(1, ym_client_id=client_id, occurred_at=created_at),
        _event(2, ym_client_id="1765000000555555555"),  # no lead of the clinic has it
    ]

    connector = _connector()
    (delivery,) = connector.deliver(events, NOW)
    followed = connector.follow(connector.follow(delivery.upload))

    assert (followed.linked_quantity, followed.user_not_found_quantity) == (1, 1)
