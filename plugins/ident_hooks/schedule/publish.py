"""One publishing run for one aggregator: read, compute, build, send, log.

The database work is a fixed handful of set-based queries; every request is sent and
retried on its own by the HTTP client. A request whose body is identical to the one
last sent successfully is skipped only where the aggregator's kind allows it, and only
for as long (``AggregatorKind.skip_unchanged`` in the registry): НаПоправку's slots go
on every run, since the service wants them every 10 minutes or more often, changed or not
(``napopravku/rta-api-service-client``, ``README.md``). Every run leaves one row in
``integration.publish_log``; for НаПоправку it also records the doctors the service
could not link to its own profiles (``not_matched`` of the ``POST doctors`` reply,
``src/DTOs/Doctor/Result/DoctorListUpdateResultDTO.php``) in ``not_matched_doctors`` and
names them in the task log — NULL there means no doctors were sent in that run.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from ident_hooks.http_client import ServiceClient, ServiceError
from ident_hooks.schedule.aggregators import (
    DEFAULT_MAX_REQUEST_BYTES,
    RequestTooLarge,
    doctor_names,
    publisher,
)
from ident_hooks.schedule.engine import (
    ExportSettings,
    InvalidExportSettings,
    Schedule,
    compute_schedule,
    resolve_settings,
)
from ident_hooks.schedule.reader import read_settings, read_snapshot

log = logging.getLogger(__name__)


@dataclass
class PublishSummary:
    aggregator: str
    status: str = "skipped"  # sent | skipped | failed
    doctors: int = 0
    free_slots: int = 0
    busy_cells: int = 0
    requests_sent: int = 0
    requests_skipped: int = 0
    bytes_sent: int = 0
    http_status: int | None = None
    payload_hash: str | None = None
    error: str | None = None
    not_matched_doctors: list[str] | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def _request_keys(requests: list) -> list[str]:
    """Stable names for the requests of a run: endpoint, branches and a chunk number."""
    keys, seen = [], {}
    for request in requests:
        base = f"{request.endpoint}:{','.join(request.branch_ids)}"
        seen[base] = seen.get(base, 0) + 1
        keys.append(f"{base}#{seen[base]}")
    return keys


def settings_for(aggregator: str, row: Mapping[str, Any] | None) -> ExportSettings:
    """The configured aggregator's export settings: its ``clinic.export_settings`` row
    under the rules of its kind (a horizon the service fixes)."""
    spec = publisher(aggregator).spec
    return resolve_settings(
        aggregator, row, fixed_days_ahead=spec.fixed_days_ahead, horizon_zone=spec.horizon_zone
    )


def publish_schedule(
    aggregator: str,
    *,
    conn: psycopg.Connection,
    client: ServiceClient,
    now: datetime,
    run_id: str | None = None,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
) -> PublishSummary:
    """Publish; raises ``InvalidExportSettings`` before sending anything if the settings
    make no sense, and re-raises the service's error after logging the failed run."""
    started = datetime.now().astimezone()
    summary = PublishSummary(aggregator)
    target = publisher(aggregator)
    settings_row = read_settings(conn, aggregator)
    try:
        settings = settings_for(aggregator, settings_row)
    except InvalidExportSettings as invalid:
        summary.status, summary.error = "failed", str(invalid)
        _log_run(conn, summary, started, run_id)
        raise
    if not settings.enabled:
        summary.notes.append("disabled in clinic.export_settings")
        _log_run(conn, summary, started, run_id)
        return summary

    snapshot = read_snapshot(
        conn, aggregator, settings_row, now=now, days_ahead=settings.days_ahead
    )
    schedule = compute_schedule(
        snapshot.work, snapshot.busy, snapshot.doctors, snapshot.rules, settings, now
    )
    try:
        requests = target.build_requests(
            schedule, snapshot.branches, max_request_bytes=max_request_bytes
        )
    except RequestTooLarge as too_large:
        summary.status, summary.error = "failed", str(too_large)
        _log_run(conn, summary, started, run_id)
        raise
    summary.doctors = len(schedule.doctors)
    summary.free_slots = len(schedule.free)
    summary.busy_cells = len(schedule.busy)
    run_hash = hashlib.sha256()
    for request in requests:
        run_hash.update(request.body)
    summary.payload_hash = run_hash.hexdigest()

    last_sent = {
        key: (payload_hash, sent_at)
        for key, payload_hash, sent_at in conn.execute(
            "select request_key, payload_hash, sent_at from integration.publish_state"
            " where aggregator = %s",
            (aggregator,),
        )
    }
    conn.commit()
    try:
        for key, request in zip(_request_keys(requests), requests, strict=True):
            body_hash = hashlib.sha256(request.body).hexdigest()
            previous = last_sent.get(key)
            skip_for = target.spec.skip_unchanged.get(request.kind)
            if (
                skip_for is not None
                and previous
                and previous[0] == body_hash
                and previous[1] > now - skip_for
            ):
                summary.requests_skipped += 1
                continue
            response = request.send(client)
            summary.http_status = response.status_code
            summary.requests_sent += 1
            summary.bytes_sent += len(request.body)
            not_matched = target.read_reply(request, response).not_matched_doctors
            if not_matched is not None:
                summary.not_matched_doctors = sorted(
                    {*(summary.not_matched_doctors or []), *not_matched}
                )
                _warn_not_matched(aggregator, not_matched, schedule)
            # Remembered per request at once: a later failure does not resend this one.
            conn.execute(
                "insert into integration.publish_state"
                " (aggregator, request_key, payload_hash, sent_at) values (%s, %s, %s, %s)"
                " on conflict (aggregator, request_key) do update"
                " set payload_hash = excluded.payload_hash, sent_at = excluded.sent_at",
                (aggregator, key, body_hash, now),
            )
            conn.commit()
    except ServiceError as failure:
        summary.status, summary.error = "failed", str(failure)
        summary.http_status = failure.status
        _log_run(conn, summary, started, run_id)
        raise
    summary.status = "sent" if summary.requests_sent else "skipped"
    _log_run(conn, summary, started, run_id)
    log.info(
        "%s: %s doctors, %s free slots, %s busy cells; %s requests sent (%s bytes), %s unchanged",
        aggregator,
        summary.doctors,
        summary.free_slots,
        summary.busy_cells,
        summary.requests_sent,
        summary.bytes_sent,
        summary.requests_skipped,
    )
    return summary


