"""The report tables as CSV files that Excel with Russian settings opens as they are.

UTF-8 with a byte order mark (so Excel reads Cyrillic right), ``;`` between fields and a
decimal comma in numbers (Excel's list and decimal separators under Russian regional
settings), dates as ``2026-11-02``, empty fields for NULL, one header line of column names.
The rows come from ``COPY ... TO STDOUT`` and are passed on in chunks as they arrive, so a
table of any size never sits in memory whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
from psycopg import sql

from ident_hooks import db

BOM = "\ufeff".encode()
DELIMITER = ";"
CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class ReportTable:
    title: str  # what the page calls the download
    order_by: tuple[str, ...]  # a stable row order


# Only these tables of schema `report`, which hold no names or phones.
TABLES: dict[str, ReportTable] = {
    "leads_daily": ReportTable(
        "Заявки по дням, источникам и каналам",
        (
            "day",
            "branch_id",
            "source",
            "channel",
            "utm_source",
            "utm_medium",
            "utm_campaign",
            "referrer_host",
        ),
    ),
    "campaigns": ReportTable(
        "Рекламные кампании (UTM) за всё время", ("utm_campaign", "utm_source", "utm_medium")
    ),
    "response_time": ReportTable(
        "Скорость ответа на заявки по дням и филиалам", ("day", "branch_id")
    ),
    "doctor_demand": ReportTable(
        "Спрос на врачей и их свободные слоты по неделям", ("week", "doctor_id")
    ),
    "schedule_collisions": ReportTable(
        "Записи на уже занятое время по агрегаторам и неделям", ("week", "aggregator")
    ),
    "escalations": ReportTable(
        "Заявки, эскалированные ресепшну, по дням и филиалам", ("day", "branch_id")
    ),
    "click_ids": ReportTable(
        "Заявки с ClientID Метрики, yclid и gclid по дням и источникам", ("day", "source")
    ),
    "campaign_roi": ReportTable(
        "Окупаемость рекламы по неделям и кампаниям: расход, визиты, новые пациенты, ROMI",
        ("week", "cost_source", "campaign_id", "campaign"),
    ),
    "patients_by_channel": ReportTable(
        "Новые и вернувшиеся пациенты по неделям, каналам и кампаниям; заявок на человека",
        ("week", "channel", "utm_campaign"),
    ),
    "calls_daily": ReportTable("Звонки по дням и каналам", ("day", "channel")),
}


def _csv_field(name: str, data_type: str) -> sql.Composable:
    column = sql.Identifier(name)
    if data_type == "numeric":
        return sql.SQL("replace({c}::text, '.', ',') as {c}").format(c=column)
    if data_type == "text":
        # UTM tags and referrers come from visitors' URLs: a value such as =HYPERLINK(...)
        # would run as a formula when Excel opens the file, so it is quoted as text.
        return sql.SQL(
            "case when {c} ~ '^[-=+@\\t\\r]' then chr(39) || {c} else {c} end as {c}"
        ).format(c=column)
    return column


def copy_statement(conn: psycopg.Connection, table: str) -> sql.Composed:
    """``COPY (select every column of report.<table>) TO STDOUT`` in the file's format."""
    spec = TABLES[table]
    columns = conn.execute(
        "select column_name, data_type from information_schema.columns"
        " where table_schema = 'report' and table_name = %s order by ordinal_position",
        (table,),
    ).fetchall()
    fields = [_csv_field(name, data_type) for name, data_type in columns]
    return sql.SQL(
        "copy (select {fields} from report.{table} order by {order})"
        " to stdout with (format csv, header true, delimiter {delimiter})"
    ).format(
        fields=sql.SQL(", ").join(fields),
        table=sql.Identifier(table),
        order=sql.SQL(", ").join(sql.Identifier(name) for name in spec.order_by),
        delimiter=sql.Literal(DELIMITER),
    )


def csv_chunks(table: str) -> Iterator[bytes]:
    """The CSV file of ``report.<table>``: the byte order mark, then chunks of rows.

    The connection and the copy are open by the time the first chunk (the mark) is
    produced, so a caller that takes it before answering reports database errors properly.
    """
    with db.connect() as conn:
        conn.read_only = True
        with conn.cursor() as cursor, cursor.copy(copy_statement(conn, table)) as copy:
            yield BOM
            buffer = bytearray()
            for row in copy:
                buffer += row
                if len(buffer) >= CHUNK_BYTES:
                    yield bytes(buffer)
                    buffer.clear()
            if buffer:
                yield bytes(buffer)
