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
    moment, and only what is due by those rules.

  Today's cut-off ("no slots in the next N hours") is counted from the exact moment of
  each run, as IDENT applies it at each send. Time alone changes the bodies that carry
  today (a slot crossing the cut-off, busy time in progress): such a request — one whose
  branches no change touched — goes only on a run of the instance's timer
  (``on_timer``), so time alone resends at most once per interval and a slot may linger
  there until the next tick, as it does with IDENT's own 10-minute sending.

  What changes send is held to the instance's byte budget
  (:mod:`ident_hooks.schedule.budget`): when the budget does not allow it yet, the run
  sends only what the service's own rules demand and ends ``deferred`` with the moment
  to try again (the DAG has Airflow reschedule it then); the changes meanwhile coalesce.

  The kept state and the change log's progress (a PostgreSQL snapshot) move only after
  the service accepted every request of the run: a failing aggregator keeps its changes
  until it takes them. The reading is one REPEATABLE READ transaction, so every change
  the snapshot shows is in what was read, and every other one is left for the next run.

* **Polling** (``publish_on_change: false``): every run on the timer rereads everything;
  a request whose body equals the last accepted one is skipped only where the kind
  allows and for as long (``AggregatorKind.skip_unchanged``). НаПоправку's slots go on
  every run, since the service wants them every 10 minutes or more often, changed or
  not (``napopravku/rta-api-service-client``, ``README.md``).

With ``gzip`` on, bodies go compressed (``Content-Encoding: gzip``) and count at their
compressed size. Every run leaves one row in ``integration.publish_log`` (with its
``mode``, the change rows it published and how many doctors it recomputed); for
НаПоправку it also records the doctors the service could not link to its own profiles
(``not_matched`` of the ``POST doctors`` reply,
``src/DTOs/Doctor/Result/DoctorListUpdateResultDTO.php``) in ``not_matched_doctors`` and
names them in the task log — NULL there means no doctors were sent in that run.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import pandas as pd
import psycopg

from ident_hooks.config import Aggregator, load_config, next_tick
from ident_hooks.health.settings import load_alerts_config
from ident_hooks.http_client import ServiceClient, ServiceError, ServiceRejected
from ident_hooks.registry import AggregatorKind
from ident_hooks.schedule.aggregators import (
    OutgoingRequest,
    RequestTooLarge,
    gzip_body,
    publisher,
)
from ident_hooks.schedule.aggregators.rendering import doctor_names
from ident_hooks.schedule.budget import ByteBudget, load_spent_until, save_spent_until
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


