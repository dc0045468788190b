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
* **A partner that switched the integration off** answers a plain 503: the class declares
  :func:`plain_503` as its ``switched_off`` rule (the facts are there).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, tzinfo
from typing import Any

from ident_hooks.http_client import ServiceClient
from ident_hooks.leads.normalise import clean_text
from ident_hooks.leads.paging import OffsetPaginator, Page, Paging
from ident_hooks.leads.sources import (
    PullSource,
    SourceRefused,
    SourceSettings,
    first,
    joined,
    text,
    time,
)
from ident_hooks.registry import IDENT_INTEGRATION_KEY

NAME_PARTS = ("ClientSurname", "ClientName", "ClientPatronymic")


def wire_time(moment: datetime, settings: SourceSettings) -> str:
    """``2026-12-01T23:58:00+03:00``: the moment in the clinic's time zone, with its offset."""
    return moment.astimezone(settings.timezone).isoformat(timespec="seconds")


def clinic_doctor_id(raw: Mapping[str, Any], zone: tzinfo) -> str | None:
    """A text ``DoctorId``; an integer one is IDENT's own number, kept only in ``raw``."""
    ident_doctor = raw.get("DoctorId")
    if isinstance(ident_doctor, int) and not isinstance(ident_doctor, bool):
        return None
    return clean_text(ident_doctor, "DoctorId")


def plain_503(response: Any) -> bool:
    """A 503 without ``Retry-After``: how IDENT partners say the integration is switched off.

    The Python site receiver ``ArayikK/Kleomed_web`` (``server/leads.py``,
    ``check_ident_key``) answers every IDENT call with 503 ``{"error": "ident integration
    disabled"}`` while its key is unset (integrations.md, Corrections: "some answer 503 when
    the integration is switched off"). A service that is only overloaded says when to come
    back (``Retry-After``), and that 503 stays transient.
    """
    return response.status_code == 503 and "Retry-After" not in response.headers


class IdentTicketsSource(PullSource):
    """``GetTickets`` of an IDENT partner: 32top or a clinic website (module notes)."""

    kind = "ident_tickets"
    auth = IDENT_INTEGRATION_KEY
    switched_off = staticmethod(plain_503)
    endpoint = "GetTickets"
    paging = Paging(OffsetPaginator, default_size=500)
    record_key = "Id"
    fields = {
        "created_at": time("DateAndTime"),
        "name": first(text("ClientFullName"), joined(*NAME_PARTS)),
        "phone": text("ClientPhone"),
        "email": text("ClientEmail"),
        "comment": text("Comment"),
        "form_name": text("FormName"),
        "doctor_id": clinic_doctor_id,
        "doctor_name_raw": text("DoctorName"),
        "requested_start": time("PlanStart", required=False),
        "requested_end": time("PlanEnd", required=False),
        "utm_source": text("UtmSource"),
        "utm_medium": text("UtmMedium"),
        "utm_campaign": text("UtmCampaign"),
        "utm_term": text("UtmTerm"),
        "utm_content": text("UtmContent"),
        "referrer": text("HttpReferer"),
    }

    @classmethod
    def period_params(
        cls, period_from: datetime, period_to: datetime, settings: SourceSettings
    ) -> dict[str, Any]:
        return {
            "dateTimeFrom": wire_time(period_from, settings),
            "dateTimeTo": wire_time(period_to, settings),
        }

    @classmethod
    def read_page(cls, client: ServiceClient, body: Any) -> Page:
        if not isinstance(body, list):
            raise cls.failure(
                client, SourceRefused, f"expected a JSON array, got {str(body)[:200]!r}"
            )
        return Page(body)
