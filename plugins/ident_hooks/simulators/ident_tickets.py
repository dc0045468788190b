"""IDENT ``GetTickets`` simulator: what 32top and clinic websites serve."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ident_hooks.simulators.base import SimRequest, SimResponse
from ident_hooks.simulators.fake_leads import FakeLead, LeadServingSimulator


class IdentTicketsSimulator(LeadServingSimulator):
    """A partner system answering IDENT ``GET GetTickets`` (32top or a clinic website).

    ``style="32top"`` sends only the doctor's surname and the start time; ``"site"`` sends
    ``DoctorId``, the full name and both times. ``path_prefix`` serves the endpoint below a
    path (a site's ``/ident/GetTickets``). Wrong or missing key: 403 / 401, plain text.
    """

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
        max_limit: int = 1000,
        **kwargs: Any,
    ) -> None:
        if style not in ("site", "32top"):
            raise ValueError("style is 'site' or '32top'")
        super().__init__(**kwargs)
        self.key = key
        self.style = style
        self.max_limit = max_limit
        self.route("GET", f"{path_prefix.rstrip('/')}/GetTickets", self._get_tickets)

    def authorize(self, request: SimRequest) -> SimResponse | None:
        given = request.headers.get("ident-integration-key")
        if given is None:
            return SimResponse(401, "IDENT-Integration-Key header is required")
        if given != self.key:
            return SimResponse(403, "Invalid IDENT-Integration-Key")
        return None

    def render(self, lead: FakeLead, serial: int) -> dict[str, Any]:
        serial = serial or self.next_serial()
        ticket: dict[str, Any] = {
            "Id": f"{self.style}-{serial}",
            "DateAndTime": lead.created_at.astimezone(self.tz).isoformat(timespec="seconds"),
            "ClientFullName": lead.name,
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
        if not 0 < limit <= self.max_limit or offset < 0:
            return SimResponse(400, f"Bad request: limit 1..{self.max_limit}, offset >= 0")
        tickets = self.records_between(start, end)
        return SimResponse(200, tickets[offset : offset + limit])

    def _moment(self, value: str | None, name: str) -> datetime:
        if not value:
            raise ValueError(f"{name} is required")
        moment = datetime.fromisoformat(value)
        return moment if moment.tzinfo else moment.replace(tzinfo=self.tz)
