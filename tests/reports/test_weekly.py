"""Weekly chart series: the pure shaping functions, then read from the hand-computed tables."""

from __future__ import annotations

from datetime import date

import psycopg
import pytest
from hand_dataset import NOW

from ident_hooks.reports.weekly import (
    CampaignConversion,
    answered_share,
    conversion_by_campaign,
    leads_by_channel,
    read_weekly_charts,
    week_axis,
)

W1, W2, W3 = date(2026, 10, 19), date(2026, 10, 26), date(2026, 11, 2)


def test_week_axis_ends_with_the_current_week():
    assert week_axis(date(2026, 11, 4), 3) == [W1, W2, W3]
    assert week_axis(date(2026, 11, 2), 1) == [W3]  # a Monday is its own week
    assert week_axis(date(2026, 11, 8), 1) == [W3]  # ... and so is the Sunday after
    with pytest.raises(ValueError, match="at least one week"):
        week_axis(date(2026, 11, 4), 0)


def test_leads_by_channel_aligns_weeks_and_orders_channels():
    rows = [
        (W3, "direct", 2),
        (W1, "paid", 5),
        (W3, "paid", 1),
        (W3, "aggregator", 4),
        (W3, "social", 0),  # no leads: no series
        (date(2026, 10, 12), "email", 9),  # before the first week: ignored
        (W2, "newchannel", 1),
    ]
    assert leads_by_channel(rows, [W1, W2, W3]) == {
        "aggregator": [0, 0, 4],
        "paid": [5, 0, 1],
        "direct": [0, 0, 2],
        "newchannel": [0, 1, 0],
    }


def test_answered_share_is_none_for_a_week_without_leads():
    rows = [(W1, 3, 1), (W3, 4, 4), (W3, 2, 0)]
    assert answered_share(rows, [W1, W2, W3]) == [0.3333, None, 0.6667]


def test_conversion_by_campaign_takes_the_biggest_first():
    rows = [
        ("b", "google", "cpc", 2, 1),
        ("a", "yandex", "cpc", 3, 0),
        ("b", "google", "cpc", 2, 2),  # the same campaign on another row: added up
        ("c", None, None, 4, 1),
        ("d", "vk", "social", 0, 0),  # spam only: left out
    ]
    assert conversion_by_campaign(rows, limit=2) == [
        CampaignConversion("b", "google", "cpc", 4, 3, 0.75),
        CampaignConversion("c", None, None, 4, 1, 0.25),
    ]


def test_read_from_the_report_tables(clinic, build, clinic_db_url):
    build()
    with psycopg.connect(clinic_db_url) as conn:
        charts = read_weekly_charts(conn, today=NOW.date(), weeks=3)
    assert charts.weeks == [W1, W2, W3]
    # Week of 2 Nov: paid L2, L3, L7, L12; aggregator L5, L8; social L10 (L6 is spam);
    # organic L9; referral L11; direct L4. Week of 19 Oct: L1.
    assert charts.leads_by_channel == {
        "aggregator": [0, 0, 2],
        "paid": [1, 0, 4],
        "social": [0, 0, 1],
        "organic": [0, 0, 1],
        "referral": [0, 0, 1],
        "direct": [0, 0, 1],
    }
    # 2 Nov week: 10 leads, answered in 5 min: L2, L5, L7, L8, L9, L12.
    assert charts.answered_in_5_min_share == [1.0, None, 0.6]
    assert charts.conversion_by_campaign == [
        CampaignConversion("implant", "yandex", "cpc", 3, 1, 0.3333),
        CampaignConversion("brand", "google", "cpc", 2, 1, 0.5),
        CampaignConversion("autumn", None, None, 1, 0, 0.0),
        CampaignConversion("catalog", "32top", "referral", 1, 1, 1.0),
    ]
    assert charts.as_dict()["weeks"] == ["2026-10-19", "2026-10-26", "2026-11-02"]
