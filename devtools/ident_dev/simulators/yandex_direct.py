"""Yandex Direct API v5 Reports, as shared/reference/marketing-apis.md section C describes
it (from yandex.com/dev/direct/doc/en/reports: headers, mode, spec, codes).

``POST /json/v5/reports`` with ``Authorization: Bearer <token>``. Refused, as the service
does, with HTTP 400 and ``{"error": {"request_id", "error_code", "error_string",
"error_detail"}}`` (``RequestId`` header too): a wrong or missing token (53); a body
without ``params``, ``IncludeVAT``, ``ReportName``, ``FieldNames``, ``ReportType`` or a
``CUSTOM_DATE`` period (8000); a ``ReportName`` used before with other parameters (4000,
in offline mode names are unique per advertiser). Offline (``processingMode: offline``) a
new report is answered 201 (queued), then 202 (building) and then 200, each with
``retryIn`` until it is ready; ``auto``/absent builds a small report at once (200). The
200 body is TSV: unless ``skipReportHeader: true`` a quoted first line with the report's
name and dates, unless ``skipColumnHeader: true`` the column names, the rows (a day a
campaign had no statistics has none), unless ``skipReportSummary: true`` a last line
``Total rows: N``. Money with two decimals under ``returnMoneyInMicros: false``, else
micros; with VAT per ``IncludeVAT`` (20 %).

The advertiser's campaigns (``campaigns``: name -> id) get plausible daily statistics,
fixed by the seed, campaign and day, so a report asked twice says the same.
"""

from __future__ import annotations

import hashlib
import random
import threading
import uuid
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from ident_dev.simulators.base import SimRequest, SimResponse, SimulatorServer

REPORTS_PATH = "/json/v5/reports"
VAT = Decimal("1.20")
# The demo's paid campaigns on Yandex (ident_dev.demo TRAFFIC, utm_source yandex): the
# campaigns are named as they are tagged, so costs and leads join by campaign.
DEMO_CAMPAIGNS = {
    "implant_msk": 70_112_301,
    "kids_dentistry": 70_112_302,
    "implant_all_on_4": 70_112_303,
    "whitening_promo": 70_112_304,
}
KNOWN_FIELDS = {"Date", "CampaignId", "CampaignName", "Impressions", "Clicks", "Cost"}