@dataclass
class PublishSummary:
    aggregator: str
    status: str = "skipped"  # sent | skipped | failed | deferred
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
    deferred_until: datetime | None = None  # status deferred: when to try again
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
    spec = load_config().aggregator(aggregator).spec
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
    daily: bool = False  # a full run the day or a missing state demands, not a change
    touched: frozenset[str] | None = None  # branches the changes touch (None: all)
    kept_withdrawn: bool | None = None  # the kept state's near days withdrawn (None: none)


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
    # No state, a new local day (or a clock behind the state): the daily full snapshot.
    daily = on_change and changes is None
    if daily:
        changes = read_changes(conn, aggregator, after=None)

    if mode == "idle":
        kept = load_cells(conn, aggregator)
        schedule = schedule_from_cells(kept, state.doctors, state.assignments, settings, now)
        return _Computed(
            mode,
            schedule,
            state.branches,
            changes.snapshot,
            0,
            frozenset(),
            touched=frozenset(),
            kept_withdrawn=state.withdrawn,
        )

    only = changes.doctors if mode == "changes" else None
    snapshot = read_snapshot(
        conn, aggregator, settings_row, now=now, days_ahead=settings.days_ahead, doctor_ids=only
    )
    computed = compute_schedule(
        snapshot.work, snapshot.busy, snapshot.doctors, snapshot.rules, settings, now
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
            daily=daily,
            kept_withdrawn=state.withdrawn if state is not None else None,
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
    )
    # A moved doctor touches the branch they left as well as the one they joined.
    before = state.assignments
    touched = frozenset(before.loc[before["doctor_id"].isin(only), "branch_id"]) | frozenset(
        computed.assignments["branch_id"]
    )
    return _Computed(
        mode,
        schedule,
        snapshot.branches,
        changes.snapshot,
        changes.rows,
        only,
        new_cells,
        touched=frozenset(map(str, touched)),
        kept_withdrawn=state.withdrawn,
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
    on_change: bool | None = None,
    on_timer: bool = True,
) -> PublishSummary:
    """Publish; raises ``InvalidExportSettings`` or ``RequestTooLarge`` before sending
    anything if the settings or a body cannot work, and re-raises the service's error
    after logging the failed run.

    ``on_change`` (default: the instance's ``publish_on_change``) chooses change-driven
    publishing, described in the module docstring, over rereading the clinic every run.
    ``on_timer``: the run is the instance's timer tick (or a person's), which also sends
    what time alone changed; a run started by a change sends only what changes touched.
    A ``deferred`` summary carries ``deferred_until``: run again then.
    """
    started = datetime.now().astimezone()
    summary = PublishSummary(aggregator)
    instance = load_config().aggregator(aggregator)
    target = publisher(aggregator)
    if on_change is None:
        on_change = instance.publish_on_change
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
    withdrawn = stale_since is not None
    if computed.kept_withdrawn is not None and withdrawn != computed.kept_withdrawn:
        computed.touched = None  # what is offered changes everywhere, not by time alone
    summary.mode, summary.changes = computed.mode, computed.changes
    summary.doctors_recomputed = (
        len(computed.recomputed) if computed.recomputed is not None else None
    )
    try:
        requests = target.build_requests(
            schedule, computed.branches, max_request_bytes=instance.request_limit
        )
    except RequestTooLarge as too_large:
        summary.status, summary.error = "failed", f"{aggregator}: {too_large}"
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
        key: _LastSent(payload_hash, sent_at, stale_at)
        for key, payload_hash, sent_at, stale_at in conn.execute(
            "select request_key, payload_hash, sent_at, stale_at from integration.publish_state"
            " where aggregator = %s",
            (aggregator,),
        )
    }
    conn.commit()
    planned = [
        send
        for send in (
            _plan(target.spec, computed, key, request, last_sent.get(key), now, on_timer)
            for key, request in zip(_request_keys(requests), requests, strict=True)
        )
        if send is not None
    ]
    for send in planned:
        send.wire = gzip_body(send.request.body) if instance.gzip else send.request.body
    budget, spent_until = None, None
    if on_change:
        budget = ByteBudget.for_instance(
            instance.byte_budget_per_hour, instance.interval, sum(len(r.body) for r in requests)
        )
        spent_until = load_spent_until(conn, aggregator)
        conn.commit()
        if not on_timer:
            planned = _within_budget(
                planned, budget, spent_until, now, next_tick(now, instance.interval), summary
            )
    summary.requests_skipped = len(requests) - len(planned)
    first_free = _first_free_today(schedule)
    try:
        for send in planned:
            response = send.request.send(client, gzipped=send.wire if instance.gzip else None)
            summary.http_status = response.status_code
            summary.requests_sent += 1
            summary.bytes_sent += len(send.wire)
            not_matched = (
                target.read_reply(send.request, response).not_matched_doctors
                if target.reads_replies
                else None
            )
            if not_matched is not None:
                summary.not_matched_doctors = sorted(
                    {*(summary.not_matched_doctors or []), *not_matched}
                )
                _warn_not_matched(aggregator, not_matched, schedule)
            # Remembered per request at once: a later failure does not resend this one.
            stale_at = (
                _stale_at(send.request, first_free, settings)
                if send.request.kind == target.spec.schedule_request
                else None
            )
            conn.execute(
                "insert into integration.publish_state"
                " (aggregator, request_key, payload_hash, sent_at, stale_at)"
                " values (%s, %s, %s, %s, %s)"
                " on conflict (aggregator, request_key) do update"
                " set payload_hash = excluded.payload_hash, sent_at = excluded.sent_at,"
                " stale_at = excluded.stale_at",
                (aggregator, send.key, send.body_hash, now, stale_at),
            )
            if budget is not None:
                spent_until = budget.spend(spent_until, now, len(send.wire))
                save_spent_until(conn, aggregator, spent_until)
            if send.request.kind == target.spec.schedule_request:
                _record_publication(conn, aggregator, schedule, send.request.branch_ids, now)
            conn.commit()
    except ServiceError as failure:
        if failure.status == 413:
            failure = _refused_as_too_large(aggregator, instance, send, failure)
        summary.status, summary.error = "failed", str(failure)
        summary.http_status = failure.status
        _log_run(conn, summary, started, run_id)
        raise failure from None
    if summary.status != "deferred":
        if on_change:
            _keep(conn, aggregator, computed, now, withdrawn)
        summary.status = "sent" if summary.requests_sent else "skipped"
    _log_run(conn, summary, started, run_id)
    log.info(
        "%s (%s run): %s doctors, %s free slots, %s busy cells; %s requests sent (%s bytes),"
        " %s not sent%s",
        aggregator,
        computed.mode,
        summary.doctors,
        summary.free_slots,
        summary.busy_cells,
        summary.requests_sent,
        summary.bytes_sent,
        summary.requests_skipped,
        "".join(f"; {note}" for note in summary.notes),
    )
    return summary


class _LastSent(NamedTuple):
    payload_hash: str
    sent_at: datetime
    stale_at: datetime | None


@dataclass
class _Send:
    """A request this run means to send, and why (see :func:`_plan`)."""

    key: str
    request: OutgoingRequest
    body_hash: str
    reason: str  # required | changed | time
    wire: bytes = b""  # the body as it goes on the wire (gzipped or not)


