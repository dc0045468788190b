"""UIS (CoMagic) Data API simulator: JSON-RPC 2.0 ``get.offline_messages_report`` and deals.

Follows the vendor's Data API documentation as its white-label copies publish it
(``novofon/novofon.github.io`` and ``callgear/callgear.github.io``: ``data_api/index.html``
and ``data_api/report/get_offline_messages_report/index.html``) and integrations.md "UIS":

* ``POST /v2.0``. Every JSON-RPC error is HTTP 200 with ``error{code,message,data{mnemonic}}``
  (a wrong token is ``access_token_invalid``).
* Periods are ``YYYY-MM-DD hh:mm:ss`` in the account's time zone, both ends inclusive, at most
  3 months apart (``date_interval_limit_reached``).
* ``fields`` may name every field the report documents (``DOCUMENTED_FIELDS``, the union of
  both copies' reply tables) and the two more the PyPI SDK ``comagic-data-api-sdk`` asks for
  by default (``SDK_FIELDS``); any other name is ``unexpected_parameters`` (-32602), as is an
  undocumented parameter. Only the requested fields are returned (fields this simulator does
  not invent come back null).
* Pages by ``limit`` (1..10 000) and ``offset`` (0..``max_offset``, 100 000 by default; beyond
  it ``invalid_parameter_value``) with ``metadata.total_items`` and ``metadata.limits``.
* ``minute_limit`` calls per clock minute are allowed, then ``limit_exceeded``;
  ``inject_rpc_error`` scripts any other error. The request's headers are kept in
  ``requests`` (the documented ``Content-Type`` is ``application/json; charset=UTF-8``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from ident_dev.simulators.base import SimRequest, SimResponse
from ident_dev.simulators.fake_leads import FakeLead, LeadServingSimulator

METHOD = "get.offline_messages_report"
UPLOAD_DEALS = "upload.deals_history"
GET_DEALS = "get.deals_history"
MAX_DEALS = 1000
DEAL_REQUIRED = (
    "ext_id",
    "name",
    "created_date_time",
    "modified_stage_date_time",
    "sales_funnel_ext_id",
    "stage_ext_id",
)
DEAL_FIELDS = frozenset(
    (
        *DEAL_REQUIRED,
        "modified_date_time",
        "closed_date_time",
        "contact_ext_ids",
        "main_contact_ext_id",
        "employee_ext_id",
        "lead_ext_id",
        "company_ext_id",
        "revenue",
        "comments",
        "source",
        "communication_id",
        "communication_type",
        "user_fields",
        "tags",
        "child_customer_id",
    )
)
COMMUNICATION_TYPES = frozenset(("chat", "offline_message", "call", "goal", "email"))
# The reply fields of get.deals_history (its documented table).
DEAL_HISTORY_FIELDS = (
    "ext_id",
    "name",
    "created_date_time",
    "closed_date_time",
    "modified_stage_date_time",
    "contact_ext_ids",
    "tag_ext_ids",
    "main_contact_ext_id",
    "employee_ext_id",
    "revenue",
    "sales_funnel_ext_id",
    "stage_ext_id",
    "comments",
    "source",
    "is_generated",
    "communication_id",
    "communication_type",
)
LINK_WINDOW = timedelta(days=30)
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
# The report's reply fields as the vendor documents them: the top-level names of the table
# "Параметры ответа" / "Response parameters", in its order (names nested in a field, such as
# ``tag_id`` in ``tags``, are not fields). Both copies list the same names, except three the
# CallGear copy (updated 2026-08) has and the Novofon copy (2026-03) lacks:
# ``NEWEST_FIELDS``.
NEWEST_FIELDS = ("is_agree_to_process_personal_data", "is_agree_to_mailing", "properties")
DOCUMENTED_FIELDS = (
    "id",
    "date_time",
    "text",
    "communication_number",
    "communication_page_url",
    "communication_type",
    "communication_id",
    "is_agree_to_process_personal_data",
    "is_agree_to_mailing",
    "ua_client_id",
    "ym_client_id",
    "sale_date",
    "sale_cost",
    "status",
    "process_time",
    "form_type",
    "form_name",
    "search_query",
    "search_engine",
    "referrer_domain",
    "referrer",
    "entrance_page",
    "gclid",
    "yclid",
    "ymclid",
    "ef_id",
    "channel",
    "properties",
    "group_id",
    "group_name",
    "employee_id",
    "employee_full_name",
    "employee_answer_message",
    "employee_comment",
    "tags",
    "site_id",
    "site_domain_name",
    "campaign_id",
    "campaign_name",
    "visit_other_campaign",
    "visitor_phone_number",
    "visitor_email",
    "visitor_name",
    "visitor_id",
    "person_id",
    "visitor_type",
    "visitor_session_id",
    "visits_count",
    "visitor_first_campaign_id",
    "visitor_first_campaign_name",
    "visitor_city",
    "visitor_country",
    "visitor_region",
    "visitor_device",
    "visitor_custom_properties",
    "segments",
    "utm_source",
    "utm_medium",
    "utm_term",
    "utm_content",
    "utm_campaign",
    "openstat_ad",
    "openstat_campaign",
    "openstat_service",
    "openstat_source",
    "attributes",
    "eq_utm_source",
    "eq_utm_medium",
    "eq_utm_term",
    "eq_utm_content",
    "eq_utm_campaign",
    "eq_utm_referrer",
    "eq_utm_expid",
    "source_id",
    "source_name",
    "source_new",
    "channel_new",
    "channel_code",
    "ext_id",
)
# Asked for by default by the PyPI SDK ``comagic-data-api-sdk`` 0.0.3.4 (``comagic/models.py``,
# ``OfflineMessage.fields()``) though neither documentation copy lists them. Its author added
# them to the report models in commit 60ca869 of ``bzdvdn/comagic-sdk`` (2019-11-19) together
# with a print of each reply key the models did not know, i.e. after the live service sent
# them; since then every default call asks for them. Accepted on that evidence (medium).
SDK_FIELDS = ("utm_referrer", "source")
REPORT_FIELDS = frozenset((*DOCUMENTED_FIELDS, *SDK_FIELDS))
# The fields this simulator fills in (the others come back null), and the default reply.
ALL_FIELDS = (
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

REPORT_PARAMETERS = frozenset(
    (
        "access_token",
        "user_id",
        "limit",
        "offset",
        "filter",
        "fields",
        "sort",
        "date_from",
        "date_till",
        "include_tech_offline_messages",
    )
)
MAX_LIMIT, MAX_OFFSET = 10_000, 100_000
ERROR_CODES = {
    "parse_error": -32700,
    "invalid_request": -32600,
    "method_not_found": -32601,
    "access_token_invalid": -32001,
    "access_token_expired": -32001,
    "ip_not_whitelisted": -32003,
    "limit_exceeded": -32029,
    "internal_error": -32603,
    "required_parameter_missed": -32602,
    "invalid_parameter_value": -32602,
    "unexpected_parameters": -32602,
    "data_type_error": -32602,
    "date_interval_limit_reached": -32602,
}


def _add_months(moment: datetime, months: int) -> datetime:
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    following = datetime(year + month // 12, month % 12 + 1, 1)
    return moment.replace(
        year=year, month=month, day=min(moment.day, (following - timedelta(days=1)).day)
    )


class _RpcError(Exception):
    def __init__(
        self, mnemonic: str, message: str, field: str | None = None, value: Any = None
    ) -> None:
        super().__init__(message)
        self.mnemonic, self.message, self.field, self.value = mnemonic, message, field, value


class UisSimulator(LeadServingSimulator):
    name = "uis"
    id_field = "id"
    time_field = "date_time"
    text_field = "visitor_name"

    def __init__(
        self,
        *,
        access_token: str = "uis-token",
        minute_limit: int = 1000,
        day_limit: int = 100_000,
        max_offset: int = MAX_OFFSET,
        sales_funnels: Mapping[str, Iterable[str]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.access_token = access_token
        # The account's sales funnels: ext_id -> its stages' ext_ids.
        self.sales_funnels = {
            funnel: frozenset(stages) for funnel, stages in (sales_funnels or {}).items()
        }
        self._calls: dict[int, datetime] = {}
        self._deals: dict[str, dict[str, Any]] = {}
        self.max_offset = max_offset
        self.minute_limit = minute_limit
        self.day_limit = day_limit
        self._scripted_errors: list[tuple[str, str]] = []
        self._calls_by_minute: dict[str, int] = {}
        self._calls_by_day: dict[str, int] = {}
        self._limits: dict[str, int] = {}
        self.route("POST", "/v2.0", self._rpc)
        self._methods = {
            METHOD: self._report,
            UPLOAD_DEALS: self._upload_deals,
            GET_DEALS: self._deals_history,
        }

    def add_call(self, at: datetime | None = None) -> int:
        """A call the account received at ``at`` (default: now); its communication id."""
        with self._data_lock:
            call_id = 300_000_000 + self.next_serial()
            self._calls[call_id] = at or self.clock()
            return call_id

    @property
    def deals(self) -> dict[str, dict[str, Any]]:
        """The stored deals by ext_id, as last uploaded."""
        with self._data_lock:
            return {ext_id: dict(deal["fields"]) for ext_id, deal in self._deals.items()}

    @property
    def deal_links(self) -> dict[str, tuple[int, str] | None]:
        """Each deal's linked communication (id, type), None when unlinked."""
        with self._data_lock:
            return {ext_id: deal["link"] for ext_id, deal in self._deals.items()}

    def inject_rpc_error(self, mnemonic: str, message: str = "", *, times: int = 1) -> None:
        """Answer the next ``times`` calls with this JSON-RPC error (HTTP 200)."""
        with self._data_lock:
            self._scripted_errors.extend([(mnemonic, message or mnemonic)] * times)

    def render(self, lead: FakeLead, serial: int) -> dict[str, Any]:
        serial = serial or self.next_serial()
        referrer = lead.referrer
        host = referrer.split("/")[2].removeprefix("www.") if referrer else None
        search = host in ("yandex.ru", "google.com")
        # The report's documented channel values: direct, paid, organic, referral, social…
        channel = "direct" if not referrer else ("paid" if lead.utm.get("utm_medium") else "")
        tags = lead.utm if lead.tags_in_fields else {}
        return {
            "id": 5_000_000 + serial,
            "communication_id": 5_000_000 + serial,
            "communication_type": "offline_message",
            "date_time": lead.created_at.astimezone(self.tz).strftime(TIME_FORMAT),
            "text": lead.comment,
            "status": "not_processed",
            "form_type": "offline_message",
            "form_name": lead.form_name,
            "visitor_name": lead.name,
            "visitor_phone_number": lead.phone,
            "visitor_email": lead.email,
            "visitor_id": 90_000_000 + serial,
            "visitor_session_id": 700_000_000 + serial,
            "site_id": 4242,
            "site_domain_name": lead.page_url.split("/")[2],
            "communication_page_url": lead.page_url,
            "entrance_page": lead.landing_url,
            "referrer": referrer,
            "referrer_domain": host,
            "search_engine": {"yandex.ru": "Яндекс", "google.com": "Google"}.get(host or ""),
            "search_query": None,
            "channel": channel or ("organic" if search else "referral"),
            "campaign_id": 101 if lead.utm else None,
            "campaign_name": lead.utm.get("utm_campaign"),
            "utm_source": tags.get("utm_source"),
            "utm_medium": tags.get("utm_medium"),
            "utm_campaign": tags.get("utm_campaign"),
            "utm_term": tags.get("utm_term"),
            "utm_content": tags.get("utm_content"),
            # UIS's site script reads the ClientID from Metrica's cookie and the click ids
            # from the landing URL; a site without its tagging has only the URL to tell.
            "gclid": lead.gclid if lead.tags_in_fields else None,
            "yclid": lead.yclid if lead.tags_in_fields else None,
            "ym_client_id": lead.ym_client_id,
            "tags": [],
        }

    # -- JSON-RPC --------------------------------------------------------
    def _rpc(self, request: SimRequest) -> SimResponse:
        request_id = None
        try:
            try:
                body = json.loads(request.body.decode("utf-8"))
            except ValueError:
                raise _RpcError("parse_error", "Parse error") from None
            if not isinstance(body, dict) or body.get("jsonrpc") != "2.0" or "id" not in body:
                raise _RpcError("invalid_request", "Invalid Request")
            request_id = body["id"]
            handler = self._methods.get(body.get("method"))
            if handler is None:
                raise _RpcError("method_not_found", f"Method {body.get('method')!r} not found")
            params = body.get("params")
            if not isinstance(params, dict):
                raise _RpcError("invalid_request", "params must be an object")
            if params.get("access_token") != self.access_token:
                raise _RpcError("access_token_invalid", "Access token is invalid")
            self._count_call()
            result = handler(params)
        except _RpcError as error:
            data: dict[str, Any] = {"mnemonic": error.mnemonic}
            if error.field:
                data.update(field=error.field, value=error.value)
            rpc_error = {"code": ERROR_CODES[error.mnemonic], "message": error.message}
            reply = {"jsonrpc": "2.0", "id": request_id, "error": {**rpc_error, "data": data}}
            return SimResponse(200, reply)
        return SimResponse(200, {"jsonrpc": "2.0", "id": request_id, "result": result})

    def _count_call(self) -> None:
        with self._data_lock:
            if self._scripted_errors:
                mnemonic, message = self._scripted_errors.pop(0)
                raise _RpcError(mnemonic, message)
            now = self.clock().astimezone(self.tz)
            minute, day = now.strftime("%Y-%m-%d %H:%M"), now.strftime("%Y-%m-%d")
            if (
                self._calls_by_minute.get(minute, 0) >= self.minute_limit
                or self._calls_by_day.get(day, 0) >= self.day_limit
            ):
                raise _RpcError("limit_exceeded", "Limit exceeded")
            self._calls_by_minute[minute] = self._calls_by_minute.get(minute, 0) + 1
            self._calls_by_day[day] = self._calls_by_day.get(day, 0) + 1
            self._limits = {
                "day_limit": self.day_limit,
                "day_remaining": self.day_limit - self._calls_by_day[day],
                "day_reset": int(86400 - now.hour * 3600 - now.minute * 60 - now.second),
                "minute_limit": self.minute_limit,
                "minute_remaining": self.minute_limit - self._calls_by_minute[minute],
                "minute_reset": 60 - now.second,
            }

    def _local(self, params: dict[str, Any], name: str) -> datetime:
        value = params.get(name)
        if value is None:
            raise _RpcError("required_parameter_missed", f"{name} is required", name)
        try:
            return datetime.strptime(value, TIME_FORMAT).replace(tzinfo=self.tz)
        except (TypeError, ValueError):
            raise _RpcError(
                "invalid_parameter_value", f"{name} must be YYYY-MM-DD hh:mm:ss", name
            ) from None

    def _report(self, params: dict[str, Any]) -> dict[str, Any]:
        unexpected = set(params) - REPORT_PARAMETERS
        if unexpected:
            raise _RpcError("unexpected_parameters", f"Unexpected {sorted(unexpected)}")
        date_from, date_till = self._local(params, "date_from"), self._local(params, "date_till")
        if date_till < date_from:
            raise _RpcError("invalid_parameter_value", "date_till before date_from", "date_till")
        if date_till > _add_months(date_from, 3):
            raise _RpcError("date_interval_limit_reached", "Period exceeds 3 months", "date_till")
        limit, offset = params.get("limit", 1000), params.get("offset", 0)
        if type(limit) is not int or not 0 < limit <= MAX_LIMIT:
            raise _RpcError(
                "invalid_parameter_value", f"limit must be 1..{MAX_LIMIT}", "limit", limit
            )
        if type(offset) is not int or not 0 <= offset <= self.max_offset:
            raise _RpcError(
                "invalid_parameter_value", f"offset must be 0..{self.max_offset}", "offset", offset
            )
        fields = params.get("fields")
        if fields is None:
            fields = list(ALL_FIELDS)
        if not isinstance(fields, list) or not all(isinstance(name, str) for name in fields):
            raise _RpcError("data_type_error", "fields must be a list of names", "fields")
        unknown = [name for name in fields if name not in REPORT_FIELDS]
        if unknown:
            raise _RpcError(
                "unexpected_parameters", "Unexpected method parameter(s)", "fields", unknown
            )
        rows = self.records_between(date_from, date_till, end_inclusive=True)
        page = [
            {name: row.get(name) for name in fields} if isinstance(row, dict) else row
            for row in rows[offset : offset + limit]
        ]
        return {"data": page, "metadata": {"total_items": len(rows), "limits": self._limits}}

    # -- deals -----------------------------------------------------------
    def _deal_time(self, deal: dict[str, Any], name: str, index: int) -> datetime | None:
        value = deal.get(name)
        if value is None:
            return None
        try:
            return datetime.strptime(value, TIME_FORMAT).replace(tzinfo=self.tz)
        except (TypeError, ValueError):
            raise _RpcError(
                "invalid_parameter_value",
                f"deals[{index}].{name} must be YYYY-MM-DD hh:mm:ss",
                name,
                value,
            ) from None

    def _check_deal(self, deal: Any, index: int, now: datetime) -> dict[str, datetime | None]:
        if not isinstance(deal, dict):
            raise _RpcError("data_type_error", f"deals[{index}] must be an object", "deals")
        unexpected = sorted(set(deal) - DEAL_FIELDS)
        if unexpected:
            raise _RpcError("unexpected_parameters", f"Unexpected {unexpected}", "deals")
        for name in DEAL_REQUIRED:
            if deal.get(name) in (None, ""):
                raise _RpcError("required_parameter_missed", f"deals[{index}].{name}", name)
        times = {
            name: self._deal_time(deal, name, index)
            for name in (
                "created_date_time",
                "modified_date_time",
                "modified_stage_date_time",
                "closed_date_time",
            )
        }
        created = times["created_date_time"]
        assert created is not None
        if created > now:
            raise _RpcError(
                "invalid_parameter_value", "created_date_time is in the future", "created_date_time"
            )
        for name in ("modified_stage_date_time", "closed_date_time"):
            moment = times[name]
            if moment is not None and moment < created:
                raise _RpcError("invalid_parameter_value", f"{name} before created_date_time", name)
        stages = self.sales_funnels.get(deal["sales_funnel_ext_id"])
        if stages is None:
            raise _RpcError(
                "invalid_parameter_value", "Unknown sales funnel", "sales_funnel_ext_id"
            )
        if deal["stage_ext_id"] not in stages:
            raise _RpcError("invalid_parameter_value", "Unknown stage", "stage_ext_id")
        has_id, has_type = "communication_id" in deal, "communication_type" in deal
        if has_id != has_type:
            missing = "communication_type" if has_id else "communication_id"
            raise _RpcError("required_parameter_missed", f"deals[{index}].{missing}", missing)
        if has_id:
            if type(deal["communication_id"]) is not int:
                raise _RpcError("data_type_error", "communication_id must be a number")
            if deal["communication_type"] not in COMMUNICATION_TYPES:
                raise _RpcError(
                    "invalid_parameter_value",
                    "Unknown communication_type",
                    "communication_type",
                    deal["communication_type"],
                )
        revenue = deal.get("revenue")
        if revenue is not None and (type(revenue) not in (int, float) or revenue < 0):
            raise _RpcError("data_type_error", "revenue must be a number", "revenue", revenue)
        if deal.get("contact_ext_ids") or deal.get("main_contact_ext_id"):
            # This simulator's account has no deal contacts (create.deal_contacts).
            raise _RpcError("invalid_parameter_value", "Unknown contact", "contact_ext_ids")
        return times

    def _communication_time(self, communication_id: int, kind: str) -> datetime | None:
        if kind == "call":
            return self._calls.get(communication_id)
        if kind == "offline_message":
            for at, _, record in self._records:
                if isinstance(record, dict) and record.get("communication_id") == communication_id:
                    return at
        return None

    def _link(self, deal: dict[str, Any], created: datetime) -> tuple[int, str] | None:
        if "communication_id" not in deal:
            return None
        communication = (deal["communication_id"], deal["communication_type"])
        at = self._communication_time(*communication)
        if at is None or not created - LINK_WINDOW <= at <= created:
            return None
        return communication

    def _upload_deals(self, params: dict[str, Any]) -> dict[str, Any]:
        unexpected = set(params) - {"access_token", "user_id", "deals"}
        if unexpected:
            raise _RpcError("unexpected_parameters", f"Unexpected {sorted(unexpected)}")
        deals = params.get("deals")
        if deals is None:
            raise _RpcError("required_parameter_missed", "deals is required", "deals")
        if not isinstance(deals, list) or not 0 < len(deals) <= MAX_DEALS:
            raise _RpcError("invalid_parameter_value", f"deals: 1..{MAX_DEALS} deals", "deals")
        now = self.clock()
        with self._data_lock:
            # Every deal is checked before any is stored: one invalid deal refuses them all.
            checked = [(deal, self._check_deal(deal, i, now)) for i, deal in enumerate(deals)]
            for deal, times in checked:
                modified = times["modified_date_time"] or now.astimezone(self.tz)
                stage_moved = times["modified_stage_date_time"]
                previous = self._deals.get(deal["ext_id"])
                link = self._link(deal, times["created_date_time"])  # type: ignore[arg-type]
                if previous is not None and not (
                    modified > previous["modified"] or stage_moved > previous["stage_moved"]
                ):
                    link = previous["link"]  # links change only when the deal moves on
                self._deals[deal["ext_id"]] = {
                    "fields": dict(deal),
                    "modified": modified,
                    "stage_moved": stage_moved,
                    "link": link,
                }
        return {"data": {}, "metadata": {"limits": self._limits}}

    def _deals_history(self, params: dict[str, Any]) -> dict[str, Any]:
        limit, offset = params.get("limit", 1000), params.get("offset", 0)
        with self._data_lock:
            stored = list(self._deals.values())
        rows = []
        for deal in stored:
            fields, link = deal["fields"], deal["link"]
            row = {name: fields.get(name) for name in DEAL_HISTORY_FIELDS}
            row["communication_id"], row["communication_type"] = link or (None, None)
            row["is_generated"] = False
            rows.append(row)
        page = rows[offset : offset + limit]
        return {"data": page, "metadata": {"total_items": len(rows), "limits": self._limits}}
