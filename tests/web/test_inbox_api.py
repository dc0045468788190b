"""The inbox through a real Airflow api-server: login, listing, actions, forgery checks."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

INBOX = "/inbox"


def _leads(session: requests.Session, server, **params) -> list[dict]:
    response = session.get(server.url(f"{INBOX}/api/leads"), params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["leads"]


def _status(conn, lead_id: int) -> tuple:
    return conn.execute(
        "select status, taken_by, closed_by, close_comment from integration.leads"
        " where lead_id = %s",
        (lead_id,),
    ).fetchone()


def test_the_plugin_adds_the_app_and_a_navigation_link(airflow_web):
    plugins = airflow_web.bearer_session().get(airflow_web.url("/api/v2/plugins"), timeout=30)
    inbox = next(p for p in plugins.json()["plugins"] if p["name"] == "ident_inbox")
    assert inbox["fastapi_apps"][0]["url_prefix"] == INBOX
    view = inbox["external_views"][0]
    assert (view["name"], view["href"], view["destination"]) == ("Заявки", "/inbox/", "nav")
    icon = requests.get(airflow_web.url(view["icon"]), timeout=30)
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg")


def test_anonymous_visitors_get_nothing(airflow_web, inbox_conn, add_lead):
    lead_id = add_lead(name="Секретная Пациентка", phone="+7 916 000-11-22")
    anonymous = requests.Session()
    listing = anonymous.get(airflow_web.url(f"{INBOX}/api/leads"), timeout=30)
    assert listing.status_code == 401
    take = anonymous.post(airflow_web.url(f"{INBOX}/api/leads/{lead_id}/take"), json={}, timeout=30)
    assert take.status_code == 401
    page = anonymous.get(airflow_web.url(f"{INBOX}/?branch=msk"), allow_redirects=False, timeout=30)
    assert page.status_code == 303
    login = urlsplit(page.headers["location"])
    assert login.path == "/auth/login"
    assert parse_qs(login.query)["next"] == ["/inbox/?branch=msk"]
    for response in (listing, take, page):
        assert "Секретная" not in response.text and "916" not in response.text
    assert _status(inbox_conn, lead_id)[0] == "new"


def test_a_forged_or_expired_login_cookie_is_refused(airflow_web, inbox_conn, add_lead):
    add_lead(name="Секретная Пациентка")
    forged = requests.Session()
    forged.cookies.set("_token", "not-a-jwt", domain="127.0.0.1", path="/")
    listing = forged.get(airflow_web.url(f"{INBOX}/api/leads"), timeout=30)
    assert listing.status_code in (401, 403) and "Секретная" not in listing.text
    page = forged.get(airflow_web.url(f"{INBOX}/"), allow_redirects=False, timeout=30)
    assert page.status_code == 303 and page.headers["location"].startswith("/auth/login")


def test_the_page_opens_for_a_logged_in_user(airflow_web, inbox_conn):
    session = airflow_web.cookie_session("anna")
    page = session.get(airflow_web.url(f"{INBOX}/"), timeout=30)
    assert page.status_code == 200
    assert '<html lang="ru">' in page.text
    assert "Вы вошли как <strong>anna</strong>" in page.text
    assert 'data-refresh-seconds="3"' in page.text
    assert "Москва, Тверская" in page.text and "НаПоправку" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'self'" in page.headers["content-security-policy"]
    token = airflow_web.csrf_token_in(page.text)
    assert re.fullmatch(r"[0-9a-f]{64}", token)
    listing = session.get(airflow_web.url(f"{INBOX}/api/leads"), timeout=30)
    assert listing.json()["csrf_token"] == token  # the page renews it with every list
    script = session.get(airflow_web.url(f"{INBOX}/static/inbox.js"), timeout=30)
    assert script.status_code == 200 and "Notification" in script.text


def test_listing_shows_open_leads_newest_first(airflow_web, inbox_conn, add_lead):
    older = add_lead(
        minutes_ago=7,
        source="site_main",
        doctor_id="doc-2",
        utm_source="yandex",
        utm_campaign="braces",
        comment="Перезвоните вечером",
    )
    newer = add_lead(minutes_ago=1, source="uis", branch_id="ekb")
    add_lead(
        minutes_ago=3,
        status="spam",
        taken_by="anna",
        taken_at="now()",
        closed_by="anna",
        closed_at="now()",
    )
    body = airflow_web.bearer_session().get(airflow_web.url(f"{INBOX}/api/leads"), timeout=30)
    data = body.json()
    assert (data["user"], data["refresh_seconds"], data["total"]) == ("admin", 3, 2)
    assert [lead["lead_id"] for lead in data["leads"]] == [newer, older]
    lead = data["leads"][1]
    assert lead["source_label"] == "Сайт «main»"
    assert lead["campaign"] == "yandex / braces"
    assert lead["doctor_name"] == "Иванова Мария Сергеевна"
    assert lead["branch_name"] == "Москва, Тверская"
    assert lead["phone_e164"] == "+79161234567"
    assert lead["comment"] == "Перезвоните вечером"
    assert 7 * 60 - 10 <= lead["waiting_seconds"] <= 7 * 60 + 10


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"branch": "ekb"}, ["ekb"]),
        ({"source": "uis"}, ["uis"]),
        ({"q": "8 (916) 777-88-99"}, ["uis"]),
        ({"q": "+7916777"}, ["uis"]),
        ({"q": "777-88"}, ["uis"]),
        ({"q": "8 343"}, ["ekb"]),
        ({"q": "Кузнецов"}, ["ekb"]),
        ({"branch": "msk", "source": "napopravku"}, []),
    ],
)
def test_filters_and_search(airflow_web, inbox_conn, add_lead, params, expected):
    add_lead(source="uis", phone="+7 916 777 88 99", name="Орлова Анна")
    add_lead(source="napopravku", branch_id="ekb", phone="8 343 210-00-00", name="Кузнецов Пётр")
    found = _leads(airflow_web.bearer_session(), airflow_web, **params)
    labels = {"uis": "uis", "napopravku": "ekb"}
    assert [labels[lead["source"]] for lead in found] == expected


def test_take_close_and_spam(airflow_web, inbox_conn, add_lead):
    first, second, third = add_lead(), add_lead(), add_lead()
    anna, admin = airflow_web.bearer_session("anna"), airflow_web.bearer_session("admin")

    def post(session, lead_id, action, body=None):
        url = airflow_web.url(f"{INBOX}/api/leads/{lead_id}/{action}")
        return session.post(url, json=body or {}, timeout=30)

    taken = post(anna, first, "take")
    assert taken.status_code == 200 and taken.json()["taken_by"] == "anna"
    assert post(anna, first, "take").status_code == 200  # a double click changes nothing
    refused = post(admin, first, "take")
    assert refused.status_code == 409
    assert refused.json()["detail"] == "Заявка уже в работе у anna"
    assert refused.json()["lead"]["taken_by"] == "anna"
    listed = {lead["lead_id"]: lead for lead in _leads(admin, airflow_web)}
    assert (listed[first]["status"], listed[first]["taken_by"]) == ("in_progress", "anna")

    closed = post(anna, first, "close", {"comment": "Записана на 3 декабря"})
    assert closed.status_code == 200 and closed.json()["status"] == "done"
    assert _status(inbox_conn, first) == ("done", "anna", "anna", "Записана на 3 декабря")
    again = post(admin, first, "close")
    assert again.status_code == 409 and again.json()["detail"] == "Заявка уже обработана (anna)"

    assert post(admin, second, "spam", {"comment": "дубль"}).status_code == 200
    assert _status(inbox_conn, second) == ("spam", "admin", "admin", "дубль")
    assert post(anna, second, "take").json()["detail"].startswith("Заявка уже отмечена как спам")

    assert [lead["lead_id"] for lead in _leads(admin, airflow_web)] == [third]
    assert post(admin, 10**9, "take").status_code == 404
    assert post(admin, third, "close", {"comment": "x" * 1001}).status_code == 422


def test_two_admins_racing_for_the_same_leads_one_gets_each(airflow_web, inbox_conn, add_lead):
    lead_ids = [add_lead() for _ in range(8)]
    sessions = {user: airflow_web.bearer_session(user) for user in ("anna", "admin")}

    def take(job):
        user, lead_id = job
        url = airflow_web.url(f"{INBOX}/api/leads/{lead_id}/take")
        response = sessions[user].post(url, json={}, timeout=30)
        return lead_id, user, response.status_code, response.json()

    jobs = [(user, lead_id) for lead_id in lead_ids for user in ("anna", "admin")]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(take, jobs))
    for lead_id in lead_ids:
        attempts = [r for r in results if r[0] == lead_id]
        winners = [r for r in attempts if r[2] == 200]
        losers = [r for r in attempts if r[2] == 409]
        assert len(winners) == 1 and len(losers) == 1, attempts
        winner = winners[0][1]
        assert losers[0][3]["detail"] == f"Заявка уже в работе у {winner}"
        assert _status(inbox_conn, lead_id)[1] == winner


class TestCrossSiteRequests:
    """Only the inbox page itself can act with the login cookie; forged requests cannot."""

    @pytest.fixture
    def anna(self, airflow_web):
        session = airflow_web.cookie_session("anna")
        token = airflow_web.csrf_token_in(
            session.get(airflow_web.url(f"{INBOX}/"), timeout=30).text
        )
        return session, token

    def _take(self, airflow_web, session, lead_id, **kwargs):
        url = airflow_web.url(f"{INBOX}/api/leads/{lead_id}/take")
        return session.post(url, timeout=30, **kwargs)

    def test_a_form_posted_from_another_site_is_refused(self, airflow_web, anna, add_lead):
        session, _ = anna
        lead_id = add_lead()
        response = self._take(
            airflow_web,
            session,
            lead_id,
            data={"comment": "x"},
            headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        )
        assert response.status_code == 403
        assert _leads(airflow_web.bearer_session(), airflow_web)[0]["status"] == "new"

    @pytest.mark.parametrize(
        "forged_headers",
        [
            {"Origin": "https://evil.example"},
            {"Sec-Fetch-Site": "cross-site"},
            {"Sec-Fetch-Site": "same-site"},
            {"X-CSRF-Token": ""},
            {"X-CSRF-Token": "0" * 64},
        ],
        ids=["foreign-origin", "cross-site", "sibling-subdomain", "no-token", "wrong-token"],
    )
    def test_json_without_the_pages_proof_is_refused(
        self, airflow_web, anna, add_lead, forged_headers
    ):
        session, token = anna
        lead_id = add_lead()
        headers = {**airflow_web.page_headers(token), **forged_headers}
        response = self._take(airflow_web, session, lead_id, json={}, headers=headers)
        assert response.status_code == 403, response.text
        assert response.json()["detail"].startswith("Запрос отклонён")

    def test_another_users_token_does_not_fit(self, airflow_web, anna, add_lead):
        session, _ = anna
        admin_page = airflow_web.cookie_session("admin").get(airflow_web.url(f"{INBOX}/"))
        headers = airflow_web.page_headers(airflow_web.csrf_token_in(admin_page.text))
        response = self._take(airflow_web, session, add_lead(), json={}, headers=headers)
        assert response.status_code == 403

    def test_the_pages_own_request_is_accepted(self, airflow_web, anna, add_lead):
        session, token = anna
        headers = airflow_web.page_headers(token)
        response = self._take(airflow_web, session, add_lead(), json={}, headers=headers)
        assert response.status_code == 200 and response.json()["taken_by"] == "anna"

    def test_a_bearer_token_needs_no_page_token_but_json(self, airflow_web, add_lead):
        session = airflow_web.bearer_session("anna")
        form = self._take(airflow_web, session, add_lead(), data={"a": "b"})
        assert form.status_code == 415
        assert self._take(airflow_web, session, add_lead(), json={}).status_code == 200


def test_a_call_carries_the_number_dialled_and_where_it_stands(airflow_web, inbox_conn, add_lead):
    """A UIS call notification's lead (source kind uis_notification, a call_session_id) has
    ``call``; a site request through the same source and any other lead have none."""
    call = add_lead(
        minutes_ago=2,
        source="uis_calls",
        phone="+7 916 555-01-01",
        raw='{"call_session_id": 7, "virtual_phone_number": "8 (495) 120-00-01"}',
    )
    unknown_number = add_lead(
        source="uis_calls",
        phone="+7 916 555-01-02",
        raw='{"call_session_id": 8, "virtual_phone_number": "74959990000"}',
    )
    request = add_lead(
        source="uis_calls",
        phone="+7 916 555-01-03",
        raw='{"communication_id": 9, "virtual_phone_number": "74951200001"}',
    )
    other = add_lead(source="tilda", phone="+7 916 555-01-04", raw='{"call_session_id": 10}')
    rows = {row["lead_id"]: row for row in _leads(airflow_web.bearer_session(), airflow_web)}
    assert rows[call]["call"] == {
        "dialled_number": "+74951200001",
        "label": "ПроДокторов: профиль клиники",
        "channel": "aggregator",
        "channel_label": "Агрегаторы",
    }
    assert rows[call]["sources"][0]["call"] == rows[call]["call"]
    assert 0 <= rows[call]["call_seconds"] < 60  # since it reached us, not since it began
    assert rows[unknown_number]["call"] == {
        "dialled_number": "+74959990000",
        "label": None,
        "channel": None,
        "channel_label": None,
    }
    for lead_id in (request, other):
        assert rows[lead_id]["call"] is None and rows[lead_id]["call_seconds"] is None
