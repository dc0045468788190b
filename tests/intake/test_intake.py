"""The intake service over real HTTP and the session's PostgreSQL: Tilda's and the JSON
webhook's real request shapes, deduplication, refusals, the database away, GetTickets."""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta
from urllib.parse import quote

import httpx
import psycopg
import pytest
from intake_server import free_port
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ident_dev.airflow_stack import wait_for
from ident_hooks.db import apply_migrations
from ident_hooks.intake.app import create_app
from ident_hooks.leads.sources import SECRET_IN_PATH
from ident_hooks.registry import LEAD_SOURCE_KINDS
from tests.intake.conftest import (
    RECEIVED_AT,
    SITE_SECRET,
    TICKETS_KEY,
    TILDA_SECRET,
    leads,
)

TILDA_FORM = {
    "Name": "Анна Смирнова",
    "Phone": "+7 (916) 123-45-67",
    "Email": "anna@example.org",
    "Какой_зуб_болит": "верхний левый",
    "tranid": "467251:8442970",
    "formid": "form563432381",
}
SITE_LEAD = {
    "id": "site-000017",
    "name": "Олег Кузнецов",
    "phone": "8 903 765-43-21",
    "email": "oleg@example.org",
    "comment": "Перезвоните после 18:00",
    "form": "Запись к врачу",
    "doctor": "Иванова Мария",
    "plan_start": "2026-11-28T10:00:00",
    "plan_end": "2026-11-28T10:30:00",
    "referrer": "https://www.google.com/search?q=стоматология",
    "landing_url": "https://clinic.example/implant?utm_source=google&utm_medium=cpc"
    "&utm_campaign=implant_nov",
}


def tilda_url(intake, secret: str = TILDA_SECRET, source: str = "tilda") -> str:
    return f"{intake.url}/tilda/{source}/{secret}"


