"""Flexbe simulator: ``GET /mod/api/?api_key=…&method=getLeads`` on a landing site.

Replies ``{"status":1,"data":{"leads":…,"total":N}}``; errors are HTTP 200 with
``{"status":0,"error":{"code","msg"}}`` (0 invalid key, 1 limit exceeded, 2 unknown method).
``leads_as`` chooses how ``data.leads`` looks: ``"object"`` keyed by id or ``"list"``.
Paging by ``start``/``count`` (``count`` silently capped at ``max_count``). The period
filter ``date_from``/``date_to`` (Unix seconds, inclusive) is applied only when
``honour_dates`` — the real parameter names are uncertain, so a connector must cope with a
service that ignores them.
"""

from __future__ import annotations

from typing import Any

from ident_hooks.simulators.base import SimRequest, SimResponse
from ident_hooks.simulators.fake_leads import FakeLead, LeadServingSimulator

INVALID_KEY, LIMIT_EXCEEDED, UNKNOWN_METHOD = 0, 1, 2


class FlexbeSimulator(LeadServingSimulator):
    name = "flexbe"
    id_field = "id"
    time_field = "time"
    text_field = "client"

    def __init__(
        self,
        *,
        api_key: str = "flexbe-key",
        leads_as: str = "object",
        honour_dates: bool = True,
        max_count: int = 100,
        **kwargs: Any,
    ) -> None:
        if leads_as not in ("object", "list"):
            raise ValueError("leads_as is 'object' or 'list'")
        super().__init__(**kwargs)
        self.api_key = api_key
        self.leads_as = leads_as
        self.honour_dates = honour_dates
        self.max_count = max_count
        self._scripted_errors: list[tuple[int, str]] = []
        self.route("GET", "/mod/api", self._api)

    def inject_api_error(self, code: int, msg: str = "", *, times: int = 1) -> None:
        """Answer the next ``times`` calls with ``status`` 0 and this error."""
        with self._data_lock:
            self._scripted_errors.extend([(code, msg or f"error {code}")] * times)

    def render(self, lead: FakeLead, serial: int) -> dict[str, Any]:
        serial = serial or self.next_serial()
        tags = lead.utm if lead.tags_in_fields else {}
        return {
            "id": 300_000 + serial,
            "num": serial,
            "time": int(lead.created_at.timestamp()),
            "status": {"code": 0, "name": "Новая"},
            "client": {"name": lead.name, "phone": lead.phone, "email": lead.email or ""},
            "note": lead.comment or "",
            "form_name": lead.form_name,
            "form_data": {
                "fld_name": {"name": "Имя", "value": lead.name},
                "fld_phone": {"name": "Телефон", "value": lead.phone},
                "fld_time": {"name": "Удобное время", "value": "после 18:00"},
            },
            "page": {"url": lead.page_url, "name": "Стоматология «Улыбка»"},
            "utm": {
                "utm_source": tags.get("utm_source", ""),
                "utm_medium": tags.get("utm_medium", ""),
                "utm_campaign": tags.get("utm_campaign", ""),
                "utm_term": tags.get("utm_term", ""),
                "utm_content": tags.get("utm_content", ""),
                "url": lead.landing_url,
                "ip": "95.31.18.119",
                "ym_client_id": "1700000000123456789",
                "ga_client_id": "",
            },
        }

    def _error(self, code: int, msg: str) -> SimResponse:
        return SimResponse(200, {"status": 0, "error": {"code": code, "msg": msg}})

    def _api(self, request: SimRequest) -> SimResponse:
        if request.arg("api_key") != self.api_key:
            return self._error(INVALID_KEY, "Invalid api key")
        with self._data_lock:
            if self._scripted_errors:
                return self._error(*self._scripted_errors.pop(0))
        if request.arg("method") != "getLeads":
            return self._error(UNKNOWN_METHOD, "Unknown method")
        try:
            start = int(request.arg("start", "0"))
            count = min(int(request.arg("count", "20")), self.max_count)
            date_from, date_to = request.arg("date_from"), request.arg("date_to")
            bounds = (int(date_from) if date_from else None, int(date_to) if date_to else None)
        except ValueError:
            return self._error(UNKNOWN_METHOD, "Invalid parameters")
        rows = self.records_between(None, None)
        if self.honour_dates:
            rows = [row for row in rows if _within(row, *bounds)]
        page = rows[max(start, 0) : max(start, 0) + max(count, 0)]
        if self.leads_as == "list":
            leads: Any = page
        else:
            leads = {
                str(row["id"]) if isinstance(row, dict) and "id" in row else f"n{start + i}": row
                for i, row in enumerate(page)
            }
        return SimResponse(200, {"status": 1, "data": {"leads": leads, "total": len(rows)}})


def _within(row: Any, date_from: int | None, date_to: int | None) -> bool:
    try:
        moment = int(row["time"])
    except (TypeError, KeyError, ValueError):
        return True  # a broken record is still listed; the connector must reject it
    return (date_from is None or moment >= date_from) and (date_to is None or moment <= date_to)
