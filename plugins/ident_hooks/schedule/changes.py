"""What changed since an aggregator's last published run, and what it was last sent.

The change log (``integration.schedule_changes``) is written by statement triggers on the
clinic tables and on ``integration.leads`` (migration 0013). Progress through it is a
PostgreSQL snapshot, not a change id: identity values are taken at insert and committed in
any order, so "everything up to id N" can pass over a change still in flight. A run reads
the clinic and the log in one REPEATABLE READ transaction and keeps that transaction's
snapshot; the next run takes exactly the changes whose writers that snapshot could not
see (``pg_visible_in_snapshot``), however late they committed.

The kept state (``integration.schedule_state`` and ``integration.schedule_cells``) is
what the last accepted run computed: the published doctors, the branches, each doctor's
branches and every cell *before* clipping to that run's moment. A later run recomputes
only the changed doctors and takes the others from here, clipped to its own moment
(:func:`ident_hooks.schedule.engine.schedule_from_cells`).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

# The log is needed only back to the oldest kept snapshot: a run on a later local day
# than its last full one recomputes everything anyway (publish.py), so two days suffice.
CHANGE_LOG_RETENTION = timedelta(days=2)
CELL_COLUMNS = ("doctor_id", "branch_id", "timezone", "starts_at", "ends_at", "is_free")

_CHANGES_SQL = """
select count(*) as rows,
       coalesce(array_agg(distinct doctor_id) filter (where doctor_id is not null), '{}'),
       coalesce(bool_or(doctor_id is null), false) as everything,
       pg_current_snapshot()::text
  from integration.schedule_changes
 where xid >= pg_snapshot_xmin(%(after)s::pg_snapshot)
   and not pg_visible_in_snapshot(xid, %(after)s::pg_snapshot)
   and (aggregator is null or aggregator = %(aggregator)s)
