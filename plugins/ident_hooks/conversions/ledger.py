"""What a sink has sent: ``integration.conversions_sent`` (one row per conversion, so a
conversion goes once) and ``integration.conversion_uploads`` (each upload as the service
last reported it).

A delivery is written after the service accepted it, its upload and its conversions in
one transaction: either the conversions are marked as sent and their upload is followed,
or neither (and they go again next run).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, astuple, fields
from datetime import datetime

import psycopg
from psycopg.rows import dict_row

from ident_hooks.conversions import Delivery, Upload

_UPLOAD_COLUMNS = [f.name for f in fields(Upload)]

_INSERT_UPLOAD = f"""
insert into integration.conversion_uploads
       (sink, uploaded_at, checked_at, {", ".join(_UPLOAD_COLUMNS)})
values (%s, %s, %s, {", ".join(["%s"] * len(_UPLOAD_COLUMNS))})
on conflict (sink, upload_id) do nothing
"""

_INSERT_SENT = """
insert into integration.conversions_sent
       (sink, event, lead_id, appointment_id, occurred_at, amount, channel, upload_id, sent_at)
values (%s, %s, %s, %s, %s, %s, %s, %s, %s)
on conflict (sink, event, lead_id) do nothing
"""

_UPDATE_UPLOAD = f"""
update integration.conversion_uploads
   set {", ".join(f"{name} = %({name})s" for name in _UPLOAD_COLUMNS if name != "upload_id")},
       checked_at = %(checked_at)s
 where sink = %(sink)s and upload_id = %(upload_id)s
"""


def record_deliveries(
    conn: psycopg.Connection, sink: str, deliveries: Sequence[Delivery], *, now: datetime
) -> int:
    """Write ``deliveries`` of the sink named ``sink`` in one transaction and commit;
    return how many conversions were new to the ledger (one recorded before is kept as it
    was)."""
    recorded = 0
    try:
        with conn.cursor() as cursor:
            for delivery in deliveries:
                upload = delivery.upload
                cursor.execute(_INSERT_UPLOAD, (sink, now, now, *astuple(upload)))
                for event in delivery.events:
                    cursor.execute(
                        _INSERT_SENT,
                        (
                            sink,
                            event.event,
                            event.lead_id,
                            event.appointment_id,
                            event.occurred_at,
                            event.amount,
                            upload.channel,
                            upload.upload_id,
                            now,
                        ),
                    )
                    recorded += cursor.rowcount
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return recorded


def unfinished_uploads(conn: psycopg.Connection, sink: str) -> list[Upload]:
    """The sink's uploads the service may still change, oldest first."""
    with conn.cursor(row_factory=dict_row) as cursor:
        rows = cursor.execute(
            f"select {', '.join(_UPLOAD_COLUMNS)} from integration.conversion_uploads"
            " where sink = %s and not finished order by uploaded_at, upload_id",
            (sink,),
        ).fetchall()
    return [Upload(**row) for row in rows]


def update_upload(conn: psycopg.Connection, sink: str, upload: Upload, *, now: datetime) -> None:
    """Store what the service now says of ``upload`` (checked at ``now``) and commit."""
    conn.execute(_UPDATE_UPLOAD, {**asdict(upload), "sink": sink, "checked_at": now})
    conn.commit()
