"""Flexbe over real loopback HTTP into the real leads table: the wire, statuses, paging, errors.

Facts under test (see the connector's and the simulator's docstrings for their sources): the
connector POSTs a form body holding the key, as ``segakgd/flexbe_api_client`` does; the
simulator serves what each public client sends (the PyPI ``flexbe`` client is driven against
it for real) and its leads carry every key those clients' lead types read; a lead's
``status.code`` 10/11 means cancelled/deleted in Flexbe and takes it out of the inbox without
touching what admins did; a restored lead comes back; the server may cap pages, so paging
follows what came back and the reply's total; a reply is an error when it has ``error``.
"""

from __future__ import annotations

import enum
import logging
import types
import typing
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import psycopg
import pytest
import requests
from flexbe import Flexbe as PypiFlexbeClient
from flexbe import LeadStatus
from flexbe.exceptions import FlexbeError
from flexbe.types import Lead as PypiClientLead

from ident_dev.simulators.base import Fault
from ident_dev.simulators.flexbe import (
    CANCELLED,
    DELETED,
    DONE,
    IN_WORK,
    FlexbeSimulator,
    request_params,
)
from ident_hooks.inbox import store as inbox
from ident_hooks.leads.normalise import DoctorMatcher
from ident_hooks.leads.sources import (
    SourceError,
    SourceLimitReached,
    SourceSettings,
    SourceTemporarilyFailed,
    parse_records,
)
from ident_hooks.leads.sources.flexbe import FlexbeSource
from ident_hooks.leads.store import StoreResult, store_leads

MOSCOW = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 12, 2, 11, 0, tzinfo=UTC)
DAY_START = datetime(2026, 12, 2, tzinfo=MOSCOW)
ADMIN_COLUMNS = "status, taken_by, taken_at, closed_by, closed_at, close_comment"
# Keys segakgd/flexbe_api_client's src/Dto/Response/LeadDto.php::makeFromArray reads without
# a fallback (no isset, no ??): a lead without one of them breaks that client.
PHP_CLIENT_REQUIRED_KEYS = {"id", "num", "form_name", "form_data", "products", "time"}


@pytest.fixture
def leads_conn(clinic_conn: psycopg.Connection) -> psycopg.Connection:
    clinic_conn.execute("truncate integration.leads, integration.lead_rejects cascade")
    clinic_conn.commit()
    return clinic_conn


@pytest.fixture
def flexbe(running, doctors) -> FlexbeSimulator:
    return running(FlexbeSimulator(doctors=doctors, seed=31, clock=lambda: NOW))


def fetch(client, *, page_size: int = 0) -> list:
    settings = SourceSettings(source="flexbe", page_size=page_size)
    return list(FlexbeSource.fetch(client, DAY_START, NOW, settings=settings))


def pull_into(conn: psycopg.Connection, client) -> StoreResult:
    """One pull as the DAG does it: fetch the period, parse, store, commit."""
    settings = SourceSettings(source="flexbe")
    records = list(FlexbeSource.fetch(client, DAY_START, NOW, settings=settings))
    matcher = DoctorMatcher(conn.execute("select doctor_id, full_name from clinic.doctors"))
    batch = parse_records(FlexbeSource, records, settings=settings, matcher=matcher)
    assert not batch.rejects
    result = store_leads(conn, batch.leads)
    conn.commit()
    return result


def lead_id(conn: psycopg.Connection, external_id) -> int:
    row = conn.execute(
        "select lead_id from integration.leads where source = 'flexbe' and external_id = %s",
        (str(external_id),),
    ).fetchone()
    return row[0]


def open_ids(conn: psycopg.Connection) -> set[int]:
    return {row[0] for row in conn.execute("select lead_id from integration.open_leads")}


def inbox_ids(conn: psycopg.Connection) -> set[int]:
    rows, total = inbox.list_open_leads(conn, inbox.LeadFilter(source="flexbe"))
    assert total == len(rows)
    return {row["lead_id"] for row in rows}


def state(conn: psycopg.Connection, lead: int) -> tuple:
    return conn.execute(
        f"select source_state, {ADMIN_COLUMNS} from integration.leads where lead_id = %s",
        (lead,),
    ).fetchone()


def fits(value, hint) -> bool:
    """Whether ``value`` is what a TypedDict field of type ``hint`` describes."""
    if typing.is_typeddict(hint):
        fields = typing.get_type_hints(hint)
        return isinstance(value, dict) and all(
            name in value and fits(value[name], field) for name, field in fields.items()
        )
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return value in {member.value for member in hint}
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    return any(isinstance(value, typing.get_origin(option) or option) for option in options)


