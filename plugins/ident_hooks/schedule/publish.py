"""One publishing run for one aggregator: read, compute, build, send, keep, log.

Two ways to publish, chosen per instance (``publish_on_change`` in integrations.yaml):

* **Change-driven** (the default, issue 11). The clinic tables' statement triggers log
  what changed (migration 0013, :mod:`ident_hooks.schedule.changes`); the
  ``clinic_schedule`` Asset's watcher starts a run within about a second. A run is

  - ``full`` when nothing is kept yet, on the first run of a new local day (the daily
    snapshot, which also brings the new last day into the horizon), or after a change
    with no doctor (a branch, the export settings, a TRUNCATE): everything is read and
    every request is sent, changed or not;
  - ``changes`` when the log names doctors: only their work and busy time are read and
    recomputed, every other doctor comes from the kept state, and a request goes out
    only if its body differs from the one last accepted (ПроДокторов: the changed
    doctors' branch documents; IDENT protocol: the whole timetable, built from the kept
    state; НаПоправку: the changed branches' slots) — or when the service's own rule
    wants it resent (``AggregatorKind.resend_every``: НаПоправку's slots every 10
    minutes, clinics and doctors every 6 hours);
  - ``idle`` when nothing changed: no clinic read at all, the kept state clipped to the
    moment, and only what is due by those rules or changed by the passing time (today's
    cut-off moves in half hours, ``CLOCK_STEP_MINUTES``).

  The kept state and the change log's progress (a PostgreSQL snapshot) move only after
  the service accepted every request of the run: a failing aggregator keeps its changes
  until it takes them. The reading is one REPEATABLE READ transaction, so every change
  the snapshot shows is in what was read, and every other one is left for the next run.

* **Polling** (``publish_on_change: false``): every run on the timer rereads everything;
  a request whose body equals the last accepted one is skipped only where the kind
  allows and for as long (``AggregatorKind.skip_unchanged``). НаПоправку's slots go on
  every run, since the service wants them every 10 minutes or more often, changed or
  not (``napopravku/rta-api-service-client``, ``README.md``).

Every run leaves one row in ``integration.publish_log`` (with its ``mode``, the change
rows it published and how many doctors it recomputed); for НаПоправку it also records
the doctors the service could not link to its own profiles (``not_matched`` of the
``POST doctors`` reply, ``src/DTOs/Doctor/Result/DoctorListUpdateResultDTO.php``) in
``not_matched_doctors`` and names them in the task log — NULL there means no doctors
were sent in that run.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import psycopg

from ident_hooks.config import load_config
from ident_hooks.health.settings import load_alerts_config
from ident_hooks.http_client import ServiceClient, ServiceError
from ident_hooks.registry import AggregatorKind
from ident_hooks.schedule.aggregators import (
    DEFAULT_MAX_REQUEST_BYTES,
    RequestTooLarge,
    doctor_names,
    publisher,
)
from ident_hooks.schedule.changes import (
    forget_old_changes,
    load_cells,
    load_state,
    read_changes,
    save_state,
)
from ident_hooks.schedule.engine import (
    ExportSettings,
    InvalidExportSettings,
    Schedule,
    compute_schedule,
    raw_cells,
    resolve_settings,
    schedule_from_cells,
    without_free_days,
)
from ident_hooks.schedule.reader import read_settings, read_snapshot

log = logging.getLogger(__name__)

# Publishing counts today's cut-off and busy cells in progress from "now" rounded up to
# the half hour (engine.clipping_moment): an unchanged clinic's payloads then change twice
# an hour — when the cut-off passes the next slot of the usual 30-minute grid — not every
# minute; rounding up keeps "no slots in the next N hours" strict, holding back up to half
# an hour more of today. Both ways of publishing use it, so they send the same bodies.
CLOCK_STEP_MINUTES = 30


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
    mode: str | None = None  # full | changes | idle | poll
    changes: int | None = None
    doctors_recomputed: int | None = None
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


@dataclass
class _Computed:
    """What a run computed, and what it keeps once the aggregator has accepted it."""

    mode: str  # full | changes | idle | poll
    schedule: Schedule
    branches: Any
    snapshot: str | None = None  # the clinic snapshot it read (change-driven runs)
    changes: int | None = None
    recomputed: frozenset[str] | None = None  # doctors read again (None: all)
    new_cells: Any = None  # raw cells to keep (None: keep what is kept)


def _stale_clinic_data(conn: psycopg.Connection, now: datetime) -> datetime | None:
    """The oldest sync heartbeat (``clinic.sync_heartbeat``) when it is older than the
    limit of include/alerts.yaml, else None (also when the clinic writes none)."""
    (oldest,) = conn.execute("select min(synced_at) from clinic.sync_heartbeat").fetchone()
    conn.commit()
    if oldest is None or now - oldest <= load_alerts_config().limits.clinic_heartbeat:
        return None
    return oldest


def _new_local_day(since: datetime, now: datetime, zones: list[str]) -> bool:
    return any(
        since.astimezone(ZoneInfo(z)).date() != now.astimezone(ZoneInfo(z)).date() for z in zones
    )


def _compute(
    conn: psycopg.Connection,
    aggregator: str,
    settings: ExportSettings,
    settings_row: Mapping[str, Any] | None,
    now: datetime,
    on_change: bool,
) -> _Computed:
    """Read what this run needs, in one REPEATABLE READ transaction (see changes.py)."""
    state = load_state(conn, aggregator) if on_change else None
    mode = "poll" if not on_change else "full"
    changes = None
    if state is not None:
        zones = sorted({*state.branches.get("timezone", []), settings.horizon_zone or "UTC"})
        if state.computed_at <= now and not _new_local_day(state.full_at, now, zones):
            changes = read_changes(conn, aggregator, after=state.snapshot)
            mode = "full" if changes.full else "changes" if changes.rows else "idle"
    if on_change and changes is None:
        changes = read_changes(conn, aggregator, after=None)

    if mode == "idle":
        kept = load_cells(conn, aggregator)
        schedule = schedule_from_cells(
            kept,
            state.doctors,
            state.assignments,
            settings,
            now,
            clock_step_minutes=CLOCK_STEP_MINUTES,
        )
        return _Computed(mode, schedule, state.branches, changes.snapshot, 0, frozenset())

    only = changes.doctors if mode == "changes" else None
    snapshot = read_snapshot(
        conn, aggregator, settings_row, now=now, days_ahead=settings.days_ahead, doctor_ids=only
    )
    computed = compute_schedule(
        snapshot.work,
        snapshot.busy,
        snapshot.doctors,
        snapshot.rules,
        settings,
        now,
        clock_step_minutes=CLOCK_STEP_MINUTES,
    )
    new_cells = raw_cells(computed)
    if mode != "changes":
        return _Computed(
            mode,
            computed,
            snapshot.branches,
            changes.snapshot if changes else None,
            changes.rows if changes else None,
            None,
            new_cells if on_change else None,
        )
    kept = load_cells(conn, aggregator, except_doctors=only)
    assignments = pd.concat(
        [state.assignments[~state.assignments["doctor_id"].isin(only)], computed.assignments],
        ignore_index=True,
    ).sort_values(["branch_id", "doctor_id"], ignore_index=True)
    schedule = schedule_from_cells(
        pd.concat([kept, new_cells], ignore_index=True),
        computed.doctors,
        assignments,
        settings,
        now,
        clock_step_minutes=CLOCK_STEP_MINUTES,
    )
    return _Computed(
        mode, schedule, snapshot.branches, changes.snapshot, changes.rows, only, new_cells
    )


def _compute_consistently(conn: psycopg.Connection, *args: Any) -> _Computed:
    """:func:`_compute` at REPEATABLE READ, retried when a concurrent run's insert of new
    IDENT aliases makes the snapshot unserializable."""
    previous = conn.isolation_level
    conn.rollback()
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    try:
        for attempt in range(3):
            try:
                computed = _compute(conn, *args)
                conn.commit()
                return computed
            except psycopg.errors.SerializationFailure:
                conn.rollback()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")
    finally:
        conn.isolation_level = previous


def publish_schedule(
    aggregator: str,
    *,
    conn: psycopg.Connection,
    client: ServiceClient,
    now: datetime,
    run_id: str | None = None,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    on_change: bool | None = None,
) -> PublishSummary:
    """Publish; raises ``InvalidExportSettings`` before sending anything if the settings
    make no sense, and re-raises the service's error after logging the failed run.

    ``on_change`` (default: the instance's ``publish_on_change``) chooses change-driven
    publishing, described in the module docstring, over rereading the clinic every run.
    """
    started = datetime.now().astimezone()
    summary = PublishSummary(aggregator)
    target = publisher(aggregator)
    if on_change is None:
        on_change = load_config().aggregator(aggregator).publish_on_change
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

    try:
        computed = _compute_consistently(conn, aggregator, settings, settings_row, now, on_change)
    except InvalidExportSettings as invalid:
        summary.status, summary.error = "failed", str(invalid)
        _log_run(conn, summary, started, run_id)
        raise
    schedule = computed.schedule
    stale_since = _stale_clinic_data(conn, now)
    if stale_since is not None:
        days = load_alerts_config().limits.stale_withdraw_days
        schedule = without_free_days(schedule, days)
        summary.notes.append(
            f"clinic data stale (last sync {stale_since.isoformat(timespec='minutes')}):"
            f" no free slots offered on the next {days} day(s)"
        )
        log.warning("%s: %s", aggregator, summary.notes[-1])
    summary.mode, summary.changes = computed.mode, computed.changes
    summary.doctors_recomputed = (
        len(computed.recomputed) if computed.recomputed is not None else None
    )
    try:
        requests = target.build_requests(
            schedule, computed.branches, max_request_bytes=max_request_bytes
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
            if not _must_send(
                target.spec, computed.mode, request.kind, body_hash, last_sent.get(key), now
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
            if request.kind == target.spec.schedule_request:
                _record_publication(conn, aggregator, schedule, request.branch_ids, now)
            conn.commit()
    except ServiceError as failure:
        summary.status, summary.error = "failed", str(failure)
        summary.http_status = failure.status
        _log_run(conn, summary, started, run_id)
        raise
    if on_change:
        _keep(conn, aggregator, computed, now)
    summary.status = "sent" if summary.requests_sent else "skipped"
    _log_run(conn, summary, started, run_id)
    log.info(
        "%s (%s run): %s doctors, %s free slots, %s busy cells; %s requests sent (%s bytes),"
        " %s unchanged",
        aggregator,
        computed.mode,
        summary.doctors,
        summary.free_slots,
        summary.busy_cells,
        summary.requests_sent,
        summary.bytes_sent,
        summary.requests_skipped,
    )
    return summary


def _must_send(
    spec: AggregatorKind,
    mode: str,
    kind: str,
    body_hash: str,
    previous: tuple[str, datetime] | None,
    now: datetime,
) -> bool:
    """Whether a request goes out: always in a full run (the daily snapshot); otherwise
    when its body changed, or when unchanged for longer than the rules allow."""
    if mode == "full" or previous is None or previous[0] != body_hash:
        return True
    if mode == "poll":
        skip_for = spec.skip_unchanged.get(kind)
        return skip_for is None or previous[1] <= now - skip_for
    resend_every = spec.resend_every.get(kind)
    return resend_every is not None and previous[1] <= now - resend_every


def _record_publication(
    conn: psycopg.Connection,
    aggregator: str,
    schedule: Schedule,
    branch_ids: tuple[str, ...],
    now: datetime,
) -> None:
    """The service now has the schedule of every doctor of these branches (for the
    double-booking measurement, migration 0015). A branch split over several requests
    (НаПоправку over 900 kB) counts as received with its first accepted part."""
    assigned = schedule.assignments
    doctors = sorted(set(assigned.loc[assigned["branch_id"].isin(branch_ids), "doctor_id"]))
    conn.execute(
        "insert into integration.doctor_publications (aggregator, doctor_id, sent_at)"
        " select %s, unnest(%s::text[]), %s"
        " on conflict (aggregator, doctor_id) do update set sent_at = excluded.sent_at",
        (aggregator, doctors, now),
    )


def _keep(conn: psycopg.Connection, aggregator: str, computed: _Computed, now: datetime) -> None:
    """After the aggregator accepted the run: its state, and the changes it published."""
    if computed.mode == "idle":
        conn.execute(
            "update integration.schedule_state set snapshot = %s::pg_snapshot"
            " where aggregator = %s",
            (computed.snapshot, aggregator),
        )
    else:
        save_state(
            conn,
            aggregator,
            snapshot=computed.snapshot,
            computed_at=now,
            full=computed.mode == "full",
            doctors=computed.schedule.doctors,
            branches=computed.branches,
            assignments=computed.schedule.assignments,
            cells=computed.new_cells,
            replaced_doctors=computed.recomputed or (),
        )
        if computed.mode == "full":
            forget_old_changes(conn, now)
    conn.commit()


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
             not_matched_doctors, mode, changes, doctors_recomputed)
        values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
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
            summary.mode,
            summary.changes,
            summary.doctors_recomputed,
        ),
    )
    conn.commit()
