"""The inbox's forgery checks and settings as plain functions (the server tests use them)."""

from __future__ import annotations

import pytest

from ident_hooks.inbox.security import csrf_problem, csrf_token

SECRET = "server-secret"


def _problem(headers: dict[str, str], user: str = "anna", hosts=("clinic.example:8080",)):
    return csrf_problem(secret_key=SECRET, username=user, headers=headers, trusted_hosts=hosts)


def _page_request(**overrides: str) -> dict[str, str]:
    headers = {
        "content-type": "application/json",
        "origin": "https://clinic.example:8080",
        "sec-fetch-site": "same-origin",
        "x-csrf-token": csrf_token(SECRET, "anna"),
    }
    headers.update(overrides)
    return {name: value for name, value in headers.items() if value is not None}


def test_the_pages_own_request_passes():
    assert _problem(_page_request()) is None
    assert _problem(_page_request(**{"content-type": "application/json; charset=utf-8"})) is None


def test_older_browsers_without_fetch_metadata_still_need_the_token():
    assert _problem(_page_request(**{"sec-fetch-site": None, "origin": None})) is None
    no_token = _page_request(**{"sec-fetch-site": None, "origin": None, "x-csrf-token": None})
    assert "X-CSRF-Token" in _problem(no_token)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"content-type": "application/x-www-form-urlencoded"}, "application/json"),
        ({"content-type": "text/plain"}, "application/json"),
        ({"sec-fetch-site": "cross-site"}, "cross-site"),
        ({"origin": "https://evil.example"}, "another origin"),
        ({"origin": "https://clinic.example:9999"}, "another origin"),
        ({"origin": "null"}, "another origin"),
        ({"x-csrf-token": csrf_token(SECRET, "admin")}, "X-CSRF-Token"),
        ({"x-csrf-token": csrf_token("another-secret", "anna")}, "X-CSRF-Token"),
    ],
)
def test_forged_requests_are_refused_with_a_reason(overrides, reason):
    assert reason in _problem(_page_request(**overrides))


def test_a_proxy_host_counts_as_this_site():
    behind_proxy = _page_request(origin="https://inbox.clinic.ru")
    assert _problem(behind_proxy) is not None
    assert _problem(behind_proxy, hosts=("10.0.0.5:8080", "inbox.clinic.ru")) is None


def test_refresh_interval_defaults_to_ten_seconds_and_has_a_floor(monkeypatch):
    from ident_hooks.inbox.app import refresh_seconds

    monkeypatch.delenv("AIRFLOW__IDENT_INBOX__REFRESH_SECONDS", raising=False)
    assert refresh_seconds() == 10
    monkeypatch.setenv("AIRFLOW__IDENT_INBOX__REFRESH_SECONDS", "30")
    assert refresh_seconds() == 30
    monkeypatch.setenv("AIRFLOW__IDENT_INBOX__REFRESH_SECONDS", "0")
    assert refresh_seconds() == 2