# -- the wire -------------------------------------------------------------------------------
def test_the_connector_posts_a_form_holding_the_key_and_keeps_it_out_of_the_url(flexbe, client_for):
    flexbe.add_lead(NOW - timedelta(minutes=5))

    records = fetch(client_for(flexbe, "flexbe", "flexbe-key"), page_size=50)

    assert len(records) == 1
    (call,) = flexbe.received("/mod/api")
    assert call.method == "POST"
    assert call.headers["content-type"] == "application/x-www-form-urlencoded"
    assert call.query == {}  # nothing in the URL, the key least of all
    assert request_params(call) == {
        "method": "getLeads",
        "date_from": str(int(DAY_START.timestamp())),
        "date_to": str(int(NOW.timestamp())),
        "start": "0",
        "count": "50",
        "api_key": "flexbe-key",
    }


def php_client_post(url: str, fields: dict) -> requests.Response:
    """segakgd/flexbe_api_client: curl POST with CURLOPT_POSTFIELDS = http_build_query(...)."""
    return requests.post(
        url,
        data=urlencode(fields),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=5,
    )


@pytest.mark.parametrize(
    "send",
    [
        # segakgd/flexbe_api_client: filters first, then api_key and method (HttpService.php).
        php_client_post,
        # PyPI flexbe 0.1.0: session.request("POST", url, params=...) — a query, no body.
        lambda url, fields: requests.post(url, params=fields, timeout=5),
    ],
    ids=["php-client-form-body", "pypi-client-post-query"],
)
def test_the_simulator_serves_each_way_the_public_clients_call(flexbe, send):
    leads = [flexbe.add_lead(NOW - timedelta(minutes=m)) for m in (3, 2, 1)]
    fields = {"start": 1, "count": 5, "api_key": "flexbe-key", "method": "getLeads"}

    reply = send(f"{flexbe.base_url}/mod/api/", fields).json()

    assert reply["status"] == 1
    assert list(reply["data"]["leads"]) == [str(lead["id"]) for lead in leads[1:]]


def test_the_simulator_reads_get_and_post_fields_but_no_json_body_and_no_other_method(flexbe):
    lead = flexbe.add_lead(NOW - timedelta(minutes=1))
    url = f"{flexbe.base_url}/mod/api/"
    fields = {"api_key": "flexbe-key", "method": "getLeads"}

    # Flexbe's API page shows GET with the parameters in the query string.
    as_get = requests.get(url, params=fields, timeout=5).json()
    # A form field wins over the same field in the query, as in PHP's $_REQUEST.
    overridden = requests.post(url, params={**fields, "api_key": "stale"}, data=fields, timeout=5)
    as_json = requests.post(url, json=fields, timeout=5).json()
    put = requests.put(url, params=fields, timeout=5)

    assert list(as_get["data"]["leads"]) == [str(lead["id"])]
    assert overridden.json()["status"] == 1
    assert as_json == {"status": 0, "error": {"code": 0, "msg": "Invalid api key"}}
    assert put.status_code == 404


def test_leads_carry_every_key_the_public_clients_lead_types_read(flexbe):
    flexbe.generate(20, NOW)
    fields = {"count": 50, "api_key": "flexbe-key", "method": "getLeads"}

    leads = requests.get(f"{flexbe.base_url}/mod/api/", params=fields, timeout=5).json()
    leads = leads["data"]["leads"]

    assert len(leads) == 20
    for lead in leads.values():
        assert fits(lead, PypiClientLead), lead  # the PyPI client's Lead, nested types too
        assert PHP_CLIENT_REQUIRED_KEYS <= set(lead)
        assert isinstance(lead["products"], list)
        assert {"url", "name"} <= set(lead["page"])  # PageDto reads both without a fallback


def test_the_pypi_flexbe_client_reads_the_simulator(flexbe):
    leads = [flexbe.add_lead(NOW - timedelta(minutes=m)) for m in (4, 3, 2, 1)]
    flexbe.cancel(leads[1]["id"])
    sdk = PypiFlexbeClient(flexbe.base_url, "flexbe-key")

    assert sdk.check_connection()
    read = sdk.get_leads(start=0, count=10)
    cancelled = sdk.get_leads(status=LeadStatus.CANCELLED)
    one = sdk.get_lead(leads[2]["id"])

    assert [lead["id"] for lead in read] == [lead["id"] for lead in leads]
    assert all(fits(lead, PypiClientLead) for lead in read)
    assert [lead["id"] for lead in cancelled] == [leads[1]["id"]]
    assert one is not None and one["id"] == leads[2]["id"]
    calls = flexbe.received("/mod/api")
    assert {call.method for call in calls} == {"POST"}
    assert {call.arg("api_key") for call in calls} == {"flexbe-key"}  # that client's query
    with pytest.raises(FlexbeError) as refused:
        PypiFlexbeClient(flexbe.base_url, "wrong").get_leads()
    assert refused.value.code == 0


