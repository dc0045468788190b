"""Weekly chart series for the reports page, read from the report tables.

Three small queries (:func:`read_weekly_charts`) and pure functions that shape their rows
into series aligned on the same weeks (Mondays, oldest first), so the page only draws:

* leads by channel per week (``report.leads_daily``), one series per channel that had leads;
* the share of leads answered within 5 minutes per week (``report.response_time``);
* conversion by campaign over the whole period (``report.leads_daily``), the campaigns
  with the most leads first;
* cost per new patient and ROMI by campaign over the whole period
  (``report.campaign_roi``, :func:`read_campaign_returns`), the costliest campaigns first;
* new and returning patients and calls by channel over the whole period
  (``report.patients_by_channel``, ``report.calls_daily``, :func:`read_channel_people`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

import psycopg

from ident_hooks.reports.channel_codes import CHANNELS

DEFAULT_WEEKS = 12
DEFAULT_CAMPAIGNS = 10


@dataclass(frozen=True)
class CampaignConversion:
    utm_campaign: str
    utm_source: str | None
    utm_medium: str | None
    leads: int
    converted_leads: int
    conversion_rate: float | None  # converted / leads, 4 places; None without leads


@dataclass(frozen=True)
class CampaignReturn:
    """One campaign's costs and returns summed over a period; ratios from the sums."""

    cost_source: str
    campaign_id: int
    campaign: str
    cost: Decimal
    leads: int
    visits: int
    new_patients: int
    revenue: Decimal
    visits_without_amount: int
    cost_per_new_patient: Decimal | None  # 2 places; None without new patients
    romi: Decimal | None  # (revenue - cost) / cost, 4 places; None without cost


@dataclass(frozen=True)
class ChannelPeople:
    """One channel over a period: its leads and people, new and returning, and its calls.

    People are counted per week (``report.patients_by_channel``) and calls' callers per day
    (``report.calls_daily``), then summed: one person with leads in two weeks counts twice.
    """

    channel: str
    leads: int
    people: int
    new_patients: int
    returning_patients: int
    leads_per_person: Decimal | None  # 2 places; None without people
    calls: int
    callers: int


@dataclass(frozen=True)
class WeeklyCharts:
    weeks: list[date]  # Mondays, oldest first: the x axis of the first two charts
    leads_by_channel: dict[str, list[int]]  # channel -> leads per week
    answered_in_5_min_share: list[float | None]  # per week; None when there were no leads
    conversion_by_campaign: list[CampaignConversion]

    def as_dict(self) -> dict:
        """JSON-ready: dates as ISO strings."""
        data = asdict(self)
        data["weeks"] = [week.isoformat() for week in self.weeks]
        return data


def week_axis(today: date, count: int = DEFAULT_WEEKS) -> list[date]:
    """The ``count`` weeks up to and including ``today``'s, as Mondays, oldest first."""
    if count < 1:
        raise ValueError("a chart needs at least one week")
    this_week = today - timedelta(days=today.weekday())
    return [this_week - timedelta(weeks=n) for n in range(count - 1, -1, -1)]


def _share(part: int, whole: int) -> float | None:
    if not whole:
        return None
    return float((Decimal(part) / Decimal(whole)).quantize(Decimal("0.0001"), ROUND_HALF_UP))


def leads_by_channel(rows: Iterable[tuple[date, str, int]], weeks: list[date]) -> dict:
    """``(week, channel, leads)`` rows -> ``{channel: [leads per week]}``.

    Channels in the order of :data:`CHANNELS` (unknown ones after, by name); a channel
    with no leads in these weeks is left out; rows outside the weeks are ignored.
    """
    position = {week: index for index, week in enumerate(weeks)}
    series: dict[str, list[int]] = {}
    for week, channel, leads in rows:
        if week in position and leads:
            series.setdefault(channel, [0] * len(weeks))[position[week]] += int(leads)
    order = list(CHANNELS)

    def rank(channel: str) -> tuple[int, str]:
        return (order.index(channel) if channel in order else len(order), channel)

    return {channel: series[channel] for channel in sorted(series, key=rank)}


def answered_share(rows: Iterable[tuple[date, int, int]], weeks: list[date]) -> list:
    """``(week, leads, answered_in_5_min)`` rows -> the share answered in 5 min per week."""
    totals = {week: [0, 0] for week in weeks}
    for week, leads, answered in rows:
        if week in totals:
            totals[week][0] += int(leads)
            totals[week][1] += int(answered)
    return [_share(totals[week][1], totals[week][0]) for week in weeks]


def conversion_by_campaign(
    rows: Iterable[tuple[str, str | None, str | None, int, int]],
    limit: int = DEFAULT_CAMPAIGNS,
) -> list[CampaignConversion]:
    """``(utm_campaign, utm_source, utm_medium, leads, converted)`` rows -> the ``limit``
    campaigns with the most leads (ties by name), with their conversion rate."""
    totals: dict[tuple, list[int]] = {}
    for campaign, source, medium, leads, converted in rows:
        total = totals.setdefault((campaign, source, medium), [0, 0])
        total[0] += int(leads)
        total[1] += int(converted)
    campaigns = [
        CampaignConversion(campaign, source, medium, leads, converted, _share(converted, leads))
        for (campaign, source, medium), (leads, converted) in totals.items()
        if leads
    ]
    campaigns.sort(key=lambda c: (-c.leads, c.utm_campaign, c.utm_source or "", c.utm_medium or ""))
    return campaigns[:limit]


