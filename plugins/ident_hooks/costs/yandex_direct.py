"""Yandex Direct API v5 Reports: daily costs per campaign.

Where each fact comes from (Yandex's documentation, yandex.com/dev/direct/doc/en/reports —
its pages "headers", "mode", "spec", "codes", "how-to", concepts/errors-list — as
summarised in shared/reference/marketing-apis.md, section C):

* ``POST json/v5/reports`` under ``https://api.direct.yandex.com``, with
  ``Authorization: Bearer <OAuth token>`` and, for an agency's or a representative's token,
  ``Client-Login: <advertiser's login>`` (here the connection's extra of that name, which
  ``HttpHook`` sends as a header).
* Headers: ``processingMode: offline`` (a report built in the service's queue: no time
  limit on the building), ``returnMoneyInMicros: false`` (money with 2 decimals, not
  integers × 1,000,000), ``skipReportHeader: true`` and ``skipReportSummary: true``; the
  column names are kept (``skipColumnHeader`` absent) so that columns are read by name.
* Body ``{"params": {...}}``: ``SelectionCriteria`` with ``DateFrom``/``DateTo``
  (YYYY-MM-DD, only with ``DateRangeType: CUSTOM_DATE``), ``FieldNames``, ``ReportName``,
  ``ReportType: CAMPAIGN_PERFORMANCE_REPORT``, ``Format: TSV`` and ``IncludeVAT``
  (``YES``/``NO``, required; ``IncludeDiscount`` is legacy and not sent).
* 200: the report is in the body; 201: queued (offline); 202: still building — repeat the
  *identical* request after the ``retryIn`` header's seconds. 400: the request is wrong
  (refused at once, the service's ``error_code``/``error_string``/``error_detail`` in the
  message: 53 an invalid token, 4000 a ReportName reused with other parameters); 500 and
  502 are retried by the client.
* In offline mode a ``ReportName`` is unique per advertiser and the same name with other
  parameters is refused (400, 4000), so the name is a hash of the parameters: the same
  request keeps its name (a task's retry finds the report the service built), another
  period gets another name.
* TSV, UTF-8: optionally a first line with the quoted report name and dates, the column
  names, data rows and a last line ``Total rows: N`` — each optional line is tolerated
  whether asked for or not. Days without statistics have no row. Absent values are ``--``.
  Money is in the account's currency (the report does not name it), with VAT as
  ``IncludeVAT`` says.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import time
from collections.abc import Callable
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from ident_hooks.costs import CampaignDay, CostReportNotReady, CostReportRefused
from ident_hooks.http_client import ServiceClient
from ident_hooks.registry import YANDEX_DIRECT_BEARER

log = logging.getLogger(__name__)

FIELD_NAMES = ("Date", "CampaignId", "CampaignName", "Impressions", "Clicks", "Cost")
ABSENT = "--"


class YandexDirectReports:
    """Campaign costs per day from Yandex Direct's Reports service (see the module's
    docstring for the source of each fact)."""

    auth = YANDEX_DIRECT_BEARER
    endpoint: ClassVar[str] = "json/v5/reports"
    headers: ClassVar[dict[str, str]] = {
        "processingMode": "offline",
        "returnMoneyInMicros": "false",
        "skipReportHeader": "true",
        "skipReportSummary": "true",
    }
    # How long one task waits for the service to build a report (its retryIn, summed), in
    # at most this many polls; past either the task fails retryably and its retry asks
    # for the same report again.
    max_wait_seconds: ClassVar[float] = 300.0
    max_polls: ClassVar[int] = 20

    @classmethod
    def client(cls, conn_id: str, **options: Any) -> ServiceClient:
        return ServiceClient(conn_id, auth=cls.auth, **options)

    @staticmethod
    def report_params(date_from: date, date_to: date, *, include_vat: bool) -> dict[str, Any]:
        """The report's parameters, named by a hash of everything else they say."""
        params: dict[str, Any] = {
            "SelectionCriteria": {
                "DateFrom": date_from.isoformat(),
                "DateTo": date_to.isoformat(),
            },
            "FieldNames": list(FIELD_NAMES),
            "ReportType": "CAMPAIGN_PERFORMANCE_REPORT",
            "DateRangeType": "CUSTOM_DATE",
            "Format": "TSV",
            "IncludeVAT": "YES" if include_vat else "NO",
        }
        digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()
        return {**params, "ReportName": f"ident-costs-{digest[:32]}"}

    @classmethod
    def fetch(
        cls,
        client: ServiceClient,
        date_from: date,
        date_to: date,
        *,
        include_vat: bool,
        sleep: Callable[[float], None] = time.sleep,
    ) -> list[CampaignDay]:
        """Every campaign's days of ``date_from``..``date_to``, waiting for an offline
        report as the service asks (``retryIn``) within this task's bounds."""
        params = cls.report_params(date_from, date_to, include_vat=include_vat)
        waited = 0.0
        for _ in range(cls.max_polls):
            response = client.request(
                "POST", cls.endpoint, json={"params": params}, headers=cls.headers
            )
            if response.status_code == 200:
                response.encoding = "utf-8"
                return cls.parse_tsv(response.text)
            retry_in = cls._retry_in(response.headers.get("retryIn"))
            log.info(
                "report %s for %s..%s: HTTP %d (%s), asking again in %.0f s",
                params["ReportName"],
                date_from,
                date_to,
                response.status_code,
                "queued" if response.status_code == 201 else "building",
                retry_in,
            )
            if waited + retry_in > cls.max_wait_seconds:
                break
            sleep(retry_in)
            waited += retry_in
        raise CostReportNotReady(
            f"Yandex Direct is still building report {params['ReportName']} for "
            f"{date_from}..{date_to} after {waited:.0f} s; the task's retry asks for it again"
        )

    @staticmethod
    def _retry_in(value: str | None) -> float:
        try:
            return max(0.0, float(value)) if value else 1.0
        except ValueError:
            return 1.0

    @classmethod
    def parse_tsv(cls, text: str) -> list[CampaignDay]:
        """The rows of a TSV report, columns read by name; the optional report-name line
        and ``Total rows`` line are skipped."""
        lines = [line for line in text.splitlines() if line.strip()]
        if lines and lines[-1].startswith("Total rows"):
            lines.pop()
        if lines and lines[0].startswith('"') and "\t" not in lines[0]:
            lines.pop(0)  # "<report name> (<date from> - <date to>)"
        if not lines:
            return []
        reader = csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        missing = [name for name in FIELD_NAMES if name not in header]
        if missing:
            raise CostReportRefused(
                f"the Yandex Direct report lacks the columns {', '.join(missing)} "
                f"(its first line: {lines[0][:200]!r})"
            )
        column = {name: header.index(name) for name in FIELD_NAMES}
        rows = []
        for number, values in enumerate(reader, start=2):
            if len(values) != len(header):
                raise CostReportRefused(
                    f"line {number} of the Yandex Direct report has {len(values)} values "
                    f"for {len(header)} columns"
                )
            try:
                rows.append(
                    CampaignDay(
                        day=date.fromisoformat(values[column["Date"]]),
                        campaign_id=int(values[column["CampaignId"]]),
                        campaign=values[column["CampaignName"]],
                        impressions=_count(values[column["Impressions"]]),
                        clicks=_count(values[column["Clicks"]]),
                        cost=_money(values[column["Cost"]]),
                    )
                )
            except (ValueError, InvalidOperation) as error:
                raise CostReportRefused(
                    f"line {number} of the Yandex Direct report cannot be read: {error}"
                ) from None
        return rows


def _count(value: str) -> int:
    return 0 if value == ABSENT else int(value)


def _money(value: str) -> Decimal:
    amount = Decimal("0") if value == ABSENT else Decimal(value)
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"cost {value!r}")
    return amount
