"""What a hostile or broken sender can post, over real HTTP and the session's PostgreSQL.

Each body is answered 4xx with a reason, kept as one request row and one reject row, and
leaves no traceback in the server's log: never a 500, and never a 503 (which tells the
sender to retry what would be refused again).
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import replace

import httpx
import psycopg
import pytest

from tests.intake.conftest import (
    SITE_SECRET,
    SOURCES,
    TILDA_SECRET,
    UIS_SECRET,
    UIS_SOURCE,
    leads,
)

SHOWN_BODY_CHARS = 4000  # what a reject row keeps of a body it could not read
LONG_ID = random.Random(0).randbytes(15_000).hex()  # random: the index cannot compress it
# A lead either JSON push kind would store, then one hostile field.
LEAD = b'{"id": "h1", "notification_mnemonic": "lost_call", "call_session_id": 1001, '
# The bodies every JSON push kind refuses, with the reason after "body is not JSON: ".
HOSTILE_JSON = {
    "nested_30000_levels": (b"[" * 30_000 + b"]" * 30_000, "nested deeper than 32 levels"),
    "nested_within_the_parser_limit": (
        LEAD + b'"tags": ' + b"[" * 990 + b"]" * 990 + b"}",
        "nested deeper than 32 levels",
    ),
    "lone_surrogate": (
        LEAD + b'"name": "\\ud800"}',
        "invalid Unicode: a lone surrogate \\ud800 in a string",
    ),
    "lone_surrogate_in_a_key": (
        LEAD + b'"\\udfff": "x"}',
        "invalid Unicode: a lone surrogate \\udfff in a string",
    ),
    "nan": (LEAD + b'"price": NaN}', "NaN is not a JSON number"),
    "infinity": (LEAD + b'"price": Infinity}', "Infinity is not a JSON number"),
    "minus_infinity": (LEAD + b'"price": -Infinity}', "-Infinity is not a JSON number"),
    "number_overflowing_to_inf": (LEAD + b'"price": 1e999}', "number 1e999 is out of range"),
}


@pytest.fixture
def intake(intake_db, base_settings, start_intake):
    sources = {**SOURCES, UIS_SOURCE.name: UIS_SOURCE}
    return start_intake(replace(base_settings, sources=sources, burst=1000, rate_per_second=1000))


@pytest.fixture
def server_log(caplog):
    """What the app and uvicorn log (uvicorn's loggers do not propagate to the root)."""
    caplog.set_level(logging.INFO)
    uvicorn_log = logging.getLogger("uvicorn")
    uvicorn_log.addHandler(caplog.handler)
    yield caplog
    uvicorn_log.removeHandler(caplog.handler)


def post_json(intake, kind: str, body: bytes) -> httpx.Response:
    if kind == "webhook":
        url, headers = f"{intake.url}/webhook/site_form", {"Authorization": f"Bearer {SITE_SECRET}"}
    else:
        url, headers = f"{intake.url}/uis/uis_calls/{UIS_SECRET}", {}
    return httpx.post(url, content=body, headers={**headers, "Content-Type": "application/json"})


def kept(conn: psycopg.Connection) -> tuple[dict, dict]:
    """The one request row and the one reject row that a refused request leaves."""
    conn.commit()
    cursor = conn.cursor(row_factory=psycopg.rows.dict_row)
    (request,) = cursor.execute(
        "select source, outcome, http_status, body_bytes, reason, body"
        " from integration.intake_requests"
    ).fetchall()
    (reject,) = cursor.execute(
        "select source, reason, raw from integration.lead_rejects"
    ).fetchall()
    reject["raw"] = json.loads(reject["raw"])
    return request, reject


def assert_no_traceback(log: pytest.LogCaptureFixture) -> None:
    assert [r.getMessage() for r in log.records if r.exc_info or r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize("kind", ["webhook", "uis_notification"])
@pytest.mark.parametrize("case", HOSTILE_JSON)
def test_json_the_database_cannot_keep_is_400_with_a_reject(
    intake, intake_db, server_log, case, kind
):
    body, detail = HOSTILE_JSON[case]
    source = "site_form" if kind == "webhook" else "uis_calls"

    response = post_json(intake, kind, body)

    reason = f"body is not JSON: {detail}"
    assert (response.status_code, response.json()) == (400, {"error": reason})
    request, reject = kept(intake_db)
    assert request == {
        "source": source,
        "outcome": "rejected",
        "http_status": 400,
        "body_bytes": len(body),
        "reason": reason,
        "body": body,
    }
    shown = body.decode("utf-8")[:SHOWN_BODY_CHARS]
    assert reject == {"source": source, "reason": reason, "raw": {"body": shown}}
    assert leads(intake_db) == []
    assert f"{source} ({kind}): 400 rejected" in server_log.text
    assert_no_traceback(server_log)


def _with_long_id(kind: str) -> tuple[str, dict]:
    if kind == "tilda":
        return "tranid", {"Phone": "+79161112233", "formid": "f1", "tranid": LONG_ID}
    if kind == "webhook":
        return "id", {"id": LONG_ID, "phone": "+79161112233"}
    return "call_session_id", {"notification_mnemonic": "lost_call", "call_session_id": LONG_ID}


@pytest.mark.parametrize("kind", ["tilda", "webhook", "uis_notification"])
def test_an_overlong_id_is_422_with_a_reject(intake, intake_db, server_log, kind):
    field, record = _with_long_id(kind)
    if kind == "tilda":
        source = "tilda"
        response = httpx.post(f"{intake.url}/tilda/tilda/{TILDA_SECRET}", data=record)
    else:
        source = "site_form" if kind == "webhook" else "uis_calls"
        response = post_json(intake, kind, json.dumps(record).encode())

    reason = f"{field}: record id longer than 500 characters"
    assert (response.status_code, response.json()) == (422, {"error": reason})
    request, reject = kept(intake_db)
    assert (request["source"], request["outcome"], request["http_status"]) == (
        source,
        "rejected",
        422,
    )
    assert request["reason"] == reason
    assert reject == {"source": source, "reason": reason, "raw": record}
    assert leads(intake_db) == []
    assert_no_traceback(server_log)


@pytest.fixture
def comments_limited(intake_db):
    """A clinic database with a rule of its own that the normaliser does not know."""
    intake_db.execute(
        "alter table integration.leads add constraint comment_fits"
        " check (char_length(comment) <= 1000)"
    )
    intake_db.commit()
    yield
    intake_db.rollback()
    intake_db.execute("alter table integration.leads drop constraint comment_fits")
    intake_db.commit()


def test_a_lead_the_database_refuses_is_422_with_a_reject(
    intake, intake_db, comments_limited, server_log
):
    record = {"id": "c1", "phone": "+79161112233", "comment": "Перезвоните" * 200}

    response = post_json(intake, "webhook", json.dumps(record, ensure_ascii=False).encode())

    reason = (
        'the database refused the lead: new row for relation "leads" violates check'
        ' constraint "comment_fits"'
    )
    assert (response.status_code, response.json()) == (422, {"error": reason})
    request, reject = kept(intake_db)
    assert (request["outcome"], request["http_status"], request["reason"]) == (
        "rejected",
        422,
        reason,
    )
    assert reject == {"source": "site_form", "reason": reason, "raw": record}
    assert leads(intake_db) == []
    assert_no_traceback(server_log)


def test_a_chunked_body_over_the_limit_is_told_by_what_was_read(
    intake_db, base_settings, start_intake, server_log
):
    small = start_intake(replace(base_settings, max_body_bytes=1024))
    sent = json.dumps({"id": "big", "comment": "я" * 2000}).encode()

    def chunks():  # no Content-Length: the size is known only by reading
        yield sent[:600]
        yield sent[600:]

    response = httpx.post(
        f"{small.url}/webhook/site_form",
        content=chunks(),
        headers={"Authorization": f"Bearer {SITE_SECRET}", "Content-Type": "application/json"},
    )

    request, reject = kept(intake_db)
    read = request["body_bytes"]  # reading stops with the piece that passes the limit
    assert 1024 < read <= len(sent)
    reason = f"body of at least {read} bytes is over the limit of 1024"
    assert (response.status_code, response.json()) == (413, {"error": reason})
    assert request == {
        "source": "site_form",
        "outcome": "rejected",
        "http_status": 413,
        "body_bytes": read,
        "reason": reason,
        "body": sent[:1024],  # what was read, up to the limit
    }
    assert (reject["reason"], reject["raw"]["body_bytes"]) == (reason, read)
    assert_no_traceback(server_log)