def post_site(intake, body, *, secret: str | None = SITE_SECRET, **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    if isinstance(body, bytes):
        headers["Content-Type"] = "application/json"
        return httpx.post(f"{intake.url}/webhook/site_form", content=body, headers=headers)
    return httpx.post(f"{intake.url}/webhook/site_form", json=body, headers=headers, **kwargs)


def requests_kept(conn: psycopg.Connection) -> list[tuple]:
    conn.commit()
    return conn.execute(
        "select source, outcome, http_status, external_id, body, reason"
        " from integration.intake_requests order by request_id"
    ).fetchall()


def rejects(conn: psycopg.Connection) -> list[tuple]:
    conn.commit()
    return conn.execute(
        "select source, reason, raw, times_seen from integration.lead_rejects order by reject_id"
    ).fetchall()


# -- Tilda ------------------------------------------------------------------------------------
def test_tilda_connection_check_is_answered_200_and_makes_no_lead(intake, intake_db):
    response = httpx.post(tilda_url(intake), data={"test": "test"})

    assert response.status_code == 200
    assert leads(intake_db) == []
    assert requests_kept(intake_db) == [("tilda", "test", 200, None, b"test=test", None)]


def test_tilda_submission_and_its_retries_are_one_lead(intake, intake_db):
    answers = [httpx.post(tilda_url(intake), data=TILDA_FORM) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 200]
    (lead,) = leads(intake_db)
    assert lead["source"] == "tilda"
    assert lead["external_id"] == "467251:8442970"
    assert lead["created_at"] == RECEIVED_AT
    assert lead["name"] == "Анна Смирнова"
    assert lead["phone_e164"] == "+79161234567"
    assert lead["phone_raw"] == "+7 (916) 123-45-67"
    assert lead["email"] == "anna@example.org"
    assert lead["comment"] == "Какой_зуб_болит: верхний левый"
    assert lead["form_name"] == "form563432381"
    assert lead["raw"] == TILDA_FORM
    kept = requests_kept(intake_db)
    assert [(k[1], k[3]) for k in kept] == [
        ("stored", "467251:8442970"),
        ("repeated", "467251:8442970"),
        ("repeated", "467251:8442970"),
    ]
    assert "Name=%D0%90%D0%BD%D0%BD%D0%B0" in kept[0][4].decode()  # the raw body as sent


def test_tilda_retry_racing_its_first_attempt_is_still_one_lead(intake, intake_db):
    answers: list[int] = []

    def send() -> None:
        answers.append(httpx.post(tilda_url(intake), data=TILDA_FORM).status_code)

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert answers == [200] * 6
    assert len(leads(intake_db)) == 1
    outcomes = sorted(k[1] for k in requests_kept(intake_db))
    assert outcomes == ["repeated"] * 5 + ["stored"]


def test_tilda_utm_tags_come_from_the_tildautm_cookie(intake, intake_db):
    # As Tilda's forms script writes it: encodeURIComponent of the query's utm pairs + '|||'.
    utm = "utm_source=yandex|||utm_medium=cpc|||utm_campaign=%d0%b7%d1%83%d0%b1%d1%8b|||"
    cookies = f"_ym_uid=1669; tildauid=1669.1; TILDAUTM={quote(utm, safe='')}; _ga=GA1.2"
    form = {**TILDA_FORM, "COOKIES": cookies, "utm_content": "banner_2"}

    assert httpx.post(tilda_url(intake), data=form).status_code == 200

    (lead,) = leads(intake_db)
    assert (lead["utm_source"], lead["utm_medium"], lead["utm_campaign"]) == (
        "yandex",
        "cpc",
        "зубы",
    )
    assert lead["utm_content"] == "banner_2"  # the form's hidden field
    assert lead["utm_term"] is None
    assert "COOKIES" not in lead["comment"]


def test_tilda_lower_case_field_names_are_read_too(intake, intake_db):
    form = {"name": "Пётр", "phone": "89161112233", "tranid": "1:2", "formid": "f1"}

    assert httpx.post(tilda_url(intake), data=form).status_code == 200

    (lead,) = leads(intake_db)
    assert (lead["name"], lead["phone_e164"], lead["comment"]) == ("Пётр", "+79161112233", None)


def test_tilda_submission_without_tranid_is_refused_with_a_reject(intake, intake_db):
    form = {k: v for k, v in TILDA_FORM.items() if k != "tranid"}

    response = httpx.post(tilda_url(intake), data=form)

    assert response.status_code == 422
    assert "tranid" in response.json()["error"]
    assert leads(intake_db) == []
    ((source, reason, raw, _),) = rejects(intake_db)
    assert (source, reason) == ("tilda", "tranid: missing record id")
    assert json.loads(raw)["Phone"] == "+7 (916) 123-45-67"
    assert requests_kept(intake_db)[0][1:3] == ("rejected", 422)


# -- the JSON webhook -------------------------------------------------------------------------
def test_webhook_lead_goes_through_the_normaliser(intake, intake_db):
    response = post_site(intake, SITE_LEAD)

    assert response.status_code == 200
    assert response.json() == {"status": "stored", "id": "site-000017"}
    (lead,) = leads(intake_db)
    assert lead["source"] == "site_form"
    assert lead["external_id"] == "site-000017"
    assert lead["created_at"] == RECEIVED_AT
    assert lead["phone_e164"] == "+79037654321"
    assert lead["doctor_id"] == "doc-0002"
    assert lead["doctor_name_raw"] == "Иванова Мария"
    assert lead["requested_start"].isoformat() == "2026-11-28T07:00:00+00:00"  # Moscow time
    assert lead["requested_end"] - lead["requested_start"] == timedelta(minutes=30)
    assert (lead["utm_source"], lead["utm_medium"], lead["utm_campaign"]) == (
        "google",
        "cpc",
        "implant_nov",
    )
    assert lead["referrer_host"] == "google.com"
    assert lead["landing_url"] == SITE_LEAD["landing_url"]
    assert lead["form_name"] == "Запись к врачу"


def test_webhook_takes_an_ident_ticket_as_it_is_and_dedups_by_its_id(intake, intake_db):
    ticket = {
        "Id": 2129,
        "DateAndTime": "2026-11-26T11:00:00+03:00",
        "ClientSurname": "Петрова",
        "ClientName": "Ольга",
        "ClientPatronymic": "Ивановна",
        "ClientPhone": "+7 916 000-11-22",
        "UtmSource": "vk",
        "DoctorName": "Петров",
    }

    first = post_site(intake, ticket)
    again = post_site(intake, ticket)

    assert (first.json()["status"], again.json()["status"]) == ("stored", "repeated")
    (lead,) = leads(intake_db)
    assert lead["external_id"] == "2129"
    assert lead["name"] == "Петрова Ольга Ивановна"
    assert lead["created_at"].isoformat() == "2026-11-26T08:00:00+00:00"
    assert (lead["utm_source"], lead["doctor_id"]) == ("vk", "doc-0001")


def test_webhook_refuses_bad_bodies_with_4xx_and_a_reject_row(intake, intake_db):
    bad_json = post_site(intake, b'{"id": "x1", "name": ')
    not_object = post_site(intake, ["id", "x2"])
    no_id = post_site(intake, {"name": "Без номера", "phone": "+79160000000"})
    bad_time = post_site(intake, {"id": "x3", "created_at": "вчера"})
    not_json = httpx.post(
        f"{intake.url}/webhook/site_form",
        data={"id": "x4"},
        headers={"Authorization": f"Bearer {SITE_SECRET}"},
    )

    assert [r.status_code for r in (bad_json, not_object, no_id, bad_time, not_json)] == [
        400,
        422,
        422,
        422,
        415,
    ]
    assert leads(intake_db) == []
    reasons = [reason for _, reason, _, _ in rejects(intake_db)]
    assert reasons[0].startswith("body is not JSON")
    assert reasons[1:4] == [
        "body must be a JSON object, got list",
        "id: missing record id",
        "created_at: unparseable time 'вчера'",
    ]
    assert reasons[4] == "the webhook takes application/json"
    assert [k[1:3] for k in requests_kept(intake_db)] == [
        ("rejected", 400),
        ("rejected", 422),
        ("rejected", 422),
        ("rejected", 422),
        ("rejected", 415),
    ]


def test_oversized_body_is_413_with_a_reject_row(intake, intake_db, base_settings, start_intake):
    small = start_intake(replace(base_settings, max_body_bytes=1024))
    huge = {**SITE_LEAD, "comment": "я" * 5000}

    response = post_site(small, huge)

    assert response.status_code == 413
    assert leads(intake_db) == []
    ((source, reason, raw, _),) = rejects(intake_db)
    assert source == "site_form"
    assert reason.endswith("is over the limit of 1024")
    assert json.loads(raw)["body_bytes"] > 1024
    ((_, outcome, status, _, body, _),) = requests_kept(intake_db)
    assert (outcome, status, len(body) <= 1024) == ("rejected", 413, True)


# -- refusals that keep nothing -------------------------------------------------------------
def test_the_app_mounts_the_route_each_push_kind_declares(base_settings):
    declared = set()
    for kind in LEAD_SOURCE_KINDS.values():
        if kind.push:
            connector = kind.connector_class()
            tail = "{name}/{secret}" if connector.secret_in == SECRET_IN_PATH else "{name}"
            declared.add(f"{connector.route}/{tail}")

    app = create_app(base_settings)

    mounted = {route.path for route in app.routes if "POST" in getattr(route, "methods", ())}
    assert (
        mounted == declared == {"/tilda/{name}/{secret}", "/uis/{name}/{secret}", "/webhook/{name}"}
    )


def test_wrong_or_missing_secrets_are_refused_and_nothing_is_kept(intake, intake_db):
    answers = [
        httpx.post(tilda_url(intake, secret="t1lda-5ecret-abd"), data=TILDA_FORM),
        httpx.post(tilda_url(intake, secret=SITE_SECRET), data=TILDA_FORM),  # another's secret
        post_site(intake, SITE_LEAD, secret=None),
        post_site(intake, SITE_LEAD, secret="wrong"),
        post_site(intake, SITE_LEAD, secret=TILDA_SECRET),
        httpx.post(tilda_url(intake, source="site_form", secret=SITE_SECRET), data=TILDA_FORM),
        httpx.post(f"{intake.url}/webhook/nope", json=SITE_LEAD),
    ]

    assert [a.status_code for a in answers] == [403, 403, 401, 403, 403, 404, 404]
    assert leads(intake_db) == []
    assert rejects(intake_db) == []
    assert requests_kept(intake_db) == []


def test_a_source_over_its_rate_is_told_to_wait(intake_db, base_settings, start_intake):
    limited = start_intake(replace(base_settings, burst=2, rate_per_second=0.01))

    answers = [post_site(limited, {**SITE_LEAD, "id": f"r{n}"}).status_code for n in range(3)]
    other = httpx.post(tilda_url(limited), data=TILDA_FORM)  # its own bucket

    assert answers == [200, 200, 429]
    assert other.status_code == 200
    assert sorted(lead["external_id"] for lead in leads(intake_db)) == [
        "467251:8442970",
        "r0",
        "r1",
    ]


def test_logs_carry_no_personal_data_or_secrets(intake, intake_db, caplog):
    with caplog.at_level(logging.DEBUG):
        httpx.post(tilda_url(intake), data=TILDA_FORM)
        httpx.post(tilda_url(intake, secret="wrong-secret"), data=TILDA_FORM)
        post_site(intake, SITE_LEAD)
        post_site(intake, {"id": "x", "created_at": "Олег 8 903 765-43-21"})

    # Everything the server side logged (the test's own HTTP client logs its URLs).
    server_side = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    text = "\n".join(f"{r.name} {r.getMessage()}" for r in server_side)
    assert "tilda (tilda): 200 stored" in text
    assert "tilda (tilda): 403, wrong secret" in text
    for secret_or_personal in (
        TILDA_SECRET,
        SITE_SECRET,
        "wrong-secret",
        "Анна",
        "916",
        "anna@",
        "Олег",
        "765",
        "верхний",
    ):
        assert secret_or_personal not in text


# -- the database away ----------------------------------------------------------------------
def test_database_that_refuses_connections_is_503(intake_db, base_settings, start_intake):
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/ident?connect_timeout=2"
    away = start_intake(replace(base_settings, connect=lambda: psycopg.connect(closed)))

    answers = [
        httpx.post(tilda_url(away), data=TILDA_FORM),
        httpx.post(tilda_url(away), data={"test": "test"}),
        post_site(away, SITE_LEAD),
        httpx.get(
            f"{away.url}/GetTickets",
            headers={"IDENT-Integration-Key": TICKETS_KEY},
            params={
                "dateTimeFrom": "2026-11-26T00:00:00+03:00",
                "dateTimeTo": "2026-11-27T00:00:00+03:00",
            },
        ),
        httpx.get(f"{away.url}/health"),
    ]

    assert [a.status_code for a in answers] == [503] * 5
    assert answers[0].headers["retry-after"] == "30"
    assert leads(intake_db) == [] and requests_kept(intake_db) == []


def test_database_going_away_and_back(intake_db, base_settings, start_intake, fresh_db_url):
    with psycopg.connect(fresh_db_url) as conn:
        apply_migrations(conn)
    database = conninfo_to_dict(fresh_db_url)["dbname"]
    admin_url = make_conninfo(fresh_db_url, dbname="postgres")
    app = start_intake(replace(base_settings, connect=lambda: psycopg.connect(fresh_db_url)))

    before = post_site(app, {**SITE_LEAD, "id": "before"})
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'alter database "{database}" with allow_connections false')
        admin.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity where datname = %s",
            (database,),
        )
        during = post_site(app, {**SITE_LEAD, "id": "during"})
        admin.execute(f'alter database "{database}" with allow_connections true')
    after = post_site(app, {**SITE_LEAD, "id": "during"})  # the sender's retry

    assert (before.status_code, during.status_code, after.status_code) == (200, 503, 200)
    with psycopg.connect(fresh_db_url) as conn:
        stored = conn.execute(
            "select external_id from integration.leads order by lead_id"
        ).fetchall()
        kept = conn.execute(
            "select external_id, outcome from integration.intake_requests order by request_id"
        ).fetchall()
    assert stored == [("before",), ("during",)]
    assert kept == [("before", "stored"), ("during", "stored")]


