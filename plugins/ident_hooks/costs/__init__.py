"""Ad costs: what advertising platforms charged, per day and campaign.

A cost source's connector (``ident_hooks.registry.COST_SOURCE_KINDS``, e.g.
:mod:`ident_hooks.costs.yandex_direct`) knows one platform's report protocol and returns
:class:`CampaignDay` rows for a period of days; :mod:`ident_hooks.costs.store` replaces
those days in ``report.ad_costs``; :func:`period_to_import` is the daily rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from ident_hooks.errors import PermanentFailure, TransientFailure


@dataclass(frozen=True)
class CampaignDay:
    """One campaign's statistics for one day, money in the account's currency."""

    day: date
    campaign_id: int
    campaign: str
    impressions: int
    clicks: int
    cost: Decimal
    currency: str | None = None


class CostReportRefused(PermanentFailure):
    """The platform's report cannot be used as it came (unknown columns, a bad value, a
    day outside the period asked for): importing it would replace good rows with wrong
    ones, so nothing of it is stored."""


class CostReportNotReady(TransientFailure):
    """The platform is still building the report after every wait this task allows: a
    retry of the task asks again for the same report and finds it further along."""


def period_to_import(now: datetime, clinic_timezone: str, days_back: int) -> tuple[date, date]:
    """The ``days_back`` days up to yesterday in the clinic's time zone: a day is imported
    once it is over, and read again while the platform may still revise it."""
    yesterday = now.astimezone(ZoneInfo(clinic_timezone)).date() - timedelta(days=1)
    return yesterday - timedelta(days=days_back - 1), yesterday
