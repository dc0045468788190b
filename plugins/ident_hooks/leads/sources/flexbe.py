"""Flexbe landing pages: ``GET mod/api/?method=getLeads`` on the site's own domain.

The key travels as ``api_key`` in the query string (the client's auth style adds it).
Pages are walked with ``start``/``count`` until a short page. The period is sent as
``date_from``/``date_to`` (Unix seconds — the parameter names are uncertain, so the period
is also enforced on each lead's ``time``).
``data.leads`` may be an object keyed by lead id or a list. ``status`` 0 is an error
``error{code,msg}``: code 1 (limit exceeded) is retryable, others are not.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from ident_hooks.leads.normalise import (
    UTM_KEYS,
    DoctorMatcher,
    Lead,
    RejectedRecord,
    clean_text,
    make_lead,
    parse_unix_time,
    record_id,
)
from ident_hooks.leads.sources import (
    SourceError,
    SourceLimitReached,
    SourceSettings,
    read_json,
    unique_by,
)

ENDPOINT = "mod/api/"
DEFAULT_PAGE_SIZE = 100
LIMIT_EXCEEDED = 1
_CONTACT_FIELD_WORDS = ("name", "phone", "email", "имя", "телефон", "почта")


def _page(client: Any, params: dict[str, Any]) -> list[Any]:
    body = read_json(client.request("GET", ENDPOINT, params=params), "flexbe")
    if not isinstance(body, dict):
        raise SourceError("flexbe", f"unexpected reply {str(body)[:200]!r}")
    if body.get("status") != 1:
        error = body.get("error") or {}
        code, message = error.get("code"), error.get("msg", "")
        if code == LIMIT_EXCEEDED:
            raise SourceLimitReached("flexbe", f"limit exceeded ({code}): {message}", code=code)
        raise SourceError("flexbe", f"error {code}: {message}", code=code)
    leads = (body.get("data") or {}).get("leads") or []
    if isinstance(leads, dict):
        # Keyed by lead id: a lead that omits its own id still has the key.
        return [
            {"id": key, **lead} if isinstance(lead, dict) and "id" not in lead else lead
            for key, lead in leads.items()
        ]
    if isinstance(leads, list):
        return leads
    raise SourceError("flexbe", f"data.leads is neither object nor list: {str(leads)[:200]!r}")


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


def _pages(client: Any, period_from: datetime, period_to: datetime, settings: SourceSettings):
    count = settings.page_size or DEFAULT_PAGE_SIZE
    start = 0
    while True:
        page = _page(
            client,
            {
                "method": "getLeads",
                "start": start,
                "count": count,
                "date_from": int(period_from.timestamp()),
                "date_to": int(period_to.timestamp()),
            },
        )
        yield from page
        if len(page) < count:
            return
        start += count


def fetch(
    client: Any, period_from: datetime, period_to: datetime, *, settings: SourceSettings
) -> Iterator[dict[str, Any]]:
    """Leads of ``[period_from, period_to)``, every page walked, each id once."""
    period_start, period_end = period_from.timestamp(), period_to.timestamp()
    records = (
        lead
        for lead in _pages(client, period_from, period_to, settings)
        if _in_period(lead, period_start, period_end)
    )
    return unique_by(records, lambda lead: lead.get("id"))


def _section(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key)
    if value is None or value == [] or value == "":
        return {}  # PHP encodes an empty object as []
    if not isinstance(value, dict):
        raise RejectedRecord(f"{key}: expected an object, got {type(value).__name__}")
    return value


def _form_data_text(form_data: dict[str, Any]) -> str | None:
    """Form fields other than the contact ones, one "name: value" per line."""
    lines = []
    for field_id, entry in form_data.items():
        if not isinstance(entry, dict):
            continue
        label = clean_text(entry.get("name"), f"form_data.{field_id}.name") or str(field_id)
        value = clean_text(entry.get("value"), f"form_data.{field_id}.value")
        if value and not any(word in label.lower() for word in _CONTACT_FIELD_WORDS):
            lines.append(f"{label}: {value}")
    return "\n".join(lines) or None


def parse(raw: Any, *, settings: SourceSettings, matcher: DoctorMatcher) -> Lead:
    if not isinstance(raw, dict):
        raise RejectedRecord(f"record is not an object: {type(raw).__name__}")
    client, page, utm = _section(raw, "client"), _section(raw, "page"), _section(raw, "utm")
    form_data = _section(raw, "form_data")
    landing_url = clean_text(utm.get("url"), "utm.url") or clean_text(page.get("url"), "page.url")
    return make_lead(
        source=settings.source,
        external_id=record_id(raw.get("id")),
        created_at=parse_unix_time(raw.get("time"), "time"),
        raw=raw,
        name=clean_text(client.get("name"), "client.name"),
        phone=clean_text(client.get("phone"), "client.phone"),
        email=clean_text(client.get("email"), "client.email"),
        comment=clean_text(raw.get("note"), "note") or _form_data_text(form_data),
        form_name=clean_text(raw.get("form_name"), "form_name"),
        utm={key: clean_text(utm.get(key), f"utm.{key}") for key in UTM_KEYS},
        landing_url=landing_url,
    )
