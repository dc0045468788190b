"""One pull of one lead source: period from the cursor, fetch, parse, store, move the cursor.

The order is what makes it safe: the batch is committed before the cursor moves, and
the cursor only moves forward, so a failure anywhere means the next run asks for the
same period again and the idempotent upsert absorbs the overlap.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import psycopg

from ident_hooks.http_client import ServiceClient, ServiceRejected, ServiceUnavailable
from ident_hooks.leads.cursor import advanced, parse_cursor, period_start
from ident_hooks.leads.normalise import DoctorMatcher
from ident_hooks.leads.sources import Acknowledging, SourceError, SourceSettings, parse_records
from ident_hooks.leads.store import (
    awaiting_acknowledgement,
    mark_acknowledged,
    store_leads,
    store_rejects,
)
from ident_hooks.registry import LEAD_SOURCE_KINDS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PullSummary:
    source: str
    period_from: str
    period_to: str
    fetched: int
    inserted: int
    updated: int
    unchanged: int
    rejected: int
    cursor_before: str | None
    cursor_after: str | None

    def as_dict(self) -> dict:
        return asdict(self)


def pull_source(
    source: str,
    *,
    kind: str,
    conn: psycopg.Connection,
    client: ServiceClient,
    clinic_timezone: str,
    now: datetime,
    read_cursor: Callable[[], str | None],
    write_cursor: Callable[[str], None],
    initial_days: int = 7,
) -> PullSummary:
    tz = ZoneInfo(clinic_timezone)
    cursor = parse_cursor(read_cursor())
    period_from = period_start(cursor, now, tz, initial_days)
    spec = LEAD_SOURCE_KINDS[kind]
    if cursor is not None and spec.revisit_days:
        # Leads of this kind change state at the source later (cancelled, deleted).
        period_from = min(period_from, period_start(None, now, tz, spec.revisit_days))
    connector = spec.connector_class()
    acknowledging = issubclass(connector, Acknowledging)
    settings = SourceSettings(source=source, timezone=tz)
    # The whole period is fetched before anything is stored: a failure half-way through
    # the pages stores nothing and the retry starts clean.
    records = list(connector.fetch(client, period_from, now, settings=settings))
    matcher = DoctorMatcher(conn.execute("select doctor_id, full_name from clinic.doctors"))
    batch = parse_records(connector, records, settings=settings, matcher=matcher)
    result = store_leads(conn, batch.leads, ack_required=acknowledging)
    store_rejects(conn, batch.rejects)
    conn.commit()
    # The cursor may only ever point at committed leads.
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise RuntimeError("leads are not committed; the cursor stays where it is")
    for reject in batch.rejects:
        log.warning("%s: record rejected: %s", source, reject.reason)

    moved = advanced(cursor, result.newest_created_at, now)
    if moved is not None and moved != cursor:
        write_cursor(moved.isoformat())
    if acknowledging:
        # Unanswered, the service would cancel them silently.
        connector.refuse_rejected(source, batch.rejects, client)
    summary = PullSummary(
        source=source,
        period_from=period_from.isoformat(),
        period_to=now.isoformat(),
        fetched=len(records),
        inserted=result.inserted,
        updated=result.updated,
        unchanged=result.unchanged,
        rejected=len(batch.rejects),
        cursor_before=cursor.isoformat() if cursor else None,
        cursor_after=(moved or cursor).isoformat() if (moved or cursor) else None,
    )
    log.info("%s", summary)
    return summary


def acknowledge_stored(
    source: str, *, kind: str, conn: psycopg.Connection, client: ServiceClient
) -> dict[str, int]:
    """Tell the source about every committed lead it is waiting to hear about.

    Runs after the store commits (and again on later runs for any that failed): a
    network failure leaves the lead pending for the next run; a refusal (4xx, e.g. the
    booking was already cancelled) is recorded and not retried.
    """
    connector = LEAD_SOURCE_KINDS[kind].connector_class()
    counts = {"acknowledged": 0, "refused": 0, "pending": 0}
    if not issubclass(connector, Acknowledging):
        return counts
    for external_id in awaiting_acknowledgement(conn, source):
        try:
            connector.acknowledge(client, external_id)
        except ServiceRejected as refused:
            mark_acknowledged(conn, source, external_id, refused=str(refused))
            counts["refused"] += 1
            log.error("%s refused the acknowledgement of %s: %s", source, external_id, refused)
        except (ServiceUnavailable, SourceError) as failure:
            # The service is down: the rest stay pending too, for the next run.
            counts["pending"] = len(awaiting_acknowledgement(conn, source))
            log.warning("%s: acknowledgements failed, retried next run: %s", source, failure)
            break
        else:
            mark_acknowledged(conn, source, external_id)
            counts["acknowledged"] += 1
        conn.commit()
    return counts