def test_idle_connections_dead_after_a_restart_are_replaced_without_503(
    intake_db, base_settings, start_intake, fresh_db_url
):
    """After a server restart every pooled connection is dead, but the database is up: the
    next requests are stored, none answered 503."""
    with psycopg.connect(fresh_db_url) as conn:
        apply_migrations(conn)
    database = conninfo_to_dict(fresh_db_url)["dbname"]
    admin_url = make_conninfo(fresh_db_url, dbname="postgres")
    app = start_intake(
        replace(
            base_settings,
            connect=lambda: psycopg.connect(fresh_db_url),
            burst=1000,
            rate_per_second=1000,
        )
    )
    sent = []

    def pooled_connections() -> int:
        with psycopg.connect(admin_url) as admin:
            return admin.execute(
                "select count(*) from pg_stat_activity where datname = %s", (database,)
            ).fetchone()[0]

    def several_pooled() -> bool:
        ids = [f"burst-{len(sent) + n}" for n in range(8)]
        sent.extend(ids)
        with ThreadPoolExecutor(len(ids)) as senders:
            answers = list(senders.map(lambda id_: post_site(app, {**SITE_LEAD, "id": id_}), ids))
        assert [a.status_code for a in answers] == [200] * len(ids)
        return pooled_connections() >= 3

    wait_for(
        "the pool to hold several connections",
        several_pooled,
        deadline=time.monotonic() + 30,
        poll=0.1,
    )
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity where datname = %s",
            (database,),
        )
    wait_for(
        "the pooled connections to end",
        lambda: pooled_connections() == 0,
        deadline=time.monotonic() + 10,
        poll=0.05,
    )

    after = [post_site(app, {**SITE_LEAD, "id": f"after-{n}"}) for n in range(3)]

    assert [a.status_code for a in after] == [200] * 3
    with psycopg.connect(fresh_db_url) as conn:
        stored = conn.execute("select external_id from integration.leads").fetchall()
    assert sorted(id_ for (id_,) in stored) == sorted([*sent, "after-0", "after-1", "after-2"])


