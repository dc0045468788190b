"""IDENT ``GetTickets`` simulator: what 32top and clinic websites serve.

Follows integrations.md ("The IDENT HTTP integration protocol" and Corrections) and the
public receivers:

* A JSON array of tickets for ``dateTimeFrom <= DateAndTime < dateTimeTo``, oldest
  first, ``limit`` tickets from ``offset``; past the end an empty array
  (``brearey/smmikod`` ``src/index.ts`` and ``.cursor/rules/ident-rules.mdc``).
* ``clamp_limit``: a partner serves at most this many tickets per page whatever
  ``limit`` asks, silently (``ArayikK/Kleomed_web`` ``server/leads.py`` clamps at 1000,
  the default here; ``None`` honours any limit). ``ignore_offset=True`` plays a broken
  server that always answers from the first ticket.
* The patient's name: ``name_style="full"`` sends ``ClientFullName``; ``"split"`` sends
  ``ClientSurname``, ``ClientName``, ``ClientPatronymic`` and no ``ClientFullName``
  (never both: the Bitrix module ``Kontur\\Ident``, ``TicketTable::getMap``).
* Ids: ``int_ids=True`` sends ``Id`` as a JSON integer; ``DoctorId`` is whatever id the
  simulator's doctors carry (integers, as IDENT's are, or the clinic's text ids).
* A wrong or missing key: ``bad_key="text"`` answers 401 (missing) / 403 (wrong) with a
  plain-text reason; ``"json"`` answers 401 ``{"error": "bad integration key"}`` to both,
  as ``ArayikK/Kleomed_web`` ``server/leads.py`` does (``brearey/smmikod``
  ``src/middlewares/auth.ts`` answers 403 «Доступ запрещен»; integrations.md: 401 or
  403, text or JSON).
* A partner that switched the integration off: ``switched_off="text"`` or ``"json"`` (also
  settable while running) answers every call 503 without ``Retry-After``, whatever the
  key, with the reason as plain text or as ``{"error": "ident integration disabled"}`` —
  ``ArayikK/Kleomed_web`` ``server/leads.py`` (``check_ident_key``) answers so while its
  key is unset, before it looks at the caller's key (integrations.md, Corrections: "some
  answer 503 when the integration is switched off").
* The period's offsets: ``offsets="honoured"`` compares instants, as the public receivers
  do (``ArayikK/Kleomed_web`` ``parse_dt`` reads ``+03:00``, ``+0300`` and ``Z``, and a
  time without an offset as Moscow; ``Kontur\\Ident`` ``strtotime``; ``brearey/smmikod``
  ``new Date``). ``"ignored"`` plays a receiver that reads each end's wall-clock time as
  its own local time and drops the offset — what PostgreSQL does to a literal compared
  with a ``timestamp without time zone`` column («silently ignore any time zone
  indication», PostgreSQL manual, "Date/Time Types"), so a receiver keeping local times
  there and passing the query's strings through behaves like this.

``style="32top"`` sends only the doctor's surname and the start time; ``"site"`` sends
``DoctorId``, the full name and both times. ``path_prefix`` serves the endpoint below a
path (a site's ``/ident/GetTickets``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ident_dev.simulators.base import SimRequest, SimResponse
from ident_dev.simulators.fake_leads import FakeLead, LeadServingSimulator

PARTNER_LIMIT = 1000  # ArayikK/Kleomed_web, server/leads.py: min(limit, 1000)


class IdentTicketsSimulator(LeadServingSimulator):
    """A partner system answering IDENT ``GET GetTickets`` (32top or a clinic website)."""

    name = "ident_tickets"
    id_field = "Id"
    time_field = "DateAndTime"
    text_field = "ClientFullName"

    def __init__(
        self,
        *,
        key: str = "ident-key",
        style: str = "site",
        path_prefix: str = "",
        clamp_limit: int | None = PARTNER_LIMIT,
        ignore_offset: bool = False,
        name_style: str = "full",
        int_ids: bool = False,
        bad_key: str = "text",
        switched_off: str | None = None,
        offsets: str = "honoured",
        **kwargs: Any,
    ) -> None:
        if style not in ("site", "32top"):
            raise ValueError("style is 'site' or '32top'")
        if name_style not in ("full", "split"):
            raise ValueError("name_style is 'full' or 'split'")
        if bad_key not in ("text", "json"):
            raise ValueError("bad_key is 'text' or 'json'")
        if switched_off not in (None, "text", "json"):
            raise ValueError("switched_off is None, 'text' or 'json'")
        if offsets not in ("honoured", "ignored"):
            raise ValueError("offsets is 'honoured' or 'ignored'")
        super().__init__(**kwargs)
        self.key = key
        self.style = style
        self.clamp_limit = clamp_limit
        self.ignore_offset = ignore_offset
        self.name_style = name_style
        self.int_ids = int_ids
        self.bad_key = bad_key
        self.switched_off = switched_off
        self.offsets = offsets
        if name_style == "split":
            self.text_field = "ClientSurname"
        self.route("GET", f"{path_prefix.rstrip('/')}/GetTickets", self._get_tickets)

    def authorize(self, request: SimRequest) -> SimResponse | None:
        if self.switched_off == "json":
            return SimResponse(503, {"error": "ident integration disabled"})
        if self.switched_off == "text":
            return SimResponse(503, "ident integration disabled")
        given = request.headers.get("ident-integration-key")
        if given == self.key:
            return None
        if self.bad_key == "json":
            return SimResponse(401, {"error": "bad integration key"})
        if given is None:
            return SimResponse(401, "IDENT-Integration-Key header is required")
        return SimResponse(403, "Invalid IDENT-Integration-Key")

    def render(self, lead: FakeLead, serial: int) -> dict[str, Any]:
        serial = serial or self.next_serial()
        ticket: dict[str, Any] = {
            "Id": serial if self.int_ids else f"{self.style}-{serial}",
            "DateAndTime": lead.created_at.astimezone(self.tz).isoformat(timespec="seconds"),
        }
        if self.name_style == "split":
            ticket["ClientSurname"] = lead.surname
            ticket["ClientName"] = lead.first_name
            ticket["ClientPatronymic"] = lead.patronymic
        else:
            ticket["ClientFullName"] = lead.name
        ticket.update(
            {
                "ClientPhone": lead.phone,
                "ClientEmail": lead.email,
                "FormName": lead.form_name,
                "Comment": lead.comment,
                "UtmSource": lead.utm.get("utm_source"),
                "UtmMedium": lead.utm.get("utm_medium"),
                "UtmCampaign": lead.utm.get("utm_campaign"),
                "UtmTerm": lead.utm.get("utm_term"),
                "UtmContent": lead.utm.get("utm_content"),
                "HttpReferer": lead.referrer,
            }
        )
        if lead.plan_start is not None:
            ticket["PlanStart"] = lead.plan_start.isoformat(timespec="seconds")
            if self.style == "32top":
                ticket["DoctorName"] = (lead.doctor_name or "").split(" ")[0]
            else:
                ticket["PlanEnd"] = lead.plan_end.isoformat(timespec="seconds")
                ticket["DoctorId"] = lead.doctor_id
                ticket["DoctorName"] = lead.doctor_name
        return ticket

    def _get_tickets(self, request: SimRequest) -> SimResponse:
        try:
            start = self._moment(request.arg("dateTimeFrom"), "dateTimeFrom")
            end = self._moment(request.arg("dateTimeTo"), "dateTimeTo")
            limit = int(request.arg("limit", "500"))
            offset = int(request.arg("offset", "0"))
        except ValueError as exc:
            return SimResponse(400, f"Bad request: {exc}")
        if limit < 0 or offset < 0:
            return SimResponse(400, "Bad request: limit and offset must not be negative")
        if self.clamp_limit is not None:
            limit = max(1, min(limit, self.clamp_limit))
        if self.ignore_offset:
            offset = 0
        tickets = self.records_between(start, end)
        return SimResponse(200, tickets[offset : offset + limit])

    def _moment(self, value: str | None, name: str) -> datetime:
        if not value:
            raise ValueError(f"{name} is required")
        moment = datetime.fromisoformat(value)
        if self.offsets == "ignored":
            moment = moment.replace(tzinfo=None)
        return moment if moment.tzinfo else moment.replace(tzinfo=self.tz)