def campaign_returns(rows: Iterable[tuple], limit: int = DEFAULT_CAMPAIGNS) -> list[CampaignReturn]:
    """``(cost_source, campaign_id, campaign, cost, leads, visits, new_patients, revenue,
    visits_without_amount)`` rows (one per week) -> the ``limit`` campaigns that cost the
    most (ties by name), each summed over its rows."""
    totals: dict[tuple, list] = {}
    names: dict[tuple, str] = {}
    for source, campaign_id, campaign, *measures in rows:
        key = (source, campaign_id)
        names[key] = campaign
        total = totals.setdefault(key, [Decimal(0), 0, 0, 0, Decimal(0), 0])
        for index, value in enumerate(measures):
            total[index] += value
    cent, basis_point = Decimal("0.01"), Decimal("0.0001")
    campaigns = [
        CampaignReturn(
            source,
            campaign_id,
            names[source, campaign_id],
            cost,
            leads,
            visits,
            new_patients,
            revenue,
            without_amount,
            (cost / new_patients).quantize(cent, ROUND_HALF_UP) if new_patients else None,
            ((revenue - cost) / cost).quantize(basis_point, ROUND_HALF_UP) if cost else None,
        )
        for (source, campaign_id), (
            cost,
            leads,
            visits,
            new_patients,
            revenue,
            without_amount,
        ) in totals.items()
    ]
    campaigns.sort(key=lambda c: (-c.cost, c.campaign, c.cost_source, c.campaign_id))
    return campaigns[:limit]


def read_campaign_returns(
    conn: psycopg.Connection,
    *,
    today: date,
    weeks: int = DEFAULT_WEEKS,
    campaigns: int = DEFAULT_CAMPAIGNS,
) -> list[CampaignReturn]:
    """Cost per new patient and ROMI of the campaigns with known costs, over the ``weeks``
    weeks up to ``today``'s (clinic-local date)."""
    first = week_axis(today, weeks)[0]
    rows = conn.execute(
        "select cost_source, campaign_id, campaign, cost, leads, visits, new_patients,"
        "       revenue, visits_without_amount"
        "  from report.campaign_roi"
        " where week >= %s and cost_source is not null",
        (first,),
    ).fetchall()
    return campaign_returns(rows, campaigns)


def read_channel_people(
    conn: psycopg.Connection, *, today: date, weeks: int = DEFAULT_WEEKS
) -> list[ChannelPeople]:
    """New and returning patients, leads per person and calls per channel over the
    ``weeks`` weeks up to ``today``'s, the channels with the most leads first."""
    axis = week_axis(today, weeks)
    rows = conn.execute(
        """
        with people as (
            select channel, sum(leads) as leads, sum(people) as people,
                   sum(new_patients) as new_patients,
                   sum(returning_patients) as returning_patients
              from report.patients_by_channel where week >= %(first)s group by channel
        ),
        calls as (
            select channel, sum(calls) as calls, sum(callers) as callers
              from report.calls_daily where day >= %(first)s group by channel
        )
        select channel, coalesce(p.leads, 0), coalesce(p.people, 0),
               coalesce(p.new_patients, 0), coalesce(p.returning_patients, 0),
               round(p.leads::numeric / nullif(p.people, 0), 2),
               coalesce(c.calls, 0), coalesce(c.callers, 0)
          from people p full join calls c using (channel)
         order by 2 desc, 7 desc, channel
        """,
        {"first": axis[0]},
    ).fetchall()
    return [ChannelPeople(*row) for row in rows]


def read_weekly_charts(
    conn: psycopg.Connection,
    *,
    today: date,
    weeks: int = DEFAULT_WEEKS,
    campaigns: int = DEFAULT_CAMPAIGNS,
) -> WeeklyCharts:
    """The three charts for the ``weeks`` weeks up to ``today``'s (clinic-local date)."""
    axis = week_axis(today, weeks)
    period = {"first": axis[0], "after": axis[-1] + timedelta(days=7)}
    channel_rows = conn.execute(
        "select date_trunc('week', day)::date, channel, sum(leads)"
        "  from report.leads_daily where day >= %(first)s and day < %(after)s"
        " group by 1, 2",
        period,
    ).fetchall()
    answer_rows = conn.execute(
        "select date_trunc('week', day)::date, sum(leads), sum(answered_in_5_min)"
        "  from report.response_time where day >= %(first)s and day < %(after)s"
        " group by 1",
        period,
    ).fetchall()
    campaign_rows = conn.execute(
        "select utm_campaign, utm_source, utm_medium, sum(leads), sum(converted_leads)"
        "  from report.leads_daily"
        " where day >= %(first)s and day < %(after)s and utm_campaign is not null"
        " group by 1, 2, 3",
        period,
    ).fetchall()
    return WeeklyCharts(
        weeks=axis,
        leads_by_channel=leads_by_channel(channel_rows, axis),
        answered_in_5_min_share=answered_share(answer_rows, axis),
        conversion_by_campaign=conversion_by_campaign(campaign_rows, campaigns),
    )