class YandexDirectSimulator(SimulatorServer):
    name = "yandex_direct"

    def __init__(
        self,
        *,
        token: str,
        campaigns: dict[str, int] | None = None,
        seed: int = 0,
        retry_in: int = 2,
        **server: Any,
    ) -> None:
        super().__init__(**server)
        self.token = token
        self.campaigns = dict(DEMO_CAMPAIGNS if campaigns is None else campaigns)
        self.seed = seed
        self.retry_in = retry_in
        self._reports: dict[str, dict[str, Any]] = {}  # ReportName -> params, polls so far
        self._report_lock = threading.Lock()
        self.route("POST", REPORTS_PATH, self._report)

    # -- the advertiser's statistics ------------------------------------
    def day_stats(self, campaign: str, day: date) -> tuple[int, int, Decimal] | None:
        """Impressions, clicks and cost without VAT of one campaign's day (None: none)."""
        key = f"{self.seed}:{campaign}:{day.isoformat()}".encode()
        rng = random.Random(int.from_bytes(hashlib.sha256(key).digest()[:8], "big"))
        if rng.random() < 0.1:  # a day the campaign did not run
            return None
        impressions = rng.randint(300, 4000)
        clicks = max(1, int(impressions * rng.uniform(0.02, 0.08)))
        cost = (Decimal(clicks) * Decimal(str(round(rng.uniform(25, 140), 2)))).quantize(
            Decimal("0.01")
        )
        return impressions, clicks, cost

    # -- the protocol ----------------------------------------------------
    def authorize(self, request: SimRequest) -> SimResponse | None:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return _error(53, "Authorization error", "Invalid OAuth token")
        return None

    def _report(self, request: SimRequest) -> SimResponse:
        body = request.json() or {}
        params = body.get("params") if isinstance(body, dict) else None
        if not isinstance(params, dict):
            return _error(8000, "Invalid request", "Required field params is not set")
        for required in ("SelectionCriteria", "FieldNames", "ReportName", "ReportType",
                         "DateRangeType", "Format", "IncludeVAT"):  # fmt: skip
            if required not in params:
                return _error(8000, "Invalid request", f"Required field {required} is not set")
        if params["IncludeVAT"] not in ("YES", "NO"):
            return _error(8000, "Invalid request", "IncludeVAT must be YES or NO")
        unknown = set(params["FieldNames"]) - KNOWN_FIELDS
        if unknown or params["ReportType"] != "CAMPAIGN_PERFORMANCE_REPORT":
            return _error(4000, "Invalid request parameters", f"Unsupported fields {unknown}")
        if params["DateRangeType"] != "CUSTOM_DATE":
            return _error(4000, "Invalid request parameters", "Only CUSTOM_DATE is simulated")
        criteria = params["SelectionCriteria"]
        try:
            date_from = date.fromisoformat(criteria["DateFrom"])
            date_to = date.fromisoformat(criteria["DateTo"])
        except (KeyError, TypeError, ValueError):
            return _error(8000, "Invalid request", "DateFrom and DateTo are YYYY-MM-DD")
        mode = request.headers.get("processingmode", "auto")
        name = params["ReportName"]
        with self._report_lock:
            known = self._reports.get(name)
            if known is not None and known["params"] != params:
                return _error(
                    4000,
                    "Invalid request parameters",
                    f"Report with name {name} already exists with different parameters",
                )
            if mode == "offline":
                if known is None:
                    known = self._reports[name] = {"params": params, "polls": 0}
                known["polls"] += 1
                if known["polls"] == 1:
                    return SimResponse(201, "", {"retryIn": str(self.retry_in)})
                if known["polls"] == 2:
                    return SimResponse(202, "", {"retryIn": str(self.retry_in)})
        return SimResponse(200, self._tsv(request, params, date_from, date_to))

    def _tsv(self, request: SimRequest, params: dict, date_from: date, date_to: date) -> str:
        fields = params["FieldNames"]
        with_vat = params["IncludeVAT"] == "YES"
        micros = request.headers.get("returnmoneyinmicros", "true") != "false"
        lines = []
        if request.headers.get("skipreportheader") != "true":
            lines.append(f'"{params["ReportName"]} ({date_from} - {date_to})"')
        if request.headers.get("skipcolumnheader") != "true":
            lines.append("\t".join(fields))
        rows = 0
        day = date_from
        while day <= date_to:
            for campaign, campaign_id in self.campaigns.items():
                stats = self.day_stats(campaign, day)
                if stats is None:
                    continue
                impressions, clicks, cost = stats
                if with_vat:
                    cost = (cost * VAT).quantize(Decimal("0.01"), ROUND_HALF_UP)
                values = {
                    "Date": day.isoformat(),
                    "CampaignId": str(campaign_id),
                    "CampaignName": campaign,
                    "Impressions": str(impressions),
                    "Clicks": str(clicks),
                    "Cost": str(int(cost * 1_000_000)) if micros else f"{cost:.2f}",
                }
                lines.append("\t".join(values[field] for field in fields))
                rows += 1
            day += timedelta(days=1)
        if request.headers.get("skipreportsummary") != "true":
            lines.append(f"Total rows: {rows}")
        return "\n".join(lines) + "\n"


def _error(code: int, message: str, detail: str) -> SimResponse:
    request_id = uuid.uuid4().hex
    return SimResponse(
        400,
        {
            "error": {
                "request_id": request_id,
                "error_code": code,
                "error_string": message,
                "error_detail": detail,
            }
        },
        {"RequestId": request_id},
    )
