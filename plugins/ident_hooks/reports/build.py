"""One build of the marketing reports: incremental by default, full when asked or needed.

The whole build is one REPEATABLE READ transaction under an advisory lock: the report
tables move from one consistent state to the next or not at all, and two builds (the DAG
and a manual run) never interleave.

Incremental: consume the noted lead changes (``report_build.lead_changes``, filled by
triggers on every insert, update and delete of a lead — ingestion, the inbox, manual
fixes alike), find the appointments that changed, recompute the facts of the leads that
can be affected, and rebuild only the days, campaigns and doctor weeks whose facts
really changed, plus the doctor weeks of the current export horizon (free slots change
with every booking). Changes committed while a build runs stay noted for the next one.

Full: recompute every lead and every table. Happens when asked (DAG param
``full_rebuild``, or ``--full`` here), on the first build, when the clinic time zone or
the definitions (channel rules, windows, the build's SQL) changed, and after the leads
table was truncated.

    PYTHONPATH=plugins python -m ident_hooks.reports.build [--full]
"""

from __future__ import annotations

import argparse
import hashlib
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime

import psycopg

from ident_hooks.reports import appointments, demand, facts, tables
from ident_hooks.reports.channels import channel_sql

# Any constant: the same for every process that builds the reports.
_BUILD_LOCK_KEY = 0x1DE7_0005


def definitions_hash() -> str:
    """A fingerprint of everything that decides a report number; a change forces a full build."""
    digest = hashlib.sha256()
    parts = [
        channel_sql(),
        *appointments.SQL_TEXTS,
        *facts.SQL_TEXTS,
        *tables.SQL_TEXTS,
        str(facts.REPEAT_WINDOW),
        str(facts.CONVERSION_WINDOW),
        str(tables.ANSWER_TARGET_SECONDS),
        demand.demand_aggregator(),
    ]
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()


@dataclass
class BuildSummary:
    mode: str  # full | incremental
    reason: str  # why this mode
    lead_changes: int = 0  # leads noted as inserted, updated or deleted (incremental)
    appointments_changed: int = 0
    leads_recomputed: int = 0
    leads_changed: int = 0  # leads whose facts changed
    days: list[str] = field(default_factory=list)  # days rebuilt (incremental)
    campaigns: int = 0  # campaigns rebuilt (incremental)
    weeks: list[str] = field(default_factory=list)  # doctor_demand weeks rebuilt
    # report.campaign_roi's rows when rebuilt (whole: facts or ad costs changed), else None
    campaign_roi_rows: int | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def _full_rebuild_reason(conn: psycopg.Connection, clinic_timezone: str) -> str | None:
    state = conn.execute(
        "select clinic_timezone, definitions_hash, full_rebuild_needed from report.build_state"
    ).fetchone()
    if state is None:
        return "first build"
    timezone, definitions, needed = state
    if timezone != clinic_timezone:
        return f"clinic time zone changed from {timezone} to {clinic_timezone}"
    if definitions != definitions_hash():
        return "report definitions changed"
    if needed:
        return "the leads table was emptied"
    return None


def _full(
    conn: psycopg.Connection, summary: BuildSummary, clinic_timezone: str, now: datetime
) -> None:
    conn.execute("delete from report_build.lead_changes")
    conn.execute("truncate report_build.appointment_phones")
    summary.appointments_changed = appointments.sync_appointments(conn)
    summary.leads_recomputed = summary.leads_changed = facts.rebuild_all_facts(
        conn, clinic_timezone
    )
    conn.execute("analyze report_build.lead_facts")
    tables.rebuild_all(conn)
    horizon = demand.horizon_weeks(conn, now, clinic_timezone)
    first, last = conn.execute(
        "select min(week), max(week) from report_build.lead_facts"
    ).fetchone()
    known = [week for week in (*horizon, first, last) if week is not None]
    weeks = demand.weeks_between(min(known), max(known))
    _doctor_demand(conn, summary, weeks, clinic_timezone, everything=True)


