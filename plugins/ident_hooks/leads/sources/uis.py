"""UIS (CoMagic) Data API: site requests from ``get.offline_messages_report``.

Where each fact comes from (the vendor's Data API documentation, as published in its
white-label copies ``novofon/novofon.github.io`` and ``callgear/callgear.github.io``, files
``data_api/index.html`` and ``data_api/report/get_offline_messages_report/index.html``;
integrations.md "UIS" and "Corrections, December 2026 → UIS Data API"):

* JSON-RPC 2.0 over ``POST v2.0`` (connection host ``https://dataapi.uiscom.ru``), always with
  ``Content-Type: application/json; charset=UTF-8`` (``data_api/index.html``, "Соглашения");
  the access token travels in ``params.access_token``.
* Periods are the account's local time ``YYYY-MM-DD hh:mm:ss`` (``settings.timezone``), at most
  3 months per request (``date_interval_limit_reached``), so longer periods are split.
* Pages: ``limit`` at most 10 000 and ``offset`` at most 100 000 ("Постраничный вывод"), walked
  until ``metadata.total_items`` by the shared ``OffsetPaginator`` (``ident_hooks.leads.paging``:
  also an empty page ends the walk, and one with nothing new stops it with a warning). A
  period holding more than 100 000 requests is halved (by time, repeatedly) until each part
  holds no more, so every offset stays within the limit; a part shorter than two seconds that
  still holds more fails with a clear error, and a period that grows past the limit while it
  is read fails retryably (the next run measures and halves it). Halving needs no sort order
  (``date_time`` is not sortable in this report).
* ``fields``: only names that both documentation copies list in the report's reply table
  ("Параметры ответа" / "Response parameters"); an unknown one is ``unexpected_parameters``
  (-32602) and would fail every pull. So names that only a client asks for are left out:
  ``utm_referrer`` and ``source``, which the PyPI SDK ``comagic-data-api-sdk`` 0.0.3.4 requests
  by default (``comagic/models.py``, ``OfflineMessage.fields()``), and the three names only
  the newer CallGear copy lists. ``FIELDS`` asks for what a lead keeps: the contact, the
  text and form, the UTM tags ``utm_*`` (the landing URL's query fills any that are empty),
  the referrer (``referrer``, else ``referrer_domain``), the landing page (``entrance_page``,
  else ``communication_page_url``) and the visit's identifiers, all stored in ``raw``.
  Both copies list ``ym_client_id`` (Metrica's ClientID), ``gclid`` and ``yclid`` in that
  table, as strings (and in the reply's JSON example); they become the lead's click ids
  (``yclid``/``gclid`` from the landing page's query when the report leaves them empty).
* JSON-RPC errors come with HTTP 200 and are raised as ``SourceError`` named by mnemonic.
* The lead: the contact, the text and form, ``date_time`` in account time; the referrer is
  ``referrer``, else ``referrer_domain``; the landing page ``entrance_page``, else
  ``communication_page_url`` (whose query fills UTM tags the report leaves empty).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from ident_hooks.http_client import ServiceClient
from ident_hooks.leads.paging import OffsetPaginator, Page, Paging, walk
from ident_hooks.leads.sources import (
    PullSource,
    SourceLimitReached,
    SourceRefused,
    SourceSettings,
    SourceTemporarilyFailed,
    click_ids,
    text,
    time,
    unique_by,
    utm_tags,
)
from ident_hooks.registry import SECRET_IN_BODY

MAX_OFFSET = 100_000
MAX_PERIOD_MONTHS = 3
JSON_CONTENT_TYPE = "application/json; charset=UTF-8"
FIELDS = (
    "id",
    "date_time",
    "text",
    "status",
    "form_type",
    "form_name",
    "visitor_name",
    "visitor_phone_number",
    "visitor_email",
    "visitor_id",
    "visitor_session_id",
    "site_id",
    "site_domain_name",
    "communication_page_url",
    "entrance_page",
    "referrer",
    "referrer_domain",
    "search_engine",
    "search_query",
    "channel",
    "campaign_id",
    "campaign_name",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "gclid",
    "yclid",
    "ym_client_id",
    "tags",
)
LIMIT_MNEMONICS = {"limit_exceeded"}
TEMPORARY_MNEMONICS = {"internal_error"}
_request_ids = itertools.count(1)


def add_months(moment: datetime, months: int) -> datetime:
    """The same wall-clock time ``months`` later, clamped to the month's last day."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    next_month_first = datetime(year + month // 12, month % 12 + 1, 1)
    last_day = (next_month_first - timedelta(days=1)).day
    return moment.replace(year=year, month=month, day=min(moment.day, last_day))


def split_period(period_from: datetime, period_to: datetime) -> list[tuple[datetime, datetime]]:
    """Consecutive chunks of at most 3 calendar months covering ``[period_from, period_to)``."""
    chunks = []
    start = period_from
    while start < period_to:
        end = min(add_months(start, MAX_PERIOD_MONTHS), period_to)
        chunks.append((start, end))
        start = end
    return chunks


def _account_time(moment: datetime, settings: SourceSettings) -> datetime:
    return moment.astimezone(settings.timezone).replace(tzinfo=None, microsecond=0)