# -- statuses -------------------------------------------------------------------------------
def test_a_lead_deleted_in_flexbe_leaves_the_inbox_and_a_restored_one_comes_back(
    leads_conn, flexbe, client_for
):
    kept, deleted = (flexbe.add_lead(NOW - timedelta(minutes=m)) for m in (30, 20))
    client = client_for(flexbe, "flexbe", "flexbe-key")
    pull_into(leads_conn, client)
    kept_id, deleted_id = lead_id(leads_conn, kept["id"]), lead_id(leads_conn, deleted["id"])
    inbox.take_lead(leads_conn, deleted_id, "anna")
    taken = state(leads_conn, deleted_id)
    assert taken[:3] == (None, "in_progress", "anna")

    flexbe.delete(deleted["id"])
    result = pull_into(leads_conn, client)

    assert (result.inserted, result.updated) == (0, 1)
    assert state(leads_conn, deleted_id) == ("deleted", *taken[1:])  # admins' fields as they were
    assert open_ids(leads_conn) == inbox_ids(leads_conn) == {kept_id}

    flexbe.restore(deleted["id"])
    pull_into(leads_conn, client)

    assert state(leads_conn, deleted_id) == (None, *taken[1:])
    assert open_ids(leads_conn) == inbox_ids(leads_conn) == {kept_id, deleted_id}
    raw_status = leads_conn.execute(
        "select raw -> 'status' ->> 'code' from integration.leads where lead_id = %s",
        (deleted_id,),
    ).fetchone()[0]
    assert raw_status == "0"  # the record as the source sent it last


def test_leads_admins_handled_keep_their_fields_when_flexbe_cancels_them(
    leads_conn, flexbe, client_for
):
    in_work, closed, untouched = (flexbe.add_lead(NOW - timedelta(minutes=m)) for m in (9, 8, 7))
    client = client_for(flexbe, "flexbe", "flexbe-key")
    pull_into(leads_conn, client)
    ids = {key: lead_id(leads_conn, r["id"]) for key, r in [("work", in_work), ("closed", closed)]}
    inbox.take_lead(leads_conn, ids["work"], "anna")
    inbox.close_lead(leads_conn, ids["closed"], "boris", "done", "записан на 5 декабря")
    before = {key: state(leads_conn, lead)[1:] for key, lead in ids.items()}

    flexbe.cancel(in_work["id"])
    flexbe.cancel(closed["id"])
    flexbe.set_status(untouched["id"], IN_WORK)  # the clinic works on it in Flexbe: still ours
    pull_into(leads_conn, client)

    for key, lead in ids.items():
        assert state(leads_conn, lead) == ("cancelled", *before[key])
    assert before["work"][:2] == ("in_progress", "anna")
    assert before["closed"][0] == "done" and before["closed"][3] == "boris"
    assert open_ids(leads_conn) == {lead_id(leads_conn, untouched["id"])}


def test_a_lead_first_seen_deleted_is_stored_but_never_open(leads_conn, flexbe, client_for):
    lead = flexbe.add_lead(NOW - timedelta(minutes=5))
    flexbe.delete(lead["id"])
    done = flexbe.add_lead(NOW - timedelta(minutes=4))
    flexbe.set_status(done["id"], DONE)

    result = pull_into(leads_conn, client_for(flexbe, "flexbe", "flexbe-key"))

    assert result.inserted == 2
    stored = state(leads_conn, lead_id(leads_conn, lead["id"]))
    assert stored[:2] == ("deleted", "new")
    assert open_ids(leads_conn) == {lead_id(leads_conn, done["id"])}


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({"code": 10, "name": "Отменён"}, "cancelled"),
        ({"code": "11"}, "deleted"),
        (11, "deleted"),
        ({"code": 2, "name": "Выполнен"}, None),
        ({"code": 99}, None),
        (None, None),
        ({"code": float("inf")}, None),
        (["11"], None),
    ],
)
def test_status_codes_map_to_the_source_state(status, expected, matcher):
    record = {"id": 1, "time": int(NOW.timestamp()), "status": status}
    lead = FlexbeSource.parse(record, settings=SourceSettings("flexbe"), matcher=matcher)
    assert lead.source_state == expected


