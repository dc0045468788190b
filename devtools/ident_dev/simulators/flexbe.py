"""Flexbe simulator: ``/mod/api/`` on a landing site, as Flexbe's API page and both public
clients call it.

Where each behaviour comes from:

* What a call may look like. Flexbe's API page (help.flexbe.com/api-documentation) says the
  API takes "GET and POST requests" on ``/mod/api/?api_key={key}`` and shows both a GET with
  ``api_key`` and ``method`` in the query (curl, ``file_get_contents``) and a POST with them in
  a form body (Node ``request.post({form: …})``). The public clients send POST: the PyPI
  package ``flexbe`` 0.1.0 (``flexbe/client.py``, ``Flexbe.request``) puts every parameter in
  the query string of an empty POST; GitHub ``segakgd/flexbe_api_client``
  (``src/Client/Core/HttpClient.php``, ``src/Client/HttpService.php``) posts them all as a
  URL-encoded form body, and sent a GET with a query string before its commit 3263d09
  (2024-10-13). So GET and POST are both served, and a call's parameters are its query
  fields overridden by its form-body fields, the way PHP's ``$_REQUEST`` merges them
  (``request_params``). **Assumed** (no public client does it): a JSON body is not read — a
  key sent only there is a missing key (error 0); other HTTP methods have no route.
* Methods: ``getLeads``; ``checkConnection`` answers ``{"status":1}`` (Flexbe's API page; the
  PyPI client's ``check_connection``); any other is error 2. ``getLeads`` filters by ``id``
  (the PyPI client's ``get_lead`` asks ``getLeads`` with ``id``) and by ``status`` code
  (``src/Dto/Request/LeadFilterRequest.php``).
* Replies ``{"status":1,"data":{"leads":…,"total":N}}``; errors are HTTP 200 with
  ``{"status":0,"error":{"code","msg"}}`` (0 invalid key, 1 limit exceeded, 2 unknown method)
  — integrations.md "Flexbe" and ``segakgd/flexbe_api_client`` ``src/Enum/ErrorCodeEnum.php``.
  ``error_status=False`` leaves ``status`` out of error replies: that client decides by
  ``error`` alone (``src/Client/Response/Response.php``), so a connector must too.
  ``data.total`` (the count the filter matches) is this simulator's assumption; ``send_total``
  False leaves it out.
* A lead carries every key the clients' lead types read: ``id, num, time, status{code,name},
  client{name,phone,email}, note, form_name, form_data, page{url,name}, utm{…}, pay,
  custom`` (the PyPI client's ``flexbe/types.py`` ``Lead``) and ``products`` (a list that
  ``src/Dto/Response/LeadDto.php`` requires). A clinic's request is not a sale: ``pay`` is
  null (both clients allow it: ``pay: dict | None``, ``isset($data['pay'])``), ``products``
  empty and ``custom`` an empty string.
* ``status{code,name}``: 0 new, 1 in work, 2 done, 10 cancelled, 11 deleted
  (``src/Enum/LeadStatusEnum.php``; the PyPI client's ``LeadStatus``; integrations.md
  Corrections). ``cancel``, ``delete`` and ``restore`` change a stored lead the way the clinic
  does in Flexbe's panel; a deleted lead is still listed with code 11 and a restored one gets
  its earlier status back. The names shown next to the codes are assumed.
* ``leads_as`` chooses how ``data.leads`` looks: ``"object"`` keyed by id (what the PyPI client
  reads: ``data["leads"].values()``) or ``"list"``.
* Paging by ``start``/``count``; ``count`` is silently capped at ``max_count`` (the server
  cap, reportedly 1000 — integrations.md Corrections). ``ignore_start`` plays a server that
  answers every page from the first lead.
* The period filter ``date_from``/``date_to`` (Unix seconds, inclusive) is applied only when
  ``honour_dates`` — the real parameter names are uncertain, so a connector must cope with a
  service that ignores them.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from ident_dev.simulators.base import SimRequest, SimResponse
from ident_dev.simulators.fake_leads import FakeLead, LeadServingSimulator

INVALID_KEY, LIMIT_EXCEEDED, UNKNOWN_METHOD = 0, 1, 2
NEW, IN_WORK, DONE, CANCELLED, DELETED = 0, 1, 2, 10, 11
STATUS_NAMES = {
    NEW: "Новый",
    IN_WORK: "В работе",
    DONE: "Выполнен",
    CANCELLED: "Отменён",
    DELETED: "Удалён",
}
SERVER_PAGE_CAP = 1000
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


def request_params(request: SimRequest) -> dict[str, str]:
    """A call's parameters: the query's fields, overridden by a URL-encoded form body's."""
    params = {name: values[0] for name, values in request.query.items()}
    if request.headers.get("content-type", "").startswith(FORM_CONTENT_TYPE):
        form = parse_qs(request.body.decode("utf-8"), keep_blank_values=True)
        params.update({name: values[0] for name, values in form.items()})
    return params


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
        max_count: int = SERVER_PAGE_CAP,
        ignore_start: bool = False,
        error_status: bool = True,
        send_total: bool = True,
        **kwargs: Any,
    ) -> None:
        if leads_as not in ("object", "list"):
            raise ValueError("leads_as is 'object' or 'list'")
        super().__init__(**kwargs)
        self.api_key = api_key
        self.leads_as = leads_as
        self.honour_dates = honour_dates
        self.max_count = max_count
        self.ignore_start = ignore_start
        self.error_status = error_status
        self.send_total = send_total
        self._scripted_errors: list[tuple[int, str]] = []
        self._status_before_delete: dict[str, int] = {}
        self.route("GET", "/mod/api", self._api)
        self.route("POST", "/mod/api", self._api)

    def inject_api_error(self, code: int, msg: str = "", *, times: int = 1) -> None:
        """Answer the next ``times`` calls with this error."""
        with self._data_lock:
            self._scripted_errors.extend([(code, msg or f"error {code}")] * times)

    # -- what the clinic does in Flexbe's panel ---------------------------
    def set_status(self, lead_id: Any, code: int) -> dict[str, Any]:
        """Give the stored lead ``lead_id`` the status ``code``; returns the lead."""
        if code not in STATUS_NAMES:
            raise ValueError(f"unknown Flexbe lead status {code!r}")
        with self._data_lock:
            lead = self._lead(lead_id)
            current = lead["status"]["code"]
            if code == DELETED and current != DELETED:
                self._status_before_delete[str(lead_id)] = current
            lead["status"] = {"code": code, "name": STATUS_NAMES[code]}
            return lead

    def cancel(self, lead_id: Any) -> dict[str, Any]:
        return self.set_status(lead_id, CANCELLED)

    def delete(self, lead_id: Any) -> dict[str, Any]:
        return self.set_status(lead_id, DELETED)

    def restore(self, lead_id: Any) -> dict[str, Any]:
        """Undelete a lead: it gets back the status it had before it was deleted."""
        with self._data_lock:
            if self._lead(lead_id)["status"]["code"] != DELETED:
                raise ValueError(f"lead {lead_id} is not deleted")
            return self.set_status(lead_id, self._status_before_delete.pop(str(lead_id), NEW))

    def _lead(self, lead_id: Any) -> dict[str, Any]:
        for _, _, record in self._records:
            if isinstance(record, dict) and str(record.get("id")) == str(lead_id):
                return record
        raise KeyError(f"no Flexbe lead {lead_id!r}")

    # -- the API ---------------------------------------------------------
    def render(self, lead: FakeLead, serial: int) -> dict[str, Any]:
        serial = serial or self.next_serial()
        tags = lead.utm if lead.tags_in_fields else {}
        return {
            "id": 300_000 + serial,
            "num": serial,
            "time": int(lead.created_at.timestamp()),
            "status": {"code": NEW, "name": STATUS_NAMES[NEW]},
            "client": {"name": lead.name, "phone": lead.phone, "email": lead.email or ""},
            "note": lead.comment or "",
            "form_name": lead.form_name,
            "form_data": {
                "fld_name": {"name": "Имя", "value": lead.name},
                "fld_phone": {"name": "Телефон", "value": lead.phone},
                "fld_time": {"name": "Удобное время", "value": "после 18:00"},
            },
            "products": [],
            "page": {"url": lead.page_url, "name": "Стоматология «Улыбка»"},
            "utm": {
                "utm_source": tags.get("utm_source", ""),
                "utm_medium": tags.get("utm_medium", ""),
                "utm_campaign": tags.get("utm_campaign", ""),
                "utm_term": tags.get("utm_term", ""),
                "utm_content": tags.get("utm_content", ""),
                "url": lead.landing_url,
                "ip": "95.31.18.119",
                "ym_client_id": lead.ym_client_id or "",
                "ga_client_id": "",
            },
            "pay": None,
            "custom": "",
        }

    def _error(self, code: int, msg: str) -> SimResponse:
        body: dict[str, Any] = {"status": 0} if self.error_status else {}
        body["error"] = {"code": code, "msg": msg}
        return SimResponse(200, body)

    def _api(self, request: SimRequest) -> SimResponse:
        params = request_params(request)
        if params.get("api_key") != self.api_key:
            return self._error(INVALID_KEY, "Invalid api key")
        with self._data_lock:
            if self._scripted_errors:
                return self._error(*self._scripted_errors.pop(0))
        method = params.get("method")
        if method == "checkConnection":
            return SimResponse(200, {"status": 1})
        if method != "getLeads":
            return self._error(UNKNOWN_METHOD, "Unknown method")
        return self._get_leads(params)

    def _get_leads(self, params: dict[str, str]) -> SimResponse:
        try:
            start = 0 if self.ignore_start else max(int(params.get("start", "0")), 0)
            count = max(min(int(params.get("count", "20")), self.max_count), 0)
            date_from, date_to = params.get("date_from"), params.get("date_to")
            bounds = (int(date_from) if date_from else None, int(date_to) if date_to else None)
            status = params.get("status")
            status_code = int(status) if status not in (None, "") else None
        except ValueError:
            return self._error(UNKNOWN_METHOD, "Invalid parameters")
        lead_id = params.get("id")
        with self._data_lock:
            rows = self.records_between(None, None)
            if self.honour_dates:
                rows = [row for row in rows if _within(row, *bounds)]
            if status_code is not None:
                rows = [row for row in rows if _status_code(row) == status_code]
            if lead_id not in (None, ""):
                rows = [row for row in rows if _id(row) == lead_id]
            page = _copies(rows[start : start + count])
        if self.leads_as == "list":
            leads: Any = page
        else:
            leads = {
                str(row["id"]) if isinstance(row, dict) and "id" in row else f"n{start + i}": row
                for i, row in enumerate(page)
            }
        data = {"leads": leads, "total": len(rows)} if self.send_total else {"leads": leads}
        return SimResponse(200, {"status": 1, "data": data})


def _copies(rows: list[Any]) -> list[Any]:
    """Rows as they are now: a later status change must not alter a reply already built."""
    return [{**row, "status": dict(row["status"])} if _has_status(row) else row for row in rows]


def _has_status(row: Any) -> bool:
    return isinstance(row, dict) and isinstance(row.get("status"), dict)


def _id(row: Any) -> str | None:
    return str(row["id"]) if isinstance(row, dict) and "id" in row else None


def _status_code(row: Any) -> Any:
    return row["status"].get("code") if _has_status(row) else None


def _within(row: Any, date_from: int | None, date_to: int | None) -> bool:
    try:
        moment = int(row["time"])
    except (TypeError, KeyError, ValueError):
        return True  # a broken record is still listed; the connector must reject it
    return (date_from is None or moment >= date_from) and (date_to is None or moment <= date_to)