def _halves(chunk_from: datetime, chunk_to: datetime) -> tuple[datetime, datetime, datetime]:
    """The chunk cut in two at a whole second (date_till is inclusive: the halves share it)."""
    half = timedelta(seconds=int((chunk_to - chunk_from).total_seconds()) // 2)
    return chunk_from, chunk_from + half, chunk_to


def _period(chunk_from: datetime, chunk_to: datetime, settings: SourceSettings) -> str:
    return f"{_account_time(chunk_from, settings)} and {_account_time(chunk_to, settings)}"


class UisSource(PullSource):
    """Site requests of ``get.offline_messages_report``, over JSON-RPC (module notes)."""

    kind = "uis"
    auth = SECRET_IN_BODY  # params.access_token, filled in by each request
    endpoint = "v2.0"
    method = "POST"
    rpc_method = "get.offline_messages_report"
    paging = Paging(OffsetPaginator, default_size=1000, max_size=10000)
    record_key = "id"
    fields = {
        "created_at": time("date_time"),
        "name": text("visitor_name"),
        "phone": text("visitor_phone_number"),
        "email": text("visitor_email"),
        "comment": text("text"),
        "form_name": text("form_name"),
        **utm_tags(text),
        "referrer": text("referrer", "referrer_domain"),
        "landing_url": text("entrance_page", "communication_page_url"),
        **click_ids(text),
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
        """Site requests of the period, walking every page of every ≤ 3-month chunk."""
        # Split in account time, where UIS measures its 3 months. date_till is inclusive, so
        # adjacent chunks share a second; ids are yielded once.
        local_from = period_from.astimezone(settings.timezone)
        local_to = period_to.astimezone(settings.timezone)
        records = (
            record
            for chunk_from, chunk_to in split_period(local_from, local_to)
            for record in cls._chunk(client, chunk_from, chunk_to, settings)
        )
        return unique_by(records, cls.identity)

    @classmethod
    def _chunk(
        cls,
        client: ServiceClient,
        chunk_from: datetime,
        chunk_to: datetime,
        settings: SourceSettings,
    ) -> Iterator[dict[str, Any]]:
        period = {
            "access_token": client.secret,
            "date_from": _account_time(chunk_from, settings).isoformat(sep=" "),
            "date_till": _account_time(chunk_to, settings).isoformat(sep=" "),
        }

        def page(paging: dict[str, int]) -> Page:
            if paging["offset"] > MAX_OFFSET:
                raise cls.failure(
                    client,
                    SourceTemporarilyFailed,
                    f"the site requests between {_period(chunk_from, chunk_to, settings)} grew"
                    f" past the Data API's largest offset ({MAX_OFFSET}) while they were read;"
                    " the next run reads the period in narrower parts",
                )
            return cls.page(client, {**period, **paging, "fields": list(FIELDS)})

        paginator = cls.paging.start(
            settings.source, key=cls.identity, page_size=settings.page_size
        )
        first = page(paginator.params())
        if first.total is not None and first.total > MAX_OFFSET:
            # Not every record can be reached by offset: read the two halves instead.
            start, middle, end = _halves(chunk_from, chunk_to)
            if middle == start:
                raise cls.failure(
                    client,
                    SourceRefused,
                    f"{first.total} site requests between"
                    f" {_period(chunk_from, chunk_to, settings)}: more than the Data API's"
                    f" largest offset ({MAX_OFFSET}) lets one period be read, and the period"
                    " cannot be narrowed further",
                )
            yield from cls._chunk(client, start, middle, settings)
            yield from cls._chunk(client, middle, end, settings)
            return
        yield from paginator.update(first)
        yield from walk(paginator, page)

    @classmethod
    def page(cls, client: ServiceClient, params: dict[str, Any]) -> Page:
        """One report call: its page of ``[date_from, date_till]`` and ``total_items``."""
        return cls.read_page(client, cls.call(client, cls.rpc_method, params))

    @classmethod
    def call(
        cls,
        client: ServiceClient,
        rpc_method: str,
        params: dict[str, Any],
        *,
        request_id: int | str | None = None,
    ) -> Any:
        """One JSON-RPC call of any Data API method: the decoded reply, not yet judged
        (:meth:`raise_for_error`). ``request_id`` defaults to the next number."""
        payload = {
            "jsonrpc": "2.0",
            "id": next(_request_ids) if request_id is None else request_id,
            "method": rpc_method,
            "params": params,
        }
        response = client.request(
            cls.method,
            cls.endpoint,
            data=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
            headers={"Content-Type": JSON_CONTENT_TYPE},
        )
        return cls.read_json(client, response)

    @classmethod
    def raise_for_error(cls, client: ServiceClient, body: Any) -> dict[str, Any]:
        """The reply, if it is one; a JSON-RPC error (HTTP 200) raised by its mnemonic: a
        limit or an internal error is retryable, anything else (a wrong token, a refused
        parameter) is refused."""
        if not isinstance(body, dict):
            raise cls.failure(client, SourceRefused, f"unexpected reply {str(body)[:200]!r}")
        error = body.get("error")
        if error:
            data = error.get("data") or {}
            mnemonic = data.get("mnemonic") or "unknown_error"
            detail = f"{mnemonic} ({error.get('code')}): {error.get('message', '')}"
            if data.get("field"):
                detail += f" [field {data['field']}]"
            if mnemonic in LIMIT_MNEMONICS:
                raise cls.failure(client, SourceLimitReached, detail, code=mnemonic)
            if mnemonic in TEMPORARY_MNEMONICS:
                raise cls.failure(client, SourceTemporarilyFailed, detail, code=mnemonic)
            raise cls.failure(client, SourceRefused, detail, code=mnemonic)
        return body

    @classmethod
    def read_page(cls, client: ServiceClient, body: Any) -> Page:
        result = cls.raise_for_error(client, body).get("result")
        if not isinstance(result, dict) or not isinstance(result.get("data"), list):
            raise cls.failure(
                client, SourceRefused, f"reply without result.data: {str(body)[:200]!r}"
            )
        total = (result.get("metadata") or {}).get("total_items")
        return Page(result["data"], total=total if isinstance(total, int) else None)