# -- paging ---------------------------------------------------------------------------------
@pytest.mark.parametrize("send_total", [True, False])
def test_a_server_capping_pages_at_100_still_yields_every_lead(
    running, client_for, doctors, send_total
):
    capped = running(
        FlexbeSimulator(doctors=doctors, seed=32, max_count=100, send_total=send_total)
    )
    created = [capped.add_lead(NOW - timedelta(seconds=10 * i + 1)) for i in range(250)]

    records = fetch(client_for(capped, "flexbe", "flexbe-key"), page_size=1000)

    assert sorted(str(r["id"]) for r in records) == sorted(str(r["id"]) for r in created)
    calls = [request_params(call) for call in capped.received("/mod/api")]
    assert {params["count"] for params in calls} == {"1000"}
    # Paged by what came back; without a total the walk ends on the first empty page.
    expected = ["0", "100", "200"] if send_total else ["0", "100", "200", "250"]
    assert [params["start"] for params in calls] == expected


def test_a_server_that_ignores_start_does_not_loop_forever(running, client_for, doctors, caplog):
    stuck = running(
        FlexbeSimulator(doctors=doctors, seed=33, max_count=100, ignore_start=True, leads_as="list")
    )
    for i in range(150):
        stuck.add_lead(NOW - timedelta(seconds=10 * i + 1))
    client = client_for(stuck, "flexbe", "flexbe-key")

    pool = ThreadPoolExecutor(1)  # a walk that never ends fails the test instead of hanging it
    try:
        with caplog.at_level(logging.WARNING, logger="ident_hooks.leads.paging"):
            records = pool.submit(fetch, client, page_size=100).result(timeout=30)
    finally:
        pool.shutdown(wait=False)

    assert len(records) == len({r["id"] for r in records}) == 100
    assert [request_params(call)["start"] for call in stuck.received("/mod/api")] == ["0", "100"]
    (warning,) = caplog.records  # the second page held nothing new
    assert warning.getMessage().startswith("flexbe: the page at start=100 brought 100 records")
    assert "seems to ignore start" in warning.getMessage()


# -- errors ---------------------------------------------------------------------------------
def test_a_reply_with_error_is_an_error_with_or_without_status(running, client_for, doctors):
    bare = running(FlexbeSimulator(doctors=doctors, seed=34, error_status=False))
    bare.add_lead(NOW - timedelta(minutes=1))
    client = client_for(bare, "flexbe", "flexbe-key")

    bare.inject_api_error(1, "Limit exceeded")
    with pytest.raises(SourceLimitReached, match="Limit exceeded"):
        fetch(client)
    with pytest.raises(SourceError, match="error 0: Invalid api key") as refused:
        fetch(client_for(bare, "flexbe", "wrong-key"))
    assert not refused.value.retryable
    assert len(fetch(client)) == 1


def test_an_error_page_that_quotes_the_key_is_reported_without_it(flexbe, client_for):
    """A proxy's 200 page echoing the request: the connector's own error keeps the key out,
    wherever it is raised, not only inside a pull."""
    flexbe.inject(Fault(status=200, body="<html>POST /mod/api/ api_key=flexbe-key: timeout"))

    with pytest.raises(SourceTemporarilyFailed, match="reply is not JSON") as failure:
        fetch(client_for(flexbe, "flexbe", "flexbe-key"))

    assert failure.value.retryable
    assert "flexbe-key" not in str(failure.value) and "api_key=***" in str(failure.value)


def test_the_simulator_keeps_statuses_like_flexbe(running):
    flexbe = running(FlexbeSimulator(error_status=False))
    first, second = (flexbe.add_lead(NOW - timedelta(minutes=m)) for m in (2, 1))
    flexbe.set_status(first["id"], IN_WORK)
    flexbe.delete(first["id"])
    flexbe.cancel(second["id"])
    url = f"{flexbe.base_url}/mod/api/"
    key = {"api_key": "flexbe-key", "method": "getLeads"}

    def codes(**params) -> dict[str, int]:
        leads = requests.get(url, params={**key, **params}, timeout=5).json()["data"]["leads"]
        return {lead_id: lead["status"]["code"] for lead_id, lead in leads.items()}

    assert codes() == {str(first["id"]): DELETED, str(second["id"]): CANCELLED}
    assert codes(status=DELETED) == {str(first["id"]): DELETED}
    flexbe.restore(first["id"])
    assert codes()[str(first["id"])] == IN_WORK  # the status it had before the deletion
    with pytest.raises(ValueError, match="not deleted"):
        flexbe.restore(first["id"])
    bad = requests.get(url, params={"api_key": "nope", "method": "getLeads"}, timeout=5).json()
    assert bad == {"error": {"code": 0, "msg": "Invalid api key"}}
