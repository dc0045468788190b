"""IDENT ``GetTickets``: leads from 32top and clinic websites (``site_<name>``).

``GET GetTickets?dateTimeFrom&dateTimeTo&limit&offset`` relative to the connection's base
URL, ``IDENT-Integration-Key`` header (set by the client's auth style); the reply is a JSON
array of tickets, paged with ``offset += limit`` until a page shorter than ``limit``.
32top sends only the doctor's surname and the start time; sites may send ``DoctorId``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from ident_hooks.leads.normalise import (
    DoctorMatcher,
    Lead,
    RejectedRecord,
    clean_text,
    make_lead,
    parse_time,
    record_id,
)
from ident_hooks.leads.sources import SourceError, SourceSettings, read_json, unique_by

ENDPOINT = "GetTickets"
DEFAULT_PAGE_SIZE = 500


def _pages(client: Any, period_from: datetime, period_to: datetime, settings: SourceSettings):
    limit = settings.page_size or DEFAULT_PAGE_SIZE
    offset = 0
    while True:
        params = {
            "dateTimeFrom": period_from.isoformat(timespec="seconds"),
            "dateTimeTo": period_to.isoformat(timespec="seconds"),
            "limit": limit,
            "offset": offset,
        }
        page = read_json(client.request("GET", ENDPOINT, params=params), settings.source)
        if not isinstance(page, list):
            raise SourceError(settings.source, f"expected a JSON array, got {str(page)[:200]!r}")
        yield from page
        if len(page) < limit:
            return
        offset += limit


def fetch(
    client: Any, period_from: datetime, period_to: datetime, *, settings: SourceSettings
) -> Iterator[dict[str, Any]]:
    """Tickets of ``[period_from, period_to)``, every page walked, each id once."""
    return unique_by(
        _pages(client, period_from, period_to, settings), lambda ticket: ticket.get("Id")
    )


def parse(raw: Any, *, settings: SourceSettings, matcher: DoctorMatcher) -> Lead:
    if not isinstance(raw, dict):
        raise RejectedRecord(f"record is not an object: {type(raw).__name__}")
    tz = settings.timezone
    doctor_name = clean_text(raw.get("DoctorName"), "DoctorName")
    doctor_id = clean_text(raw.get("DoctorId"), "DoctorId")
    return make_lead(
        source=settings.source,
        external_id=record_id(raw.get("Id"), "Id"),
        created_at=parse_time(raw.get("DateAndTime"), tz, "DateAndTime"),
        raw=raw,
        name=clean_text(raw.get("ClientFullName"), "ClientFullName"),
        phone=clean_text(raw.get("ClientPhone"), "ClientPhone"),
        email=clean_text(raw.get("ClientEmail"), "ClientEmail"),
        comment=clean_text(raw.get("Comment"), "Comment"),
        form_name=clean_text(raw.get("FormName"), "FormName"),
        doctor_id=matcher.match(doctor_id, doctor_name),
        doctor_name_raw=doctor_name,
        requested_start=parse_time(raw.get("PlanStart"), tz, "PlanStart", required=False),
        requested_end=parse_time(raw.get("PlanEnd"), tz, "PlanEnd", required=False),
        utm={
            "utm_source": clean_text(raw.get("UtmSource"), "UtmSource"),
            "utm_medium": clean_text(raw.get("UtmMedium"), "UtmMedium"),
            "utm_campaign": clean_text(raw.get("UtmCampaign"), "UtmCampaign"),
            "utm_term": clean_text(raw.get("UtmTerm"), "UtmTerm"),
            "utm_content": clean_text(raw.get("UtmContent"), "UtmContent"),
        },
        referrer=clean_text(raw.get("HttpReferer"), "HttpReferer"),
    )
