"""Flexbe landing pages: ``POST mod/api/`` with ``method=getLeads`` on the site's own domain.

Where each fact comes from:

* Endpoint ``mod/api/`` on the site's domain, ``api_key`` and ``method`` as parameters, GET or
  POST, a JSON reply with the content in ``data`` — Flexbe's own API page
  (help.flexbe.com/api-documentation) and integrations.md "Flexbe".
* How the call is sent: **POST with every parameter, the key included, in a URL-encoded form
  body** (the registry's ``FLEXBE_API_KEY`` auth style adds ``api_key`` to the form). Both public
  clients POST: GitHub ``segakgd/flexbe_api_client`` sends exactly this form body
  (``src/Client/Core/HttpClient.php``: ``CURLOPT_POST`` with
  ``CURLOPT_POSTFIELDS => http_build_query(…)``; ``api_key`` and ``method`` added in
  ``src/Client/HttpService.php``), as does the Node example on Flexbe's API page
  (``request.post({form: {api_key, method}})``); the PyPI package ``flexbe`` 0.1.0
  (``flexbe/client.py``, ``Flexbe.request``) POSTs with the same parameters in the query
  string instead. We take the form body over the query so that the key never stands in a
  URL, where the site's and any proxy's access logs would keep it.
* A reply is an error when it has ``error{code,msg}``, whatever ``status`` says (the client
  ``segakgd/flexbe_api_client`` decides by ``error`` alone, ``src/Client/Response/Response.php``);
  ``status`` 0 without ``error`` is an error too. Codes 0 invalid key, 1 limit exceeded,
  2 unknown method (``src/Enum/ErrorCodeEnum.php``); code 1 is retryable, the others are not.
* ``status.code`` of a lead: 0 new, 1 in work, 2 done, 10 cancelled, 11 deleted
  (``src/Enum/LeadStatusEnum.php``; integrations.md "Corrections, December 2026 → Flexbe");
  a deleted lead can be restored there. 10 and 11 become ``source_state`` cancelled/deleted,
  anything else (also a missing or unknown code) an active lead: a lead is hidden only when
  the source clearly says so.
* Paging by ``start``/``count`` (``src/Dto/Request/LeadFilterRequest.php``). The server may cap
  the page size (reportedly at 1000 — integrations.md Corrections), so ``start`` advances by
  what came back, and the walk ends on an empty page or when ``start`` reaches the reply's
  ``data.total`` (when it gives one — assumed name, our simulator's) — never on a short page.
  A page holding nothing new (a server that ignores ``start``) stops the walk with a warning,
  keeping what came. The walk is the shared ``OffsetPaginator`` (``ident_hooks.leads.paging``).
* ``data.leads`` is an object keyed by lead id or a list; the period filter
  ``date_from``/``date_to`` (Unix seconds) has uncertain names, so the period is also enforced
  on each lead's ``time`` (integrations.md "Flexbe", low confidence).
* Click ids: ``utm.ym_client_id`` is Metrica's ClientID (integrations.md "Flexbe": the ``utm``
  object; ``segakgd/flexbe_api_client`` ``src/Dto/Response/UtmDto.php``, ``ymClientId``,
  a nullable string). Flexbe names no ``yclid``/``gclid`` field, so they come from the landing
  URL's query (``utm.url``, else ``page.url``) like UTM tags the ``utm`` object leaves empty.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime, tzinfo
from typing import Any

from ident_hooks.http_client import ServiceClient
from ident_hooks.leads.normalise import SOURCE_CANCELLED, SOURCE_DELETED, clean_text
from ident_hooks.leads.paging import OffsetPaginator, Page, Paging
from ident_hooks.leads.sources import (
    PullSource,
    SourceLimitReached,
    SourceRefused,
    SourceSettings,
    first,
    section,
    text,
    unix_time,
    utm_tags,
)
from ident_hooks.registry import FLEXBE_API_KEY

LIMIT_EXCEEDED = 1
STATUS_CANCELLED, STATUS_DELETED = 10, 11
_SOURCE_STATES = {STATUS_CANCELLED: SOURCE_CANCELLED, STATUS_DELETED: SOURCE_DELETED}
_CONTACT_FIELD_WORDS = ("name", "phone", "email", "имя", "телефон", "почта")


def _total(data: dict[str, Any]) -> int | None:
    total = data.get("total")
    if isinstance(total, bool):
        return None
    try:
        return int(total)
    except (TypeError, ValueError, OverflowError):
        return None


def _in_period(lead: Any, period_start: float, period_end: float) -> bool:
    """False only for a lead whose valid ``time`` lies outside the period; the rest go on to
    ``parse``, which rejects a missing or broken time with a reason."""
    if not isinstance(lead, dict):
        return True
    try:
        seconds = float(lead.get("time"))
    except (TypeError, ValueError):
        return True
    return period_start <= seconds < period_end


def source_state(raw: Mapping[str, Any], zone: tzinfo | None = None) -> str | None:
    """``cancelled``/``deleted`` for status codes 10/11, else None (active at Flexbe).

    ``status`` is ``{code, name}``; a bare code is accepted too.
    """
    status = raw.get("status")
    code = status.get("code") if isinstance(status, dict) else status
    if isinstance(code, bool):
        return None
    try:
        return _SOURCE_STATES.get(int(code))
    except (TypeError, ValueError, OverflowError):
        return None


def form_data_text(raw: Mapping[str, Any], zone: tzinfo | None = None) -> str | None:
    """Form fields other than the contact ones, one "name: value" per line."""
    lines = []
    for field_id, entry in section(raw, "form_data").items():
        if not isinstance(entry, dict):
            continue
        label = clean_text(entry.get("name"), f"form_data.{field_id}.name") or str(field_id)
        value = clean_text(entry.get("value"), f"form_data.{field_id}.value")
        if value and not any(word in label.lower() for word in _CONTACT_FIELD_WORDS):
            lines.append(f"{label}: {value}")
    return "\n".join(lines) or None


class FlexbeSource(PullSource):
    """Leads of ``getLeads`` on the landing's own domain (module notes)."""

    kind = "flexbe"
    auth = FLEXBE_API_KEY
    endpoint = "mod/api/"
    method = "POST"
    params_in = "data"  # a form body, so the key never stands in a URL
    # 1000: the reported server cap; a lower cap is followed by what came back.
    paging = Paging(
        OffsetPaginator,
        default_size=1000,
        param_names={"offset_param": "start", "limit_param": "count"},
    )
    record_key = "id"  # a lead without one (a broken record) is known by its whole content
    fields = {
        "created_at": unix_time("time"),
        "name": text("client.name"),
        "phone": text("client.phone"),
        "email": text("client.email"),
        "comment": first(text("note"), form_data_text),
        "form_name": text("form_name"),
        **utm_tags(lambda key: text(f"utm.{key}")),
        "landing_url": text("utm.url", "page.url"),
        "source_state": source_state,
        "ym_client_id": text("utm.ym_client_id"),
    }

    @classmethod
    def fetch(
        cls,
        client: ServiceClient,
        period_from: datetime,
        period_to: datetime,
        *,
        settings: SourceSettings,
    ) -> Iterator[dict[str, Any]]:
        """Leads of ``[period_from, period_to)``, every page walked, each id once; the period
        is enforced on each lead's ``time`` too (the filter's names are not certain)."""
        leads = super().fetch(client, period_from, period_to, settings=settings)
        period_start, period_end = period_from.timestamp(), period_to.timestamp()
        return (lead for lead in leads if _in_period(lead, period_start, period_end))

    @classmethod
    def period_params(
        cls, period_from: datetime, period_to: datetime, settings: SourceSettings
    ) -> dict[str, Any]:
        return {
            "method": "getLeads",
            "date_from": int(period_from.timestamp()),
            "date_to": int(period_to.timestamp()),
        }

    @classmethod
    def read_page(cls, client: ServiceClient, body: Any) -> Page:
        """The page's leads and the reply's total (when it gives one)."""
        if not isinstance(body, dict):
            raise cls.failure(client, SourceRefused, f"unexpected reply {str(body)[:200]!r}")
        cls._raise_for_error(client, body)
        data = body.get("data") or {}
        if not isinstance(data, dict):
            raise cls.failure(client, SourceRefused, f"data is not an object: {str(data)[:200]!r}")
        leads = data.get("leads") or []
        if isinstance(leads, dict):
            # Keyed by lead id: a lead that omits its own id still has the key.
            leads = [
                {"id": key, **lead} if isinstance(lead, dict) and "id" not in lead else lead
                for key, lead in leads.items()
            ]
        elif not isinstance(leads, list):
            raise cls.failure(
                client,
                SourceRefused,
                f"data.leads is neither object nor list: {str(leads)[:200]!r}",
            )
        return Page(leads, total=_total(data))

    @classmethod
    def _raise_for_error(cls, client: ServiceClient, body: dict[str, Any]) -> None:
        error = body.get("error")
        if not error and body.get("status") not in (0, "0"):
            return
        if not error:
            raise cls.failure(
                client, SourceRefused, f"status 0 without an error: {str(body)[:200]!r}"
            )
        if isinstance(error, dict):
            code, message = error.get("code"), error.get("msg", "")
        else:
            code, message = None, str(error)
        if code in (LIMIT_EXCEEDED, str(LIMIT_EXCEEDED)):
            raise cls.failure(
                client, SourceLimitReached, f"limit exceeded ({code}): {message}", code=code
            )
        raise cls.failure(client, SourceRefused, f"error {code}: {message}", code=code)
