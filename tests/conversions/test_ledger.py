"""The conversion ledger: what was delivered is written once, and uploads are followed."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import psycopg
import pytest

from ident_hooks.conversions import ConversionEvent, Delivery, Upload
from ident_hooks.conversions.ledger import record_deliveries, unfinished_uploads, update_upload

MOSCOW = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=MOSCOW)


def _event(lead_id: int, event: str = "lead", **fields) -> ConversionEvent:
    return ConversionEvent(
        event=event, lead_id=lead_id, occurred_at=NOW - timedelta(days=1),
        lead_created_at=NOW - timedelta(days=3), source="tilda", source_kind="tilda",
        external_id=f"t-{lead_id}", **fields,
    )  # fmt: skip


def _sent(conn) -> list[tuple]:
    rows = conn.execute(
        "select sink, event, lead_id, appointment_id, occurred_at, amount, channel, upload_id,"
        " sent_at from integration.conversions_sent order by sink, event, lead_id"
    ).fetchall()
    conn.commit()
    return rows


def _uploads(conn) -> list[tuple]:
    rows = conn.execute(
        "select sink, upload_id, channel, uploaded_at, rows_sent, status, finished,"
        " line_quantity, linked_quantity, goal_not_found_quantity, user_not_found_quantity,"
        " checked_at from integration.conversion_uploads order by sink, upload_id"
    ).fetchall()
    conn.commit()
    return rows


def test_deliveries_are_written_with_their_upload_and_a_second_time_changes_nothing(
    conversions_db,
):
    visit = _event(1, "first_visit", appointment_id="a-1", amount=Decimal("4500.00"))
    deliveries = [
        Delivery(Upload("17", "offline_conversions", 2, status="UPLOADED"), (_event(1), visit)),
        Delivery(Upload("18", "simple_orders", 1, status="UPLOADED"), (_event(2),)),
    ]
    assert record_deliveries(conversions_db, "metrica", deliveries, now=NOW) == 3
    day_ago = NOW - timedelta(days=1)
    expected_sent = [
        ("metrica", "first_visit", 1, "a-1", day_ago, Decimal("4500.00"),
         "offline_conversions", "17", NOW),
        ("metrica", "lead", 1, None, day_ago, None, "offline_conversions", "17", NOW),
        ("metrica", "lead", 2, None, day_ago, None, "simple_orders", "18", NOW),
    ]  # fmt: skip
    assert _sent(conversions_db) == expected_sent
    expected_uploads = [
        ("metrica", "17", "offline_conversions", NOW, 2, "UPLOADED", False,
         None, None, None, None, NOW),
        ("metrica", "18", "simple_orders", NOW, 1, "UPLOADED", False,
         None, None, None, None, NOW),
    ]  # fmt: skip
    assert _uploads(conversions_db) == expected_uploads

    later = NOW + timedelta(hours=1)
    assert record_deliveries(conversions_db, "metrica", deliveries, now=later) == 0
    assert (_sent(conversions_db), _uploads(conversions_db)) == (expected_sent, expected_uploads)
    # The same lead in another sink is that sink's own conversion.
    assert record_deliveries(conversions_db, "uis_deals", deliveries[1:], now=later) == 1


def test_a_failed_write_leaves_nothing_of_the_deliveries(conversions_db):
    deliveries = [
        Delivery(Upload("17", "offline_conversions", 1), (_event(1),)),
        Delivery(Upload("18", "offline_conversions", 1), (_event(2, "purchase"),)),
    ]
    with pytest.raises(psycopg.errors.CheckViolation, match="conversion_event_known"):
        record_deliveries(conversions_db, "metrica", deliveries, now=NOW)
    assert (_sent(conversions_db), _uploads(conversions_db)) == ([], [])


def test_unfinished_uploads_are_listed_until_the_service_finishes_them(conversions_db):
    record_deliveries(
        conversions_db, "metrica",
        [
            Delivery(Upload("17", "offline_conversions", 2, status="UPLOADED"), (_event(1),)),
            Delivery(Upload("18", "offline_conversions", 1, status="PROCESSED", finished=True,
                            line_quantity=1, linked_quantity=1), (_event(2),)),
        ],
        now=NOW,
    )  # fmt: skip
    record_deliveries(
        conversions_db, "other",
        [Delivery(Upload("19", "offline_conversions", 1), (_event(3),))],
        now=NOW - timedelta(hours=1),
    )  # fmt: skip
    (pending,) = unfinished_uploads(conversions_db, "metrica")
    assert pending == Upload("17", "offline_conversions", 2, status="UPLOADED")

    processed = Upload(
        "17", "offline_conversions", 2, status="PROCESSED", finished=True, line_quantity=2,
        linked_quantity=1, goal_not_found_quantity=0, user_not_found_quantity=1,
    )  # fmt: skip
    checked = NOW + timedelta(hours=2)
    update_upload(conversions_db, "metrica", processed, now=checked)
    assert unfinished_uploads(conversions_db, "metrica") == []
    assert [row for row in _uploads(conversions_db) if row[1] == "17"] == [
        ("metrica", "17", "offline_conversions", NOW, 2, "PROCESSED", True, 2, 1, 0, 1, checked)
    ]
    # Another sink's upload of the same id is not touched.
    assert [u.upload_id for u in unfinished_uploads(conversions_db, "other")] == ["19"]