# -- GetTickets -----------------------------------------------------------------------------
def test_get_tickets_serves_the_pushed_leads_to_the_right_key_only(intake, intake_db):
    assert httpx.post(tilda_url(intake), data=TILDA_FORM).status_code == 200
    assert post_site(intake, SITE_LEAD).status_code == 200
    url = f"{intake.url}/GetTickets"
    period = {
        "dateTimeFrom": "2026-11-26T00:00:00+03:00",
        "dateTimeTo": "2026-11-27T00:00:00+03:00",
    }

    found = httpx.get(url, params=period, headers={"IDENT-Integration-Key": TICKETS_KEY})
    wrong = httpx.get(url, params=period, headers={"IDENT-Integration-Key": "tickets-key-124"})
    missing = httpx.get(url, params=period)
    page_2 = httpx.get(
        url,
        params={**period, "limit": 1, "offset": 1},
        headers={"IDENT-Integration-Key": TICKETS_KEY},
    )
    past_end = httpx.get(
        url, params={**period, "offset": 2}, headers={"IDENT-Integration-Key": TICKETS_KEY}
    )
    day_before = httpx.get(
        url,
        params={"dateTimeFrom": "2026-11-25T00:00:00", "dateTimeTo": "2026-11-26T00:00:00"},
        headers={"IDENT-Integration-Key": TICKETS_KEY},
    )

    assert (wrong.status_code, wrong.text) == (403, "Invalid IDENT-Integration-Key")
    assert missing.status_code == 401
    assert found.status_code == 200
    tilda_ticket, site_ticket = found.json()
    assert isinstance(tilda_ticket["Id"], int)
    assert tilda_ticket["DateAndTime"] == "2026-11-26T12:30:00+03:00"
    assert tilda_ticket["ClientFullName"] == "Анна Смирнова"
    assert tilda_ticket["ClientPhone"] == "+79161234567"
    assert "PlanStart" not in tilda_ticket and "DoctorId" not in tilda_ticket
    assert site_ticket["UtmCampaign"] == "implant_nov"
    assert site_ticket["HttpReferer"] == SITE_LEAD["referrer"]
    assert site_ticket["PlanStart"] == "2026-11-28T10:00:00+03:00"
    assert site_ticket["PlanEnd"] == "2026-11-28T10:30:00+03:00"
    assert site_ticket["DoctorName"] == "Иванова Мария Сергеевна"
    assert page_2.json() == [site_ticket]
    assert past_end.json() == []
    assert day_before.json() == []


