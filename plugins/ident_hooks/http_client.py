"""The one HTTP client every connector uses, built on the hook of the service's
connection type (``ident_hooks.hooks``: an Airflow ``HttpHook``).

The Airflow connection holds the service's base URL in ``host`` (scheme and an
optional path, e.g. ``https://rta-api.napopravku.ru/api/v1/``) and its token or
key in ``password``. Connection extras are sent as HTTP headers by ``HttpHook``,
so keep them for headers only. ``login`` is ignored: every service here takes
its secret the way an :class:`AuthStyle` says, never as HTTP basic auth.

Policy kept in this one place:

* every request has an explicit timeout;
* network errors, timeouts, 5xx and 429 are retried with exponential backoff,
  honouring ``Retry-After`` (seconds or HTTP-date); a wait longer than
  ``max_backoff_seconds`` is not slept through but reported at once, so the
  Airflow task retries later instead of holding a worker slot;
* any other non-2xx answer (401, 403, 404, 422, ...) fails at once with the
  service's own message: repeating a rejected request cannot help;
* a connector may declare which replies mean that the partner switched the integration
  off (``switched_off``, e.g. ``leads.sources.ident_tickets.plain_503`` for IDENT
  partners): such a reply fails at once as :class:`ServiceSwitchedOff`, judged here with
  the response in hand;
* the secret never reaches a log line or an exception message.

``HttpHook.run`` is not used because its own warning on connection errors logs
the full URL, which for a query-string key holds the secret.
The session still comes from the hook's ``get_conn`` (base URL, proxies, TLS
options, extra headers, keep-alive adapter).
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus

import requests
import tenacity

from ident_hooks.auth import AuthStyle
from ident_hooks.errors import PermanentFailure, TransientFailure

if TYPE_CHECKING:
    from airflow.providers.http.hooks.http import HttpHook

log = logging.getLogger(__name__)

REDACTED = "***"
SERVICE_MESSAGE_LIMIT = 500
TRANSIENT_NETWORK_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


class ServiceError(Exception):
    """A call to an external service failed; the message is safe to log."""

    def __init__(
        self,
        message: str,
        *,
        method: str,
        endpoint: str,
        status: int | None = None,
        service_message: str = "",
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.method = method
        self.endpoint = endpoint
        self.status = status
        self.service_message = service_message
        self.attempts = attempts


class ServiceRejected(ServiceError, PermanentFailure):
    """The service refused the request (4xx other than 429, or a reply its kind declares a
    refusal): permanent, not retried."""


class ServiceSwitchedOff(ServiceRejected):
    """The partner switched the integration off on its side: nothing we resend can help
    until someone there switches it back on. ``diagnosis`` names it for the status page."""

    diagnosis = "switched_off"


class ServiceUnavailable(ServiceError, TransientFailure):
    """Network error, timeout, 5xx or 429 that outlasted every attempt."""


class ServiceMisconfigured(ServiceError, PermanentFailure):
    """The Airflow connection lacks what the service needs (e.g. no token)."""


class _TransientFailure(Exception):
    """One attempt failed in a way that another attempt may fix (network, 5xx, 429)."""

    def __init__(
        self, problem: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(problem)
        self.problem = problem
        self.status = status
        self.retry_after = retry_after


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, moment.timestamp() - current)


class ServiceClient:
    """Requests to one external service through one Airflow connection.

    ``hook_class`` is the hook of the service's connection type
    (``ident_hooks.hooks.HOOKS[<conn_type>]``, e.g. ``NapopravkuHook``); without one the
    generic :class:`ident_hooks.hooks.ServiceHook` reads the connection, whatever its type
    (a connection made as ``http`` works too). ``timeout`` is ``requests``' (connect, read)
    seconds. ``sleep`` is injectable
    so tests can observe back-off without waiting. ``switched_off`` tells from a non-2xx
    reply that the partner switched the integration off (the kind's rule, from the
    registry); such a reply is neither retried nor left for the task to retry.
    """

    def __init__(
        self,
        conn_id: str,
        *,
        auth: AuthStyle,
        timeout: float | tuple[float, float] = (5, 30),
        max_attempts: int = 5,
        backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        switched_off: Callable[[requests.Response], bool] | None = None,
        hook_class: type[HttpHook] | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.conn_id = conn_id
        self.auth = auth
        self.hook_class = hook_class
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self._sleep = sleep
        self.switched_off = switched_off
        self._hook: HttpHook | None = None
        self._session: requests.Session | None = None
        self._secret: str | None = None

    # -- connection ------------------------------------------------------
    def _connect(self) -> requests.Session:
        if self._session is None:
            # Imported here so that importing this module costs nothing at DAG parse time.
            from ident_hooks.hooks import ServiceHook

            self._hook = (self.hook_class or ServiceHook)(http_conn_id=self.conn_id)
            connection = self._hook.get_connection(self.conn_id)
            self._secret = connection.password or ""
            # HttpHook's own `timeout` extra (seconds), so an operator can tune it per service.
            if connection.extra_dejson.get("timeout") is not None:
                self.timeout = float(connection.extra_dejson["timeout"])
            if self.auth.needs_secret and not self._secret:
                raise ServiceMisconfigured(
                    f"connection {self.conn_id!r} has no password (token) set",
                    method="-",
                    endpoint="-",
                )
            session = self._hook.get_conn(extra_options={"check_response": False})
            # The secret travels as the AuthStyle says, never as HTTP basic auth.
            session.auth = self.auth.bind(self._secret)
            session.headers.update(self.auth.headers)
            self._session = session
        return self._session

    @property
    def hook(self) -> HttpHook:
        """The Airflow hook this client's session comes from."""
        self._connect()
        return self._hook

    @property
    def secret(self) -> str:
        """The connection's password, for APIs that take it in the body."""
        self._connect()
        return self._secret or ""

    @property
    def base_url(self) -> str:
        self._connect()
        return self._hook.base_url

    def redact(self, text: str) -> str:
        """``text`` with every spelling of the secret replaced by ``***``."""
        secret = self._secret
        if not secret or not text:
            return text
        for spelling in {secret, quote(secret, safe=""), quote_plus(secret)}:
            text = text.replace(spelling, REDACTED)
        return text

    # -- requests --------------------------------------------------------
    def request(
        self,
        method: str,
        endpoint: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Send one request, retrying transient failures; return only a 2xx response.

        ``endpoint`` is relative to the connection's base URL. ``data`` is a
        mapping sent as a form (``application/x-www-form-urlencoded``) or a
        pre-serialised body (set ``Content-Type`` in ``headers``); ``json`` is
        serialised by ``requests``. Raises :class:`ServiceRejected` or
        :class:`ServiceUnavailable`.
        """
        session = self._connect()
        method = method.upper()
        url = self._hook.url_from_endpoint(endpoint.lstrip("/"))
        query = dict(params or {})
        shown = self.redact(endpoint)

        def send_once() -> requests.Response:
            return self._send_once(
                session,
                method,
                url,
                shown,
                retrying.statistics.get("attempt_number", 1),
                params=query or None,
                json=json,
                data=data,
                headers=dict(headers or {}),
            )

        # Only a _TransientFailure is retried; a refusal or a long Retry-After ends at once.
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception_type(_TransientFailure),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            return retrying(send_once)
        except ServiceError as failure:
            failure.attempts = retrying.statistics.get("attempt_number", 1)
            raise
        except _TransientFailure as failure:
            last = failure
        # Raised outside the except block: no chained exception carries the URL (and a key).
        raise ServiceUnavailable(
            f"{method} {shown} failed after {self.max_attempts} attempts: {last.problem}",
            method=method,
            endpoint=shown,
            status=last.status,
            service_message=last.problem,
            attempts=self.max_attempts,
        )

    def _wait(self, state: tenacity.RetryCallState) -> float:
        """The service's ``Retry-After`` when it gave one, else exponential backoff."""
        failure = state.outcome.exception() if state.outcome else None
        if isinstance(failure, _TransientFailure) and failure.retry_after is not None:
            return failure.retry_after
        return min(self.backoff_seconds * 2 ** (state.attempt_number - 1), self.max_backoff_seconds)

    def _send_once(
        self,
        session: requests.Session,
        method: str,
        url: str,
        shown: str,
        attempt: int,
        **options: Any,
    ) -> requests.Response:
        """One attempt; ``shown`` is the redacted endpoint for messages."""
        started = time.monotonic()
        try:
            response = session.request(method, url, timeout=self.timeout, **options)
        except TRANSIENT_NETWORK_ERRORS as exc:
            log.warning(
                "%s %s failed on attempt %d/%d after %.2f s: %s",
                method,
                shown,
                attempt,
                self.max_attempts,
                time.monotonic() - started,
                type(exc).__name__,
            )
            # The exception text may hold the full URL (and a query-string key).
            raise _TransientFailure(self.redact(f"{type(exc).__name__}: {exc}")) from None
        except requests.RequestException as exc:
            # A malformed URL or similar: repeating it cannot help.
            raise ServiceMisconfigured(
                self.redact(f"{method} {shown} could not be sent: {exc}"),
                method=method,
                endpoint=shown,
            ) from None
        status = response.status_code
        log.info(
            "%s %s -> %d (attempt %d/%d, %d bytes sent, %d bytes received, %.2f s)",
            method,
            shown,
            status,
            attempt,
            self.max_attempts,
            len(response.request.body or b""),
            len(response.content),
            time.monotonic() - started,
        )
        if 200 <= status < 300:
            return response
        service_message = self._service_message(response)
        if self.switched_off is not None and self.switched_off(response):
            raise ServiceSwitchedOff(
                f"the partner behind connection {self.conn_id!r} has switched the integration "
                f"off on its side: {method} {shown} answered HTTP {status} "
                f"({service_message or 'no reason given'}) without Retry-After. Not retried: "
                "ask the partner to switch the integration back on with the key of this "
                "connection; the first run after that catches up on everything missed",
                method=method,
                endpoint=shown,
                status=status,
                service_message=service_message,
            )
        if status != 429 and status < 500:
            raise ServiceRejected(
                f"{method} {shown} rejected with HTTP {status}: {service_message}",
                method=method,
                endpoint=shown,
                status=status,
                service_message=service_message,
            )
        problem = f"HTTP {status}: {service_message}"
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if retry_after is not None and retry_after > self.max_backoff_seconds:
            # Sleeping through it would hold a worker slot; the task retries later instead.
            raise ServiceUnavailable(
                f"{method} {shown} failed with {problem}; the service asks to retry after "
                f"{retry_after:.0f} s, longer than the {self.max_backoff_seconds:.0f} s this "
                "client waits",
                method=method,
                endpoint=shown,
                status=status,
                service_message=service_message,
            )
        raise _TransientFailure(problem, status=status, retry_after=retry_after)

    def _service_message(self, response: requests.Response) -> str:
        """The service's own explanation, from common JSON error shapes or plain text."""
        text = response.text or response.reason or ""
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            error = body.get("error")
            nested = error if isinstance(error, dict) else {}
            # Yandex Direct: {"error": {"error_code", "error_string", "error_detail"}}.
            coded = nested.get("error_string") and " ".join(
                str(part)
                for part in (
                    f"error {nested.get('error_code')}:",
                    nested["error_string"],
                    nested.get("error_detail") or "",
                )
            )
            message = (
                coded
                or body.get("message")
                or body.get("detail")
                or nested.get("message")
                or nested.get("msg")
                or (error if isinstance(error, str) else None)
            )
            if message:
                details = body.get("errors")
                text = f"{message} {details}" if details else str(message)
        return self.redact(" ".join(str(text).split())[:SERVICE_MESSAGE_LIMIT])
