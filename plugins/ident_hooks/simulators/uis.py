"""UIS (CoMagic) Data API simulator: JSON-RPC 2.0 ``get.offline_messages_report``.

``POST /v2.0``. Every JSON-RPC error is HTTP 200 with ``error{code,message,data{mnemonic}}``
(a wrong token is ``access_token_invalid``). Periods are ``YYYY-MM-DD hh:mm:ss`` in the
account's time zone, both ends inclusive, at most 3 months apart
(``date_interval_limit_reached``). Only the requested ``fields`` are returned; pages by
``limit`` (≤ 10000) and ``offset`` with ``metadata.total_items`` and ``metadata.limits``.
``minute_limit`` calls per clock minute are allowed, then ``limit_exceeded``;
``inject_rpc_error`` scripts any other error.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from ident_hooks.simulators.base import SimRequest, SimResponse
from ident_hooks.simulators.fake_leads import FakeLead, LeadServingSimulator

METHOD = "get.offline_messages_report"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
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
    def __init__(self, mnemonic: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.mnemonic, self.message, self.field = mnemonic, message, field


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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.access_token = access_token
        self.minute_limit = minute_limit
        self.day_limit = day_limit
        self._scripted_errors: list[tuple[str, str]] = []
        self._calls_by_minute: dict[str, int] = {}
        self._calls_by_day: dict[str, int] = {}
        self._limits: dict[str, int] = {}
        self.route("POST", "/v2.0", self._rpc)

    def inject_rpc_error(self, mnemonic: str, message: str = "", *, times: int = 1) -> None:
        """Answer the next ``times`` calls with this JSON-RPC error (HTTP 200)."""
        with self._data_lock:
            self._scripted_errors.extend([(mnemonic, message or mnemonic)] * times)

    def render(self, lead: FakeLead, serial: int) -> dict[str, Any]:
        serial = serial or self.next_serial()
        referrer = lead.referrer
        host = referrer.split("/")[2].removeprefix("www.") if referrer else None
        search = host in ("yandex.ru", "google.com")
        channel = "direct" if not referrer else ("ad" if lead.utm.get("utm_medium") else "")
        tags = lead.utm if lead.tags_in_fields else {}
        return {
            "id": 5_000_000 + serial,
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
            "channel": channel or ("search" if search else "referral"),
            "campaign_id": 101 if lead.utm else None,
            "campaign_name": lead.utm.get("utm_campaign"),
            "utm_source": tags.get("utm_source"),
            "utm_medium": tags.get("utm_medium"),
            "utm_campaign": tags.get("utm_campaign"),
            "utm_term": tags.get("utm_term"),
            "utm_content": tags.get("utm_content"),
            "gclid": None,
            "yclid": None,
            "ym_client_id": None,
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
            if body.get("method") != METHOD:
                raise _RpcError("method_not_found", f"Method {body.get('method')!r} not found")
            params = body.get("params")
            if not isinstance(params, dict):
                raise _RpcError("invalid_request", "params must be an object")
            if params.get("access_token") != self.access_token:
                raise _RpcError("access_token_invalid", "Access token is invalid")
            self._count_call()
            result = self._report(params)
        except _RpcError as error:
            data: dict[str, Any] = {"mnemonic": error.mnemonic}
            if error.field:
                data.update(field=error.field, value=None)
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
        known = {"access_token", "date_from", "date_till", "limit", "offset", "fields"}
        known |= {"filter", "sort", "user_id"}
        unexpected = set(params) - known
        if unexpected:
            raise _RpcError("unexpected_parameters", f"Unexpected {sorted(unexpected)}")
        date_from, date_till = self._local(params, "date_from"), self._local(params, "date_till")
        if date_till < date_from:
            raise _RpcError("invalid_parameter_value", "date_till before date_from", "date_till")
        if date_till > _add_months(date_from, 3):
            raise _RpcError("date_interval_limit_reached", "Period exceeds 3 months", "date_till")
        limit, offset = params.get("limit", 1000), params.get("offset", 0)
        if not isinstance(limit, int) or not 0 < limit <= 10000:
            raise _RpcError("invalid_parameter_value", "limit must be 1..10000", "limit")
        if not isinstance(offset, int) or offset < 0:
            raise _RpcError("invalid_parameter_value", "offset must be >= 0", "offset")
        fields = params.get("fields") or list(ALL_FIELDS)
        if not isinstance(fields, list) or set(fields) - set(ALL_FIELDS):
            raise _RpcError("invalid_parameter_value", "unknown field in fields", "fields")
        rows = self.records_between(date_from, date_till, end_inclusive=True)
        page = [
            {name: row.get(name) for name in fields} if isinstance(row, dict) else row
            for row in rows[offset : offset + limit]
        ]
        return {"data": page, "metadata": {"total_items": len(rows), "limits": self._limits}}