def _plan(
    spec: AggregatorKind,
    computed: _Computed,
    key: str,
    request: OutgoingRequest,
    previous: _LastSent | None,
    now: datetime,
    on_timer: bool,
) -> _Send | None:
    """Whether a request goes out, and why.

    ``required``: a polling run's rule (``skip_unchanged``) or a resend the service's own
    rules demand (``resend_every``).
    ``changed``: a change-driven run's body differs from the one last accepted and a
    change touched it (or it carries no time at all), or the run is the daily snapshot.
    ``time``: it differs only because time passed (no change touched its branches) and
    a free slot it offered has crossed today's cut-off since (``stale_at``): sent on a
    timer run only. A difference of time that offers nothing stale (busy time in
    progress clipped to the minute) waits for the next send that has to go anyway.
    """
    body_hash = hashlib.sha256(request.body).hexdigest()

    def send(reason: str) -> _Send:
        return _Send(key, request, body_hash, reason)

    changed = previous is None or previous.payload_hash != body_hash
    if computed.mode == "poll":
        skip_for = spec.skip_unchanged.get(request.kind)
        if changed or skip_for is None or previous.sent_at <= now - skip_for:
            return send("required")
        return None
    resend_every = spec.resend_every.get(request.kind)
    if previous is not None and resend_every is not None and previous.sent_at <= now - resend_every:
        return send("required")
    if computed.daily:
        return send("changed")
    if not changed:
        return None
    carries_time = request.kind == spec.schedule_request
    touched = computed.touched is None or not computed.touched.isdisjoint(request.branch_ids)
    if touched or not carries_time:
        return send("changed")
    if on_timer and previous.stale_at is not None and previous.stale_at <= now:
        return send("time")
    return None


def _within_budget(
    planned: list[_Send],
    budget: ByteBudget,
    spent_until: datetime | None,
    now: datetime,
    tick: datetime,
    summary: PublishSummary,
) -> list[_Send]:
    """What of a change-started run's ``planned`` goes now: the required sends always,
    the changed ones when the budget allows them. Otherwise the run is deferred until it
    does (``summary.deferred_until``) or, when that is not before the timer's next
    ``tick``, left to that tick, which sends what differs as polling would."""
    required = [s for s in planned if s.reason == "required"]
    changed = sum(len(s.wire) for s in planned if s.reason != "required")
    spent_until = budget.spend(spent_until, now, sum(len(s.wire) for s in required))
    ready = budget.earliest(spent_until, now, changed)
    if ready <= now:
        return planned
    summary.status = "deferred"
    summary.deferred_until = ready if ready < tick else None
    summary.notes.append(
        f"byte budget ({budget.per_hour} bytes an hour): {changed} bytes of changes wait"
        + (
            f" until {ready.isoformat(timespec='seconds')}"
            if ready < tick
            else f" for the timer's next tick ({tick.isoformat(timespec='minutes')})"
        )
    )
    return required


def _first_free_today(schedule: Schedule) -> dict[str, pd.Timestamp]:
    """Per branch, the start of its first free slot on its own today (none: absent)."""
    free = schedule.free
    if free.empty:
        return {}
    today = {
        zone: schedule.now.tz_convert(str(zone)).date().isoformat()
        for zone in free["timezone"].cat.categories
    }
    todays = free[free["local_date"].astype(str) == free["timezone"].map(today).astype(str)]
    return todays.groupby("branch_id", observed=True)["starts_at"].min().to_dict()


def _stale_at(
    request: OutgoingRequest, first_free: Mapping[str, pd.Timestamp], settings: ExportSettings
) -> datetime | None:
    """When a body goes stale by time alone: its first free slot of today enters the
    "no slots in the next N hours" window (None: it offers no free slot today)."""
    starts = [first_free[b] for b in request.branch_ids if b in first_free]
    if not starts:
        return None
    return (min(starts) - pd.Timedelta(hours=settings.skip_hours_today)).to_pydatetime()


def _refused_as_too_large(
    aggregator: str, instance: Aggregator, send: _Send, failure: ServiceError
) -> ServiceError:
    """A 413, said so that someone can act on it."""
    sent = len(send.wire)
    size = f"{len(send.request.body)} bytes" + (f" ({sent} gzipped)" if instance.gzip else "")
    limit = instance.request_limit
    return ServiceRejected(
        f"{aggregator} refused a body of {size} as too large (HTTP 413"
        f"{': ' + failure.service_message if failure.service_message else ''}); its limit is"
        f" below that, whereas max_request_bytes here is {limit or 'not set'}: set"
        f" max_request_bytes of {aggregator} in integrations.yaml to the receiver's limit",
        method=failure.method,
        endpoint=failure.endpoint,
        status=failure.status,
        service_message=failure.service_message,
        attempts=failure.attempts,
    )


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


def _keep(
    conn: psycopg.Connection, aggregator: str, computed: _Computed, now: datetime, withdrawn: bool
) -> None:
    """After the aggregator accepted the run: its state, and the changes it published."""
    if computed.mode == "idle":
        conn.execute(
            "update integration.schedule_state set snapshot = %s::pg_snapshot, withdrawn = %s"
            " where aggregator = %s",
            (computed.snapshot, withdrawn, aggregator),
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
            withdrawn=withdrawn,
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
             not_matched_doctors, mode, changes, doctors_recomputed, deferred_until)
        values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
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
            summary.deferred_until,
        ),
    )
    conn.commit()
