"""UIS event notifications at the intake service, over real HTTP and the session PostgreSQL.

Bodies are what UIS sends for the template docs/integrations.md tells the clinic to paste
(read from the docs, so the documented template is the one tested): UIS puts each
``{{variable}}`` in as a JSON value. ПроДокторов bookings are not built (the docs say why).
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import httpx
import psycopg
import pytest

from ident_hooks.registry import LEAD_SOURCE_KINDS
from tests.intake.conftest import (
    RECEIVED_AT,
    SOURCES,
    TILDA_SECRET,
    UIS_SECRET,
    UIS_SOURCE,
    leads,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "integrations.md"
LOST_CALL = {
    "notification_mnemonic": "lost_call",
    "notification_name": "Потерянный звонок",
    "notification_time": "2026-11-26 12:25:41",
    "call_session_id": 3581457912,
    "contact_phone_number": "79161234567",
    "contact_full_name": "Анна Смирнова",
    "virtual_phone_number": "74951234567",
    "scenario_name": "Основной",
}


def documented_template() -> str:
    """The body template of the docs' «UIS event notifications» subsection."""
    text = DOCS.read_text(encoding="utf-8")
    section = text[text.index("**UIS event notifications (calls)**") :]
    return re.search(r"```json\n(.*?)```", section, re.S).group(1)


def render(values: dict) -> bytes:
    """The template as UIS fills it in: each ``{{name}}`` becomes that value as JSON."""

    def value(match: re.Match) -> str:
        return json.dumps(values.get(match.group(1)), ensure_ascii=False)

    return re.sub(r"\{\{(\w+)\}\}", value, documented_template()).encode("utf-8")


@pytest.fixture
def intake(intake_db, base_settings, start_intake):
    sources = {**SOURCES, UIS_SOURCE.name: UIS_SOURCE}
    settings = replace(base_settings, sources=sources, burst=1000, rate_per_second=1000)
    return start_intake(settings)


def post_uis(intake, body: bytes, *, secret: str = UIS_SECRET, source: str = "uis_calls"):
    return httpx.post(
        f"{intake.url}/uis/{source}/{secret}",
        content=body,
        headers={"Content-Type": "application/json"},
    )


def requests_kept(conn: psycopg.Connection) -> list[tuple]:
    conn.commit()
    return conn.execute(
        "select source, kind, outcome, http_status, external_id, reason"
        " from integration.intake_requests order by request_id"
    ).fetchall()


def rejects(conn: psycopg.Connection) -> list[tuple]:
    conn.commit()
    return conn.execute(
        "select source, reason, raw from integration.lead_rejects order by reject_id"
    ).fetchall()


def test_uis_notification_is_a_push_kind_of_the_registry():
    kind = LEAD_SOURCE_KINDS["uis_notification"]
    assert (kind.push, kind.connector_class().kind, kind.title) == (
        True,
        "uis_notification",
        "UIS: звонки",
    )


def test_lost_call_becomes_one_lead_however_often_it_is_sent(intake, intake_db):
    answers = [post_uis(intake, render(LOST_CALL)) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 200]
    assert answers[0].json() == {"status": "stored", "id": "call:3581457912"}
    assert answers[1].json() == {"status": "repeated", "id": "call:3581457912"}
    (lead,) = leads(intake_db)
    assert lead["source"] == "uis_calls"
    assert lead["external_id"] == "call:3581457912"
    assert lead["name"] == "Анна Смирнова"
    assert lead["phone_e164"] == "+79161234567"
    assert lead["form_name"] == "Потерянный звонок"
    assert lead["comment"] == "Сценарий: Основной\nНомер, на который звонили: 74951234567"
    # notification_time is the account's local time, read in the clinic's zone (Moscow)
    assert lead["created_at"].isoformat() == "2026-11-26T09:25:41+00:00"
    assert lead["raw"] == LOST_CALL
    assert [(k[0], k[1], k[2], k[4]) for k in requests_kept(intake_db)] == [
        ("uis_calls", "uis_notification", "stored", "call:3581457912"),
        ("uis_calls", "uis_notification", "repeated", "call:3581457912"),
        ("uis_calls", "uis_notification", "repeated", "call:3581457912"),
    ]


