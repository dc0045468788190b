"""``report.ad_costs``: an import replaces its days for its source, all or nothing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from ident_hooks.costs import CampaignDay, CostReportRefused


def replace_days(
    conn: Any,
    source: str,
    date_from: date,
    date_to: date,
    rows: Sequence[CampaignDay],
    *,
    vat_included: bool,
) -> int:
    """Replace the rows of ``source`` for ``date_from``..``date_to`` with ``rows`` in one
    transaction, committed here (a day the platform has no statistics for ends up empty);
    returns how many rows were stored. Importing the same days twice leaves the same rows."""
    outside = sorted({row.day for row in rows if not date_from <= row.day <= date_to})
    if outside:
        raise CostReportRefused(
            f"the report of {source} for {date_from}..{date_to} holds other days: "
            + ", ".join(day.isoformat() for day in outside)
        )
    try:
        conn.execute(
            "delete from report.ad_costs where source = %s and day between %s and %s",
            (source, date_from, date_to),
        )
        with conn.cursor() as cursor:
            cursor.executemany(
                """
                insert into report.ad_costs (source, day, campaign_id, campaign,
                    impressions, clicks, cost, currency, vat_included)
                values (%s, %s, %s, %s, %s, %s, %s, %s, %s)
                """,
                [
                    (
                        source,
                        row.day,
                        row.campaign_id,
                        row.campaign,
                        row.impressions,
                        row.clicks,
                        row.cost,
                        row.currency,
                        vat_included,
                    )
                    for row in rows
                ],
            )
    except BaseException:
        conn.rollback()
        raise
    conn.commit()
    return len(rows)
