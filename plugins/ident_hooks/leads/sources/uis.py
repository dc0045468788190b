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
* JSON-RPC errors come with HTTP 200 and are raised as ``SourceError`` named by mnemonic.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from ident_hooks.leads.normalise import (
    UTM_KEYS,
    DoctorMatcher,
    Lead,
    RejectedRecord,
    clean_text,
    make_lead,
    parse_time,
    record_id,
)
from ident_hooks.leads.paging import OffsetPaginator, Page, field_key, walk
from ident_hooks.leads.sources import (
    SourceLimitReached,
    SourceRefused,
    SourceSettings,
    SourceTemporarilyFailed,
    read_json,
    unique_by,
)

ENDPOINT = "v2.0"
METHOD = "get.offline_messages_report"
DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 10000
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
RECORD_KEY = field_key("id")
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


def _call(client: Any, params: dict[str, Any]) -> dict[str, Any]:
    payload = {"jsonrpc": "2.0", "id": next(_request_ids), "method": METHOD, "params": params}
    response = client.request(
        "POST",
        ENDPOINT,
        data=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
        headers={"Content-Type": JSON_CONTENT_TYPE},
    )
    body = read_json(response, "uis")
    if not isinstance(body, dict):
        raise SourceRefused("uis", f"unexpected reply {str(body)[:200]!r}")
    error = body.get("error")
    if error:
        data = error.get("data") or {}
        mnemonic = data.get("mnemonic") or "unknown_error"
        detail = f"{mnemonic} ({error.get('code')}): {error.get('message', '')}"
        if data.get("field"):
            detail += f" [field {data['field']}]"
        if mnemonic in LIMIT_MNEMONICS:
            raise SourceLimitReached("uis", detail, code=mnemonic)
        if mnemonic in TEMPORARY_MNEMONICS:
            raise SourceTemporarilyFailed("uis", detail, code=mnemonic)
        raise SourceRefused("uis", detail, code=mnemonic)
    result = body.get("result")
    if not isinstance(result, dict) or not isinstance(result.get("data"), list):
        raise SourceRefused("uis", f"reply without result.data: {str(body)[:200]!r}")
    return result


def _page(
    client: Any,
    chunk_from: datetime,
    chunk_to: datetime,
    settings: SourceSettings,
    paging: dict[str, int],
) -> Page:
    """One page of ``[chunk_from, chunk_till]`` with ``metadata.total_items`` when given."""
    result = _call(
        client,
        {
            "access_token": client.secret,
            "date_from": _account_time(chunk_from, settings).isoformat(sep=" "),
            "date_till": _account_time(chunk_to, settings).isoformat(sep=" "),
            **paging,
            "fields": list(FIELDS),
        },
    )
    total = (result.get("metadata") or {}).get("total_items")
    return Page(result["data"], total=total if isinstance(total, int) else None)


def _page_size(settings: SourceSettings) -> int:
    return min(settings.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def _halves(chunk_from: datetime, chunk_to: datetime) -> tuple[datetime, datetime, datetime]:
    """The chunk cut in two at a whole second (date_till is inclusive: the halves share it)."""
    half = timedelta(seconds=int((chunk_to - chunk_from).total_seconds()) // 2)
    return chunk_from, chunk_from + half, chunk_to


def _period(chunk_from: datetime, chunk_to: datetime, settings: SourceSettings) -> str:
    return f"{_account_time(chunk_from, settings)} and {_account_time(chunk_to, settings)}"


def _pages(client: Any, chunk_from: datetime, chunk_to: datetime, settings: SourceSettings):
    def page(paging: dict[str, int]) -> Page:
        if paging["offset"] > MAX_OFFSET:
            raise SourceTemporarilyFailed(
                "uis",
                f"the site requests between {_period(chunk_from, chunk_to, settings)} grew past"
                f" the Data API's largest offset ({MAX_OFFSET}) while they were read; the next"
                " run reads the period in narrower parts",
            )
        return _page(client, chunk_from, chunk_to, settings, paging)

    paginator = OffsetPaginator(settings.source, limit=_page_size(settings), key=RECORD_KEY)
    first = page(paginator.params())
    if first.total is not None and first.total > MAX_OFFSET:
        # Not every record can be reached by offset: read the two halves instead.
        start, middle, end = _halves(chunk_from, chunk_to)
        if middle == start:
            raise SourceRefused(
                "uis",
                f"{first.total} site requests between {_period(chunk_from, chunk_to, settings)}:"
                f" more than the Data API's largest offset ({MAX_OFFSET}) lets one period be"
                " read, and the period cannot be narrowed further",
            )
        yield from _pages(client, start, middle, settings)
        yield from _pages(client, middle, end, settings)
        return
    yield from paginator.update(first)
    yield from walk(paginator, page)


def fetch(
    client: Any, period_from: datetime, period_to: datetime, *, settings: SourceSettings
) -> Iterator[dict[str, Any]]:
    """Site requests of the period, walking every page of every ≤ 3-month chunk."""
    # Split in account time, where UIS measures its 3 months. date_till is inclusive, so
    # adjacent chunks share a second; ids are yielded once.
    local_from = period_from.astimezone(settings.timezone)
    local_to = period_to.astimezone(settings.timezone)
    records = (
        record
        for chunk_from, chunk_to in split_period(local_from, local_to)
        for record in _pages(client, chunk_from, chunk_to, settings)
    )
    return unique_by(records, RECORD_KEY)


def parse(raw: Any, *, settings: SourceSettings, matcher: DoctorMatcher) -> Lead:
    if not isinstance(raw, dict):
        raise RejectedRecord(f"record is not an object: {type(raw).__name__}")
    utm = {key: clean_text(raw.get(key), key) for key in UTM_KEYS}
    landing_url = clean_text(raw.get("entrance_page"), "entrance_page") or clean_text(
        raw.get("communication_page_url"), "communication_page_url"
    )
    referrer = clean_text(raw.get("referrer"), "referrer") or clean_text(
        raw.get("referrer_domain"), "referrer_domain"
    )
    return make_lead(
        source=settings.source,
        external_id=record_id(raw.get("id")),
        created_at=parse_time(raw.get("date_time"), settings.timezone, "date_time"),
        raw=raw,
        name=clean_text(raw.get("visitor_name"), "visitor_name"),
        phone=clean_text(raw.get("visitor_phone_number"), "visitor_phone_number"),
        email=clean_text(raw.get("visitor_email"), "visitor_email"),
        comment=clean_text(raw.get("text"), "text"),
        form_name=clean_text(raw.get("form_name"), "form_name"),
        utm=utm,
        referrer=referrer,
        landing_url=landing_url,
    )