def test_another_event_of_the_same_call_is_the_same_lead(intake, intake_db):
    incoming = {**LOST_CALL, "notification_mnemonic": "in_call", "contact_full_name": None}
    incoming["notification_name"] = "Входящий звонок"

    assert post_uis(intake, render(incoming)).json()["status"] == "stored"
    assert post_uis(intake, render(LOST_CALL)).json()["status"] == "repeated"

    (lead,) = leads(intake_db)
    assert (lead["name"], lead["form_name"]) == ("Анна Смирнова", "Потерянный звонок")


def test_a_call_from_a_hidden_number_is_still_a_lead(intake, intake_db):
    hidden = {**LOST_CALL, "contact_phone_number": None, "contact_full_name": None}

    assert post_uis(intake, render(hidden)).status_code == 200

    (lead,) = leads(intake_db)
    assert (lead["phone_raw"], lead["phone_e164"], lead["name"]) == (None, None, None)


def test_a_request_event_is_read_under_uis_variable_names(intake, intake_db):
    request = {
        "notification_name": "Заявка с сайта",
        "notification_timestamp": 1764149141,
        "communication_id": "88120374",
        "visitor_name": "Олег Кузнецов",
        "visitor_phone_number": "8 903 765-43-21",
        "visitor_email": "oleg@example.org",
        "text": "Перезвоните после 18:00",
        "utm_source": "yandex",
        "utm_medium": "cpc",
    }
    # Sent as text/plain: the Content-Type UIS uses is not published, the body is read anyway.
    response = httpx.post(
        f"{intake.url}/uis/uis_calls/{UIS_SECRET}",
        content=json.dumps(request).encode(),
        headers={"Content-Type": "text/plain"},
    )

    assert response.json() == {"status": "stored", "id": "communication:88120374"}
    (lead,) = leads(intake_db)
    assert (lead["name"], lead["phone_e164"], lead["email"]) == (
        "Олег Кузнецов",
        "+79037654321",
        "oleg@example.org",
    )
    assert lead["comment"] == "Перезвоните после 18:00"
    assert (lead["utm_source"], lead["utm_medium"]) == ("yandex", "cpc")
    assert lead["created_at"].isoformat() == "2025-11-26T09:25:41+00:00"  # the Unix time wins


def test_without_notification_time_the_lead_was_created_when_it_arrived(intake, intake_db):
    assert post_uis(intake, render({**LOST_CALL, "notification_time": None})).status_code == 200

    assert leads(intake_db)[0]["created_at"] == RECEIVED_AT


def test_wrong_secret_unknown_instance_or_other_kind_is_refused_and_nothing_kept(intake, intake_db):
    body = render(LOST_CALL)

    assert post_uis(intake, body, secret="guess").status_code == 403
    assert post_uis(intake, body, secret=UIS_SECRET[:-1]).status_code == 403
    assert post_uis(intake, body, source="uis_other").status_code == 404
    # A Tilda instance is not a UIS one, even with its own secret.
    assert post_uis(intake, body, source="tilda", secret=TILDA_SECRET).status_code == 404

    assert leads(intake_db) == []
    assert requests_kept(intake_db) == []
    assert rejects(intake_db) == []


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b'{"call_session_id": 35814', 400, "body is not JSON"),
        (b"\xff\xfe", 400, "body is not JSON"),
        (b'[{"call_session_id": 1}]', 422, "body must be a JSON object, got list"),
        (
            json.dumps({**LOST_CALL, "call_session_id": None}).encode(),
            422,
            "call_session_id or communication_id is required",
        ),
        (
            json.dumps({**LOST_CALL, "notification_time": "вчера"}).encode(),
            422,
            "notification_time: unparseable time",
        ),
    ],
)
def test_malformed_notification_is_4xx_with_a_reject_row(intake, intake_db, body, status, reason):
    response = post_uis(intake, body)

    assert response.status_code == status
    assert response.json()["error"].startswith(reason)
    assert leads(intake_db) == []
    ((source, stored_reason, _raw),) = rejects(intake_db)
    assert (source, stored_reason.startswith(reason)) == ("uis_calls", True)
    ((_, kind, outcome, http_status, external_id, _),) = requests_kept(intake_db)
    assert (kind, outcome, http_status, external_id) == (
        "uis_notification",
        "rejected",
        status,
        None,
    )
