"""IDENT ``GetTickets`` over the leads the intake took in, so a clinic's own IDENT can pull them.

The protocol is integrations.md, "The IDENT HTTP integration protocol" and its Corrections:
``GET GetTickets?dateTimeFrom&dateTimeTo&limit&offset`` with ``IDENT-Integration-Key``;
a missing key is 401 and a wrong one 403, with a plain-text reason; the reply is a JSON
array of tickets ``DateAndTime`` in ``[dateTimeFrom, dateTimeTo)``, oldest first, and past
the end an empty array. Ids are integers (Corrections): ``Id`` is our ``lead_id`` and
``DoctorId`` the doctor's IDENT alias (``integration.ident_ids``, migration 0007), sent only
when the doctor has one. ``limit`` is clamped to 1000 as public partners do
(``ArayikK/Kleomed_web`` ``server/leads.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo
from typing import Any

import psycopg

MAX_LIMIT = 1000
DEFAULT_LIMIT = 500

_QUERY = """
select l.lead_id, l.created_at, l.name, coalesce(l.phone_e164, l.phone_raw), l.email,
       l.form_name, l.comment, l.utm_source, l.utm_medium, l.utm_campaign, l.utm_term,
       l.utm_content, l.referrer, l.requested_start, l.requested_end, i.ident_id,
       coalesce(d.full_name, l.doctor_name_raw)
  from integration.leads l
  left join clinic.doctors d on d.doctor_id = l.doctor_id
  left join integration.ident_ids i on i.entity = 'doctor' and i.clinic_id = l.doctor_id
 where l.source = any(%s) and l.created_at >= %s and l.created_at < %s
 order by l.created_at, l.lead_id
 limit %s offset %s
"""
_FIELDS = (
    "Id",
    "DateAndTime",
    "ClientFullName",
    "ClientPhone",
    "ClientEmail",
    "FormName",
    "Comment",
    "UtmSource",
    "UtmMedium",
    "UtmCampaign",
    "UtmTerm",
    "UtmContent",
    "HttpReferer",
    "PlanStart",
    "PlanEnd",
    "DoctorId",
    "DoctorName",
)
_OPTIONAL = ("PlanStart", "PlanEnd", "DoctorId", "DoctorName")


class BadQuery(ValueError):
    """A GetTickets query IDENT should not have sent; the reason goes back as 400."""


def parse_query(params: dict[str, str], timezone: tzinfo) -> tuple[datetime, datetime, int, int]:
    """``(from, to, limit, offset)`` of a query; a time without an offset is the clinic's."""
    moments = []
    for name in ("dateTimeFrom", "dateTimeTo"):
        value = params.get(name)
        if not value:
            raise BadQuery(f"{name} is required")
        if "T" in value:  # an offset's "+" sent unencoded arrives as a space
            value = value.replace(" ", "+")
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise BadQuery(f"{name} is not an ISO 8601 time") from None
        moments.append(moment if moment.tzinfo else moment.replace(tzinfo=timezone))
    numbers = []
    for name, default in (("limit", DEFAULT_LIMIT), ("offset", 0)):
        value = params.get(name, str(default))
        if not value.isdigit():
            raise BadQuery(f"{name} must be a whole number >= 0")
        numbers.append(int(value))
    limit = max(1, min(numbers[0], MAX_LIMIT))
    return moments[0], moments[1], limit, numbers[1]


def _iso(moment: datetime | None, timezone: tzinfo) -> str | None:
    return None if moment is None else moment.astimezone(timezone).isoformat(timespec="seconds")


def tickets(
    conn: psycopg.Connection,
    sources: Sequence[str],
    query: tuple[datetime, datetime, int, int],
    timezone: tzinfo,
) -> list[dict[str, Any]]:
    start, end, limit, offset = query
    rows = conn.execute(_QUERY, (list(sources), start, end, limit, offset)).fetchall()
    found = []
    for row in rows:
        ticket = dict(zip(_FIELDS, row, strict=True))
        for key in ("DateAndTime", "PlanStart", "PlanEnd"):
            ticket[key] = _iso(ticket[key], timezone)
        for key in _OPTIONAL:
            if ticket[key] is None:
                del ticket[key]
        found.append(ticket)
    return found
