"""Storing leads: one set-based upsert per batch, rejects with reasons, acknowledgements.

A lead seen again updates only what the source changed; what admins did with it
(status and the inbox's fields) is never touched by a reload.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from ident_hooks.leads.normalise import LEAD_COLUMNS, Lead, Reject

_KEY = ("source", "external_id")
_SOURCE_FIELDS = tuple(c for c in LEAD_COLUMNS if c not in _KEY)
_COLUMN_LIST = ", ".join(LEAD_COLUMNS)
# Ids the clinic does not know are dropped while staging rather than failing the batch.
_KNOWN_ONLY = {
    "doctor_id": "case when exists (select 1 from clinic.doctors d"
    " where d.doctor_id = s.doctor_id) then s.doctor_id end",
    "branch_id": "case when exists (select 1 from clinic.branches b"
    " where b.branch_id = s.branch_id) then s.branch_id end",
}
_STAGED = ", ".join(_KNOWN_ONLY.get(column, f"s.{column}") for column in LEAD_COLUMNS)
_UPSERT = f"""
insert into integration.leads ({_COLUMN_LIST}, ack_required)
select {_STAGED}, %(ack_required)s
  from (select distinct on (source, external_id) *
          from pg_temp.incoming_leads
         order by source, external_id, seq desc) s
on conflict (source, external_id) do update
   set {", ".join(f"{c} = excluded.{c}" for c in _SOURCE_FIELDS)},
       source_updated_at = now()
 where ({", ".join(f"leads.{c}" for c in _SOURCE_FIELDS)})
       is distinct from ({", ".join(f"excluded.{c}" for c in _SOURCE_FIELDS)})
returning (xmax = 0) as inserted
"""


@dataclass(frozen=True)
class StoreResult:
    inserted: int
    updated: int
    unchanged: int
    newest_created_at: datetime | None

    @property
    def changed(self) -> bool:
        return bool(self.inserted or self.updated)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def store_leads(
    conn: psycopg.Connection, leads: Sequence[Lead], *, ack_required: bool = False
) -> StoreResult:
    """Upsert a batch in the caller's transaction (the caller commits)."""
    if not leads:
        return StoreResult(0, 0, 0, None)
    conn.execute(
        f"create temp table if not exists incoming_leads as"
        f" select 0::bigint as seq, {_COLUMN_LIST} from integration.leads with no data"
    )
    conn.execute("truncate pg_temp.incoming_leads")
    raw_position = LEAD_COLUMNS.index("raw")
    with conn.cursor().copy(
        f"copy pg_temp.incoming_leads (seq, {_COLUMN_LIST}) from stdin"
    ) as copy:
        for seq, lead in enumerate(leads):
            row = list(lead.row())
            row[raw_position] = _json(row[raw_position])
            copy.write_row((seq, *row))
    flags = [row[0] for row in conn.execute(_UPSERT, {"ack_required": ack_required}).fetchall()]
    distinct = len({(lead.source, lead.external_id) for lead in leads})
    inserted = sum(flags)
    return StoreResult(
        inserted=inserted,
        updated=len(flags) - inserted,
        unchanged=distinct - len(flags),
        newest_created_at=max(lead.created_at for lead in leads),
    )


def store_rejects(conn: psycopg.Connection, rejects: Sequence[Reject]) -> int:
    """Keep malformed records with their reason; a record seen again bumps its counter."""
    rows = [
        (
            reject.source,
            _external_id_of(reject.raw),
            reject.reason,
            _json(reject.raw).replace("\x00", ""),
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


def _external_id_of(raw: Any) -> str | None:
    if isinstance(raw, dict):
        for key in ("id", "Id", "uuid"):
            if raw.get(key) not in (None, ""):
                return str(raw[key])[:200]
    return None


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
