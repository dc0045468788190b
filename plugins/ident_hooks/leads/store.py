"""Storing leads: one set-based upsert per batch, rejects with reasons, acknowledgements.

A lead seen again updates only what the source changed; what admins did with it
(status and the inbox's fields) is never touched by a reload. The source's own state of the
lead (``source_state``: cancelled or deleted there, or active again after a restore) is a
source field like the others, so a reload does update it, and only it decides whether the
lead is still in the inbox's view (migration 0009).

Every lead stored new or changed is matched to the clinic's patient cards in the same
transaction (``ident_hooks.patients.matching``), so whoever is told of the lead at commit
finds its matches already there.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from ident_hooks.leads.normalise import LEAD_COLUMNS, Lead, Reject
from ident_hooks.patients.matching import match_leads

log = logging.getLogger(__name__)

_KEY = ("source", "external_id")
_SOURCE_FIELDS = tuple(c for c in LEAD_COLUMNS if c not in _KEY)
_COLUMN_LIST = ", ".join(LEAD_COLUMNS)
_DOCTOR = LEAD_COLUMNS.index("doctor_id")
_UPDATE_CHANGED = f"""
update integration.leads l
   set {", ".join(f"{c} = s.{c}" for c in _SOURCE_FIELDS)},
       source_updated_at = now()
  from pg_temp.incoming_leads s
 where l.source = s.source and l.external_id = s.external_id
   and ({", ".join(f"l.{c}" for c in _SOURCE_FIELDS)})
       is distinct from ({", ".join(f"s.{c}" for c in _SOURCE_FIELDS)})
returning l.lead_id
"""


@dataclass(frozen=True)
class StoreResult:
    inserted: int
    updated: int
    unchanged: int
    newest_created_at: datetime | None


def _json(value: Any, *, canonical: bool = False) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=canonical, default=str)


def _copy_types(conn: psycopg.Connection, table: str, columns: Sequence[str]) -> list[str]:
    rows = conn.execute(
        "select attname, format_type(atttypid, atttypmod) from pg_attribute"
        " where attrelid = %s::regclass and attnum > 0 and not attisdropped",
        (table,),
    ).fetchall()
    types = dict(rows)
    return [types[column] for column in columns]


def copy_rows(
    conn: psycopg.Connection, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Binary COPY: the cheapest way to hand PostgreSQL many rows from Python."""
    types = _copy_types(conn, table, columns)
    statement = f"copy {table} ({', '.join(columns)}) from stdin (format binary)"
    with conn.cursor().copy(statement) as copy:
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)