def _warn_not_matched(aggregator: str, doctor_ids: tuple[str, ...], schedule: Schedule) -> None:
    """Name, in the task log, the doctors the service could not link to its profiles."""
    if not doctor_ids:
        return
    names = doctor_names(schedule)
    log.warning(
        "%s could not link %d doctor(s) to its own doctor profiles (not_matched in its reply"
        " to POST doctors): %s. Ask the aggregator to link them; the list is kept in"
        " integration.publish_log.not_matched_doctors",
        aggregator,
        len(doctor_ids),
        "; ".join(
            f"{doctor_id} ({names[doctor_id][0]})" if doctor_id in names else doctor_id
            for doctor_id in doctor_ids
        ),
    )


def _log_run(
    conn: psycopg.Connection, summary: PublishSummary, started: datetime, run_id: str | None
) -> None:
    conn.rollback()  # nothing half-done may ride along with the log row
    conn.execute(
        """
        insert into integration.publish_log
            (aggregator, run_id, started_at, status, doctors, free_slots, busy_cells,
             requests_sent, requests_skipped, bytes_sent, http_status, payload_hash, error,
             not_matched_doctors)
        values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        """,
        (
            summary.aggregator,
            run_id,
            started,
            summary.status,
            summary.doctors,
            summary.free_slots,
            summary.busy_cells,
            summary.requests_sent,
            summary.requests_skipped,
            summary.bytes_sent,
            summary.http_status,
            summary.payload_hash,
            summary.error or "; ".join(summary.notes) or None,
            summary.not_matched_doctors,
        ),
    )
    conn.commit()
