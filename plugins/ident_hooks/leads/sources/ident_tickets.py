"""IDENT ``GetTickets``: leads from 32top and clinic websites (``site_<name>``).

``GET GetTickets?dateTimeFrom&dateTimeTo&limit&offset`` relative to the connection's base
URL, ``IDENT-Integration-Key`` header (set by the client's auth style); the reply is a JSON
array of tickets (integrations.md, "The IDENT HTTP integration protocol"). Where the rest
comes from:

* **Paging that a clamp cannot cut short.** Partners clamp ``limit`` silently — the
  Python site receiver ``ArayikK/Kleomed_web`` ``server/leads.py`` serves at most 1000
  whatever is asked (``limit = max(1, min(limit, 1000))``) — so a page shorter than the
  ``limit`` asked for does not prove the end (integrations.md, Corrections). The offset
  moves on by what actually came back and only an empty page ends the period; receivers
  answer an empty array there, not an error (``brearey/smmikod``
  ``.cursor/rules/ident-rules.mdc``: «при итерационной загрузке (limit/offset) возвращать
  пустой массив»). That costs one more request per pull.
* **A server that ignores ``offset``** would send the same page forever. A page that
  brings no ticket not seen before (by ``Id``; a ticket without one by its content) ends
  the paging with a warning in the task log; what came so far is kept. Partial overlaps
  are normal (a receiver that sorts newest first, like the Bitrix module
  ``Kontur\\Ident`` — ``Exchange::actionGetTickets`` orders by ``DATE_AND_TIME DESC`` —
  shifts its pages when a lead arrives meanwhile), so each id is passed on once. These
  rules are the shared ``OffsetPaginator``'s (``ident_hooks.leads.paging``).
* **The patient's name** is ``ClientFullName`` or ``ClientSurname`` + ``ClientName`` +
  ``ClientPatronymic`` (never both: ``Kontur\\Ident`` ``TicketTable::getMap`` and
  ``Exchange::actionGetTickets``; ``brearey/smmikod`` ``src/database/init.sql``,
  constraint ``chk_name_fields``). The parts are joined «Фамилия Имя Отчество»;
  integrations.md, Corrections.
* **Ids may be integers**: ``Id`` is text in the receivers seen (a GUID in
  ``Kontur\\Ident``, a UUID in ``brearey/smmikod``) but taken as text or integer;
  ``DoctorId`` is an integer, "the number from IDENT" (``Kontur\\Ident``
  ``TicketTable::getMap``; ``INT`` in ``brearey/smmikod``). An integer ``DoctorId`` is
  therefore an IDENT id — for 32top, one of our ``integration.ident_ids`` aliases — and
  not a clinic ``doctor_id``: it is kept in the raw record and the doctor is matched by
  ``DoctorName`` (matching it as a clinic id could pick another doctor whose text id
  happens to be that number). A text ``DoctorId`` is matched as the clinic's id, then
  by name.
* 32top sends only the doctor's surname and the start time (integrations.md,
  "СберЗдоровье (formerly DocDoc) and 32top").
* **Both ends of the period in the clinic's offset** (``clinic_timezone``), whatever zone
  the caller's times are in. Receivers are written and tried against IDENT's own calls:
  a partner's test call sends both ends in one offset (``brearey/smmikod`` ``Makefile``,
  ``test_tickets``: ``dateTimeFrom=…%2b03%3a00&dateTimeTo=…%2b03%3a00``), and the Python
  receiver reads a time that comes without an offset, which it says IDENT sometimes sends,
  as Moscow time («сдвиг там может быть и с двоеточием, и без, а иногда его нет вовсе»:
  ``ArayikK/Kleomed_web`` ``server/leads.py``, ``parse_dt``). The receivers seen compare
  instants, but one that drops the offset (a ``timestamp without time zone`` column
  compared with the query's strings) would read a UTC ``dateTimeTo`` three hours early
  and, just after midnight, on the day before.
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
from ident_hooks.leads.paging import OffsetPaginator, Page, field_key, walk
from ident_hooks.leads.sources import SourceRefused, SourceSettings, read_json

ENDPOINT = "GetTickets"
DEFAULT_PAGE_SIZE = 500
NAME_PARTS = ("ClientSurname", "ClientName", "ClientPatronymic")


def _page(client: Any, source: str, params: dict[str, Any]) -> Page:
    page = read_json(client.request("GET", ENDPOINT, params=params), source)
    if not isinstance(page, list):
        raise SourceRefused(source, f"expected a JSON array, got {str(page)[:200]!r}")
    return Page(page)


def wire_time(moment: datetime, settings: SourceSettings) -> str:
    """``2026-12-01T23:58:00+03:00``: the moment in the clinic's time zone, with its offset."""
    return moment.astimezone(settings.timezone).isoformat(timespec="seconds")


def fetch(
    client: Any, period_from: datetime, period_to: datetime, *, settings: SourceSettings
) -> Iterator[dict[str, Any]]:
    """Tickets of ``[period_from, period_to)``, every page walked, each id once."""
    period = {
        "dateTimeFrom": wire_time(period_from, settings),
        "dateTimeTo": wire_time(period_to, settings),
    }
    paginator = OffsetPaginator(
        settings.source, limit=settings.page_size or DEFAULT_PAGE_SIZE, key=field_key("Id")
    )
    return walk(paginator, lambda paging: _page(client, settings.source, {**period, **paging}))


def _client_name(raw: dict[str, Any]) -> str | None:
    full_name = clean_text(raw.get("ClientFullName"), "ClientFullName")
    if full_name is not None:
        return full_name
    parts = [clean_text(raw.get(part), part) for part in NAME_PARTS]
    return " ".join(part.strip() for part in parts if part) or None


def parse(raw: Any, *, settings: SourceSettings, matcher: DoctorMatcher) -> Lead:
    if not isinstance(raw, dict):
        raise RejectedRecord(f"record is not an object: {type(raw).__name__}")
    tz = settings.timezone
    doctor_name = clean_text(raw.get("DoctorName"), "DoctorName")
    ident_doctor = raw.get("DoctorId")
    is_ident_id = isinstance(ident_doctor, int) and not isinstance(ident_doctor, bool)
    doctor_id = None if is_ident_id else clean_text(ident_doctor, "DoctorId")
    return make_lead(
        source=settings.source,
        external_id=record_id(raw.get("Id"), "Id"),
        created_at=parse_time(raw.get("DateAndTime"), tz, "DateAndTime"),
        raw=raw,
        name=_client_name(raw),
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