def store_leads(
    conn: psycopg.Connection, leads: Sequence[Lead], *, ack_required: bool = False
) -> StoreResult:
    """Store a batch in the caller's transaction (the caller commits).

    Leads not stored yet are COPYed straight into the table; leads already stored go
    through a staging table and update only the rows whose source fields changed. One
    writer per source (``max_active_runs=1``) keeps the two sets from racing; were they
    to race anyway, the unique key fails the transaction and the retry sorts it out.
    """
    if not leads:
        return StoreResult(0, 0, 0, None)
    latest = {(lead.source, lead.external_id): lead for lead in leads}  # the last copy wins
    stored: set[tuple[str, str]] = set()
    for source in {source for source, _ in latest}:
        ids = [external_id for key_source, external_id in latest if key_source == source]
        rows = conn.execute(
            "select external_id from integration.leads where source = %s and external_id = any(%s)",
            (source, ids),
        )
        stored.update((source, external_id) for (external_id,) in rows)
    # doctor_id means "matched to clinic.doctors" (the name as received is kept aside);
    # a branch id the clinic does not know is kept as the source sent it.
    doctors = {r[0] for r in conn.execute("select doctor_id from clinic.doctors")}

    def row(lead: Lead) -> list[Any]:
        values = list(lead.row())  # raw stays a dict: the binary COPY encodes it once
        if values[_DOCTOR] not in doctors:
            values[_DOCTOR] = None
        return values

    new = [row(lead) + [ack_required] for key, lead in latest.items() if key not in stored]
    known = [row(lead) for key, lead in latest.items() if key in stored]
    changed: list[int] = []  # ids of the leads stored new or changed: to be matched
    if new:
        copy_rows(conn, "integration.leads", [*LEAD_COLUMNS, "ack_required"], new)
        new_keys = [key for key in latest if key not in stored]
        for source in {source for source, _ in new_keys}:
            ids = [external_id for key_source, external_id in new_keys if key_source == source]
            changed += [
                lead_id
                for (lead_id,) in conn.execute(
                    "select lead_id from integration.leads"
                    " where source = %s and external_id = any(%s)",
                    (source, ids),
                )
            ]
    updated = 0
    if known:
        conn.execute(
            f"create temp table if not exists incoming_leads as"
            f" select {_COLUMN_LIST} from integration.leads with no data"
        )
        conn.execute("truncate pg_temp.incoming_leads")
        copy_rows(conn, "pg_temp.incoming_leads", LEAD_COLUMNS, known)
        updated_ids = [lead_id for (lead_id,) in conn.execute(_UPDATE_CHANGED)]
        updated = len(updated_ids)
        changed += updated_ids
    _match_patients(conn, changed)
    return StoreResult(
        inserted=len(new),
        updated=updated,
        unchanged=len(known) - updated,
        newest_created_at=max(lead.created_at for lead in leads),
    )


def _match_patients(conn: psycopg.Connection, lead_ids: list[int]) -> None:
    """Matching adds to a lead and must never cost one: should it fail, the leads are
    stored unmatched and the error logged (a full re-match, ``match_patients`` with
    ``full_rematch``, matches them later)."""
    try:
        with conn.transaction():  # a savepoint
            match_leads(conn, lead_ids)
    except Exception as error:
        # The error's text may quote a card's or a lead's values: only its kind is logged.
        log.error(
            "matching %d stored leads to patient cards failed: %s (SQLSTATE %s)",
            len(lead_ids),
            type(error).__name__,
            getattr(error, "sqlstate", None),
        )


def store_rejects(conn: psycopg.Connection, rejects: Sequence[Reject]) -> int:
    """Keep malformed records with their reason; a record seen again bumps its counter."""
    rows = [
        (
            reject.source,
            reject.external_id[:200] if reject.external_id else None,
            reject.reason,
            _json(reject.raw, canonical=True).replace("\x00", ""),
        )
        for reject in rejects
    ]
    with conn.cursor() as cursor:
        cursor.executemany(
            """
            insert into integration.lead_rejects (source, external_id, reason, raw)
            values (%s, %s, %s, %s)
            on conflict (source, raw_hash) do update
               set last_seen_at = now(),
                   times_seen = lead_rejects.times_seen + 1,
                   reason = excluded.reason
            """,
            rows,
        )
    return len(rows)


def awaiting_acknowledgement(conn: psycopg.Connection, source: str) -> list[str]:
    """External ids of stored leads the source still has to be told about."""
    rows = conn.execute(
        "select external_id from integration.leads"
        " where source = %s and ack_required and acknowledged_at is null and ack_error is null"
        " order by created_at",
        (source,),
    )
    return [row[0] for row in rows]


def mark_acknowledged(
    conn: psycopg.Connection, source: str, external_id: str, *, refused: str | None = None
) -> None:
    """Record the acknowledgement, or the source's refusal (then it is not retried)."""
    if refused is None:
        conn.execute(
            "update integration.leads set acknowledged_at = now()"
            " where source = %s and external_id = %s and acknowledged_at is null",
            (source, external_id),
        )
    else:
        conn.execute(
            "update integration.leads set ack_error = %s"
            " where source = %s and external_id = %s and acknowledged_at is null",
            (refused, source, external_id),
        )