def _incremental(
    conn: psycopg.Connection, summary: BuildSummary, clinic_timezone: str, now: datetime
) -> None:
    conn.execute("create temp table changed_leads (lead_id bigint primary key) on commit drop")
    summary.lead_changes = conn.execute(
        "with consumed as (delete from report_build.lead_changes returning lead_id)"
        " insert into pg_temp.changed_leads select distinct lead_id from consumed"
    ).rowcount
    summary.appointments_changed = appointments.sync_appointments(conn)
    summary.leads_recomputed, summary.leads_changed = facts.update_facts(conn, clinic_timezone)
    days, summary.campaigns = tables.rebuild_touched(conn)
    summary.days = [day.isoformat() for day in days]
    touched_weeks = {
        row[0]
        for row in conn.execute(
            "select distinct week from pg_temp.changed_facts where doctor_id is not null"
        )
    }
    weeks = sorted(touched_weeks | set(demand.horizon_weeks(conn, now, clinic_timezone)))
    _doctor_demand(conn, summary, weeks, clinic_timezone, everything=False)


def _doctor_demand(
    conn: psycopg.Connection,
    summary: BuildSummary,
    weeks: list[date],
    clinic_timezone: str,
    *,
    everything: bool,
) -> None:
    free = demand.free_slots_by_week(conn, weeks, clinic_timezone)
    tables.rebuild_doctor_demand(conn, weeks, free, everything=everything)
    summary.weeks = [week.isoformat() for week in weeks]


def build_reports(
    conn: psycopg.Connection,
    *,
    clinic_timezone: str,
    now: datetime,
    full: bool = False,
) -> BuildSummary:
    """Bring the report tables up to date and commit; ``now`` decides the current week.

    ``conn`` must have no open transaction.
    """
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise ValueError("build_reports needs a connection with no open transaction")
    started = time.perf_counter()
    with conn.transaction():
        conn.execute("set transaction isolation level repeatable read")
        conn.execute("select pg_advisory_xact_lock(%s)", (_BUILD_LOCK_KEY,))
        reason = "asked for" if full else _full_rebuild_reason(conn, clinic_timezone)
        summary = BuildSummary(
            mode="full" if reason else "incremental", reason=reason or "new changes only"
        )
        if reason:
            _full(conn, summary, clinic_timezone, now)
        else:
            _incremental(conn, summary, clinic_timezone, now)
        tables.rebuild_schedule_collisions(conn, clinic_timezone)
        tables.rebuild_escalations(conn, clinic_timezone)
        costs = tables.ad_costs_digest(conn)
        state = conn.execute("select ad_costs_digest from report.build_state").fetchone()
        if summary.mode == "full" or summary.leads_changed or state != (costs,):
            summary.campaign_roi_rows = tables.rebuild_campaign_roi(conn)
        conn.execute(
            """
            insert into report.build_state
                   (id, built_at, mode, clinic_timezone, definitions_hash, full_rebuild_needed,
                    ad_costs_digest)
            values (true, %s, %s, %s, %s, false, %s)
            on conflict (id) do update
               set built_at = excluded.built_at, mode = excluded.mode,
                   clinic_timezone = excluded.clinic_timezone,
                   definitions_hash = excluded.definitions_hash,
                   full_rebuild_needed = false,
                   ad_costs_digest = excluded.ad_costs_digest
            """,
            (now, summary.mode, clinic_timezone, definitions_hash(), costs),
        )
    summary.seconds = round(time.perf_counter() - started, 3)
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build the marketing report tables.")
    parser.add_argument("--full", action="store_true", help="rebuild everything")
    args = parser.parse_args(argv)

    from ident_hooks.config import load_config
    from ident_hooks.db import connect

    with connect() as conn:
        summary = build_reports(
            conn,
            clinic_timezone=load_config().clinic_timezone,
            now=datetime.now(UTC),
            full=args.full,
        )
    print(summary.as_dict())


if __name__ == "__main__":
    main()