"""


@dataclass(frozen=True)
class ChangeSet:
    """Changes a snapshot could not see: the doctors affected, or ``full`` for all."""

    snapshot: str  # the current transaction's snapshot, to keep once published
    rows: int = 0
    doctors: frozenset[str] = field(default_factory=frozenset)
    full: bool = False

    @property
    def empty(self) -> bool:
        return self.rows == 0 and not self.full


def current_snapshot(conn: psycopg.Connection) -> str:
    return conn.execute("select pg_current_snapshot()::text").fetchone()[0]


def read_changes(conn: psycopg.Connection, aggregator: str, *, after: str | None) -> ChangeSet:
    """The changes ``after`` (a kept snapshot) could not see; everything without one.

    Call it in the transaction that then reads the clinic, at REPEATABLE READ, so that the
    returned snapshot is the one the clinic was read in.
    """
    if after is None:
        return ChangeSet(current_snapshot(conn), full=True)
    rows, doctors, everything, snapshot = conn.execute(
        _CHANGES_SQL, {"after": after, "aggregator": aggregator}
    ).fetchone()
    return ChangeSet(snapshot, rows, frozenset(doctors), bool(everything))


def forget_old_changes(conn: psycopg.Connection, now: datetime) -> int:
    return conn.execute(
        "delete from integration.schedule_changes where changed_at < %s",
        (now - CHANGE_LOG_RETENTION,),
    ).rowcount


@dataclass(frozen=True)
class KeptState:
    snapshot: str
    computed_at: datetime
    full_at: datetime
    doctors: pd.DataFrame
    branches: pd.DataFrame
    assignments: pd.DataFrame
    withdrawn: bool = False  # published with the near days withdrawn (stale clinic data)


def load_state(conn: psycopg.Connection, aggregator: str) -> KeptState | None:
    row = conn.execute(
        "select snapshot::text, computed_at, full_at, doctors, branches, assignments, withdrawn"
        " from integration.schedule_state where aggregator = %s",
        (aggregator,),
    ).fetchone()
    if row is None:
        return None
    snapshot, computed_at, full_at, doctors, branches, assignments, withdrawn = row
    return KeptState(
        snapshot,
        computed_at,
        full_at,
        pd.DataFrame(doctors),
        pd.DataFrame(branches),
        pd.DataFrame(assignments, columns=["doctor_id", "branch_id"]),
        withdrawn,
    )


def load_cells(
    conn: psycopg.Connection, aggregator: str, *, except_doctors: Iterable[str] = ()
) -> pd.DataFrame:
    """The kept cells (:data:`CELL_COLUMNS`, times as epoch seconds), one COPY."""
    query = (
        "copy (select doctor_id, branch_id, timezone, starts_at, ends_at, is_free"
        " from integration.schedule_cells where aggregator = {aggregator}"
        " and doctor_id <> all({skipped}::text[])) to stdout with (format csv)"
    )
    buffer = io.BytesIO()
    statement = sql.SQL(query).format(
        aggregator=sql.Literal(aggregator),
        skipped=sql.Literal(sorted(except_doctors)),
    )
    with conn.cursor().copy(statement) as copy:
        for block in copy:
            buffer.write(block)
    buffer.seek(0)
    if buffer.getbuffer().nbytes == 0:
        return empty_cells()
    return pd.read_csv(
        buffer,
        names=list(CELL_COLUMNS),
        dtype={"doctor_id": str, "branch_id": str, "timezone": str},
        true_values=["t"],
        false_values=["f"],
    )


def empty_cells() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "doctor_id": pd.Series(dtype=object),
            "branch_id": pd.Series(dtype=object),
            "timezone": pd.Series(dtype=object),
            "starts_at": pd.Series(dtype="int64"),
            "ends_at": pd.Series(dtype="int64"),
            "is_free": pd.Series(dtype=bool),
        }
    )


def save_state(
    conn: psycopg.Connection,
    aggregator: str,
    *,
    snapshot: str,
    computed_at: datetime,
    full: bool,
    doctors: pd.DataFrame,
    branches: pd.DataFrame,
    assignments: pd.DataFrame,
    cells: pd.DataFrame | None,
    replaced_doctors: Iterable[str] = (),
    withdrawn: bool = False,
) -> None:
    """Keep what was just accepted: all cells (``full``), or the recomputed doctors' cells
    (``replaced_doctors``); ``cells=None`` keeps the cells as they are. The caller commits."""
    if cells is not None:
        if full:
            conn.execute(
                "delete from integration.schedule_cells where aggregator = %s", (aggregator,)
            )
        else:
            conn.execute(
                "delete from integration.schedule_cells where aggregator = %s"
                " and doctor_id = any(%s)",
                (aggregator, sorted(replaced_doctors)),
            )
        _copy_cells(conn, aggregator, cells)
    conn.execute(
        """
        insert into integration.schedule_state as kept
            (aggregator, snapshot, computed_at, full_at, doctors, branches, assignments,
             withdrawn)
        values (%(aggregator)s, %(snapshot)s::pg_snapshot, %(now)s, %(now)s,
                %(doctors)s, %(branches)s, %(assignments)s, %(withdrawn)s)
        on conflict (aggregator) do update
           set snapshot = excluded.snapshot, computed_at = excluded.computed_at,
               full_at = case when %(full)s then excluded.full_at else kept.full_at end,
               doctors = excluded.doctors, branches = excluded.branches,
               assignments = excluded.assignments, withdrawn = excluded.withdrawn
        """,
        {
            "aggregator": aggregator,
            "snapshot": snapshot,
            "now": computed_at,
            "full": full,
            "doctors": Jsonb(_records(doctors)),
            "branches": Jsonb(_records(branches)),
            "assignments": Jsonb(_records(assignments[["doctor_id", "branch_id"]])),
            "withdrawn": withdrawn,
        },
    )


def _records(frame: pd.DataFrame) -> list[dict]:
    # Through JSON text: numpy scalars and NaN become JSON numbers and null.
    return json.loads(frame.astype(object).to_json(orient="records", date_format="iso"))


def _copy_cells(conn: psycopg.Connection, aggregator: str, cells: pd.DataFrame) -> None:
    if cells.empty:
        return
    frame = cells[list(CELL_COLUMNS)].copy()
    frame.insert(0, "aggregator", aggregator)
    text = frame.to_csv(index=False, header=False)
    with conn.cursor().copy(
        "copy integration.schedule_cells"
        " (aggregator, doctor_id, branch_id, timezone, starts_at, ends_at, is_free)"
        " from stdin with (format csv)"
    ) as copy:
        copy.write(text)