def test_get_tickets_refuses_a_bad_query(intake):
    answer = httpx.get(
        f"{intake.url}/GetTickets",
        params={"dateTimeFrom": "вчера", "dateTimeTo": "2026-11-27T00:00:00"},
        headers={"IDENT-Integration-Key": TICKETS_KEY},
    )

    assert (answer.status_code, answer.text) == (
        400,
        "Bad request: dateTimeFrom is not an ISO 8601 time",
    )


@pytest.mark.parametrize("unencoded_plus", [True, False])
def test_get_tickets_reads_an_offset_sent_unencoded(intake, intake_db, unencoded_plus):
    assert httpx.post(tilda_url(intake), data=TILDA_FORM).status_code == 200
    start, end = "2026-11-26T12:00:00+03:00", "2026-11-26T13:00:00+03:00"
    if unencoded_plus:
        query = f"dateTimeFrom={start}&dateTimeTo={end}"  # '+' arrives as a space
    else:
        query = f"dateTimeFrom={quote(start)}&dateTimeTo={quote(end)}"

    answer = httpx.get(
        f"{intake.url}/GetTickets?{query}", headers={"IDENT-Integration-Key": TICKETS_KEY}
    )

    assert [t["ClientFullName"] for t in answer.json()] == ["Анна Смирнова"]
