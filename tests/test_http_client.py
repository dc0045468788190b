"""The shared HTTP client over real loopback HTTP: retries, Retry-After, errors, secrets."""

from __future__ import annotations

import email.utils
import json
import logging
import socket
import time
from urllib.parse import parse_qs

import pytest

from ident_dev.simulators.base import Fault, SimRequest, SimResponse, SimulatorServer
from ident_hooks.auth import AuthStyle
from ident_hooks.http_client import (
    ServiceClient,
    ServiceMisconfigured,
    ServiceRejected,
    ServiceUnavailable,
    parse_retry_after,
)
from ident_hooks.registry import (
    IDENT_INTEGRATION_KEY,
    NAPOPRAVKU_BEARER,
    PRODOCTOROV_TOKEN,
    SECRET_IN_BODY,
)

SECRET = "s3cr3t-token-value"
QUERY_KEY = AuthStyle(query_param="api_key")


class EchoService(SimulatorServer):
    """Answers under /api/v1/ with what it received; Bearer auth like НаПоправку."""

    name = "echo"

    def __init__(self) -> None:
        super().__init__()
        self.route("GET", "/api/v1/echo", self._echo)
        self.route("POST", "/api/v1/echo", self._echo)
        self.route("GET", "/api/v1/open", self._echo)
        self.route("POST", "/api/v1/open", self._echo)
        self.route("POST", "/api/v1/invalid", self._invalid)

    def authorize(self, request: SimRequest) -> SimResponse | None:
        if request.path.endswith("/open"):
            return None
        if request.headers.get("authorization") != f"Bearer {SECRET}":
            return SimResponse(401, {"message": f"Unauthenticated: token {SECRET} is unknown"})
        return None

    def _echo(self, request: SimRequest) -> SimResponse:
        form = request.headers.get("content-type") == "application/x-www-form-urlencoded"
        body = parse_qs(request.body.decode("ascii")) if form else request.json()
        return SimResponse(200, {"result": {"query": request.query, "body": body}})

    def _invalid(self, request: SimRequest) -> SimResponse:
        return SimResponse(
            422, {"message": "The given data was invalid.", "errors": {"slots": ["required"]}}
        )


@pytest.fixture
def service(monkeypatch: pytest.MonkeyPatch):
    server = EchoService().start()
    monkeypatch.setenv(
        "AIRFLOW_CONN_ECHO_API",
        json.dumps({"conn_type": "http", "host": f"{server.base_url}/api/v1/", "password": SECRET}),
    )
    yield server
    server.stop()


class Sleeps(list):
    """Records the waits instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client(auth=NAPOPRAVKU_BEARER, **options) -> ServiceClient:
    options.setdefault("sleep", Sleeps())
    return ServiceClient("echo_api", auth=auth, **options)


def assert_secret_hidden(text: str) -> None:
    assert SECRET not in text


def test_a_request_goes_to_the_base_path_with_the_auth_header_and_no_basic_auth(service):
    response = client().request("POST", "echo", params={"a": "1"}, json={"x": [1, 2]})
    assert response.json() == {"result": {"query": {"a": ["1"]}, "body": {"x": [1, 2]}}}
    (seen,) = service.received()
    assert seen.path == "/api/v1/echo"
    assert seen.headers["authorization"] == f"Bearer {SECRET}"
    assert seen.headers["accept"] == "application/json"


def test_the_client_is_built_on_the_hook_it_is_given_else_the_generic_one(service):
    from ident_hooks.hooks import HOOKS, ServiceHook

    typed = client(hook_class=HOOKS["napopravku"])
    response = typed.request("POST", "echo", json={"x": 1})
    assert response.json()["result"]["body"] == {"x": 1}
    assert type(typed.hook) is HOOKS["napopravku"]
    assert typed.hook.conn_type == "napopravku"
    assert type(client().hook) is ServiceHook


@pytest.mark.parametrize(
    ("auth", "header", "value"),
    [
        (PRODOCTOROV_TOKEN, "authorization", f"Token {SECRET}"),
        (IDENT_INTEGRATION_KEY, "ident-integration-key", SECRET),
    ],
)
def test_header_auth_styles(service, auth, header, value):
    with pytest.raises(ServiceRejected):  # the echo service wants Bearer
        client(auth).request("GET", "echo")
    assert service.received()[-1].headers[header] == value


def test_query_and_body_styles_keep_the_secret_out_of_headers(service):
    client(QUERY_KEY).request("GET", "open", params={"method": "getLeads"})
    seen = service.received()[-1]
    assert seen.query == {"method": ["getLeads"], "api_key": [SECRET]}
    assert "authorization" not in seen.headers
    body_client = client(SECRET_IN_BODY)
    body_client.request("GET", "open")
    assert body_client.secret == SECRET
    assert all(SECRET not in value for value in service.received()[-1].headers.values())


def test_the_form_style_adds_the_secret_to_the_form_body_and_nowhere_else(service):
    form_key = AuthStyle(form_param="api_key")
    reply = client(form_key).request("POST", "open", data={"method": "getLeads", "n": 2})
    assert reply.json()["result"] == {
        "query": {},
        "body": {"method": ["getLeads"], "n": ["2"], "api_key": [SECRET]},
    }
    seen = service.received()[-1]
    assert seen.headers["content-type"] == "application/x-www-form-urlencoded"
    assert int(seen.headers["content-length"]) == len(seen.body)
    assert all(SECRET not in value for value in seen.headers.values())
    client(form_key).request("POST", "open")  # no fields of its own: the key alone
    assert service.received()[-1].body.decode() == f"api_key={SECRET}"
    with pytest.raises(TypeError, match="not a form"):
        client(form_key).request("POST", "open", json={"method": "getLeads"})


def test_server_errors_are_retried_with_growing_backoff(service):
    service.inject(Fault(status=503, times=2))
    sleeps = Sleeps()
    response = client(sleep=sleeps, backoff_seconds=0.5).request("GET", "echo")
    assert response.status_code == 200
    assert len(service.received()) == 3
    assert sleeps == [0.5, 1.0]


def test_429_waits_as_long_as_retry_after_says(service):
    service.inject(Fault(status=429, retry_after="7", times=1))
    later = email.utils.formatdate(time.time() + 20, usegmt=True)
    service.inject(Fault(status=503, retry_after=later, times=1))
    sleeps = Sleeps()
    client(sleep=sleeps).request("GET", "echo")
    assert sleeps[0] == 7.0
    assert 15 <= sleeps[1] <= 20
    assert len(service.received()) == 3


def test_a_retry_after_beyond_the_limit_fails_now_instead_of_sleeping(service):
    service.inject(Fault(status=429, retry_after="3600", times=1))
    sleeps = Sleeps()
    with pytest.raises(ServiceUnavailable, match="retry after 3600 s") as failure:
        client(sleep=sleeps, max_backoff_seconds=60).request("GET", "echo")
    assert failure.value.status == 429
    assert sleeps == [] and len(service.received()) == 1


def test_401_fails_at_once_with_the_service_message_and_no_secret(service, caplog):
    caplog.set_level(logging.DEBUG)
    service.inject(Fault(status=401, body={"message": f"token {SECRET} revoked"}, times=1))
    sleeps = Sleeps()
    with pytest.raises(ServiceRejected) as failure:
        client(sleep=sleeps).request("GET", "echo")
    assert failure.value.status == 401
    assert "revoked" in str(failure.value) and "***" in str(failure.value)
    assert len(service.received()) == 1 and sleeps == []
    assert_secret_hidden(str(failure.value))
    assert_secret_hidden(failure.value.service_message)
    assert_secret_hidden(caplog.text)
    assert "GET echo -> 401 (attempt 1/5" in caplog.text


def test_422_carries_the_message_and_errors(service):
    with pytest.raises(ServiceRejected) as failure:
        client().request("POST", "invalid", json={})
    assert failure.value.status == 422
    assert failure.value.service_message == ("The given data was invalid. {'slots': ['required']}")
    assert len(service.received()) == 1


def test_5xx_that_never_ends_becomes_service_unavailable(service):
    service.inject(Fault(status=502, body="bad gateway", times=10))
    with pytest.raises(ServiceUnavailable, match="after 3 attempts: HTTP 502: bad gateway") as e:
        client(max_attempts=3).request("GET", "echo")
    assert e.value.status == 502 and e.value.attempts == 3
    assert len(service.received()) == 3


def test_a_timeout_is_retried_then_reported(service, caplog):
    service.inject(Fault(status=0, delay_seconds=0.6, times=2))  # slow, then would answer
    sleeps = Sleeps()
    with pytest.raises(ServiceUnavailable, match="ReadTimeout") as failure:
        client(sleep=sleeps, timeout=(1, 0.2), max_attempts=2).request("GET", "echo")
    assert failure.value.status is None and failure.value.attempts == 2
    assert len(service.received()) == 2 and sleeps == [1.0]
    assert_secret_hidden(caplog.text)


def test_a_network_error_never_shows_a_query_string_key(monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv(
        "AIRFLOW_CONN_ECHO_API",
        json.dumps({"conn_type": "http", "host": f"http://127.0.0.1:{port}", "password": SECRET}),
    )
    with pytest.raises(ServiceUnavailable) as failure:
        client(QUERY_KEY, max_attempts=2).request("GET", "mod/api/", params={"x": "1"})
    assert "ConnectionError" in str(failure.value)
    assert_secret_hidden(str(failure.value))
    assert_secret_hidden(caplog.text)
    assert failure.value.__cause__ is None and failure.value.__context__ is None


def test_a_connection_without_a_token_is_a_configuration_error(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_ECHO_API", json.dumps({"conn_type": "http", "host": "http://127.0.0.1:9"})
    )
    with pytest.raises(ServiceMisconfigured, match="has no password"):
        client().request("GET", "echo")


def test_connection_extras_are_sent_as_headers(service, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_ECHO_API",
        json.dumps(
            {
                "conn_type": "http",
                "host": f"{service.base_url}/api/v1",
                "password": SECRET,
                "extra": {"X-Clinic": "north"},
            }
        ),
    )
    client().request("GET", "echo")
    assert service.received()[-1].headers["x-clinic"] == "north"
    assert service.received()[-1].path == "/api/v1/echo"


def test_retry_after_parsing():
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after(date, now=1_000_000) == 30.0
    assert parse_retry_after(date, now=2_000_000) == 0.0
