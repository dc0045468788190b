"""One health row per integration instance, plus the clinic's sync heartbeats.

Where each figure comes from (all in the clinic database, a handful of indexed queries):

* **last success / last error / failures in a row** — pulls: Airflow's own verdict on each
  run of ``pull_leads_<name>``, recorded by our listener in ``integration.dag_runs``
  (``listener``), with what the error says about the service (a partner that switched
  the integration off: :data:`PULL_DIAGNOSES`); publishing: ``integration.publish_log``
  (every run is a row), with the DAG's runs for failures that happen before anything is
  logged; pushed sources: the requests the intake service took in
  (``integration.intake_requests``); ad cost imports and conversion sinks: the runs of
  ``import_ad_costs_<name>`` and ``send_conversions_<name>`` in ``integration.dag_runs``;
  the clinic sync: ``clinic.sync_heartbeat``.
* **limit** — the integration's own interval (``include/integrations.yaml``) times
  ``limits.pull_intervals`` (3) or ``limits.publish_intervals`` (2) of ``include/alerts.yaml``;
  the heartbeat's ``limits.clinic_heartbeat_minutes``; a cost import, daily, a day and
  the time its retries take (:data:`COST_IMPORT_LIMIT`); a conversion sink, hourly, a few
  hours (:data:`CONVERSION_SEND_LIMIT`). Pushed sources have none: a quiet website is not
  an outage.
* **today** — leads created and records rejected since 00:00 of the clinic's time zone;
  free slots in the last successful publish; НаПоправку bookings not yet acknowledged (the
  service cancels them 10 minutes after creation, ``napopravku/rta-api-service-client``
  README); doctors the aggregator could not match (``publish_log.not_matched_doctors``).
* **detail** — a conversion sink's uploads of the last 7 days
  (``integration.conversion_uploads``): rows sent, linked and not linked as the service
  counted them, uploads still being processed.

The verdict (:func:`judge`) is pure: **red** when the last success is older than the limit
(or, never having succeeded, the first run is), or the DAG failed twice in a row;
**yellow** when the last run failed, something needs a look (rejects, unmatched doctors,
bookings near cancellation) or nothing has run yet; **green** otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import psycopg
from psycopg.rows import dict_row

from ident_hooks.config import ConversionSink, CostSource, IntegrationsConfig
from ident_hooks.health.redact import redact
from ident_hooks.health.settings import AlertsConfig

State = Literal["green", "yellow", "red"]
# НаПоправку cancels a booking not acknowledged within 10 minutes of its creation
# (napopravku/rta-api-service-client, README.md); the only acknowledging kind in registry.py.
ACKNOWLEDGE_WITHIN = timedelta(minutes=10)
FAILURES_IN_A_ROW = 2  # a DAG failing this many runs in a row is red, whatever its age
HEALTH_DAG_ID = "integration_health"
# A cost import runs once a day (dags/import_ad_costs.py); two hours cover its retries and a
# slow report build at the ad platform, so one missed day turns it red.
COST_IMPORT_LIMIT = timedelta(hours=26)
# Conversions go hourly (dags/send_conversions.py) and the services link them for weeks: a
# few missed runs lose nothing, a morning without one is worth a look.
CONVERSION_SEND_LIMIT = timedelta(hours=6)
# What a conversion sink's row counts of its uploads, and when an upload the service is
# still processing is overdue (Metrica processes an upload within hours).
CONVERSION_UPLOADS_PERIOD = timedelta(days=7)
UPLOAD_PROCESSING_OVERDUE = timedelta(days=1)
# What the diagnosis of a pull's last failure (integration.dag_runs.diagnosis, written by the
# listener from the error) means for staff.
PULL_DIAGNOSES = {
    "switched_off": "Интеграция отключена на стороне партнёра: попросите партнёра включить её"
    " снова; заявки за это время загрузятся при первом удачном запуске",
}
ROLE_LABELS = {
    "lead_source": "Источник заявок",
    "push_source": "Источник заявок (присылает сам)",
    "aggregator": "Агрегатор",
    "cost_source": "Расходы на рекламу",
    "conversion_sink": "Конверсии в рекламные системы",
    "clinic_sync": "Данные клиники",
    "dag": "Процесс",
}


@dataclass(frozen=True)
class Verdict:
    state: State
    reasons: tuple[str, ...]


def minutes_text(seconds: float) -> str:
    """A Russian age: «45 с», «7 мин», «2 ч 05 мин», «3 дн 4 ч»."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} с"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} мин"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} ч {minutes:02d} мин"
    days, hours = divmod(hours, 24)
    return f"{days} дн {hours} ч"


def judge(
    *,
    now: datetime,
    last_success: datetime | None,
    first_seen: datetime | None,
    limit: timedelta | None,
    last_failed: bool,
    failures_in_a_row: int,
    warnings: Iterable[str] = (),
) -> Verdict:
    """Green, yellow or red, with the reasons in Russian (see the module's docstring)."""
    reasons: list[str] = []
    red = False
    reference = last_success or first_seen
    if limit is not None and reference is not None and now - reference > limit:
        red = True
        if last_success is None:
            reasons.append(
                f"ни одного успешного запуска за {minutes_text((now - reference).total_seconds())}"
                f" (предел {minutes_text(limit.total_seconds())})"
            )
        else:
            reasons.append(
                f"последний успех {minutes_text((now - last_success).total_seconds())} назад"
                f" (предел {minutes_text(limit.total_seconds())})"
            )
    if failures_in_a_row >= FAILURES_IN_A_ROW:
        red = True
        reasons.append(f"ошибка {failures_in_a_row} запуска подряд")
    elif last_failed:
        reasons.append("последний запуск завершился ошибкой")
    if reference is None and limit is not None:
        reasons.append("ещё не запускалась")
    reasons.extend(warnings)
    if red:
        return Verdict("red", tuple(reasons))
    return Verdict("yellow" if reasons else "green", tuple(reasons))


@dataclass(frozen=True)
class HealthRow:
    """One watched thing: an integration instance, a clinic sync source, or another DAG."""

    key: str  # the alert key, e.g. "lead_source:uis"
    role: str
    name: str
    title: str
    kind: str | None
    dag_id: str | None
    interval_minutes: int | None
    limit_minutes: int | None
    last_success: datetime | None
    age_seconds: int | None
    last_error: str | None
    last_error_at: datetime | None
    failures_in_a_row: int
    state: State
    reasons: tuple[str, ...]
    leads_today: int | None = None
    rejects_today: int | None = None
    slots_published: int | None = None
    bookings_waiting: int | None = None  # not acknowledged yet, still within the 10 minutes
    bookings_near_expiry: tuple[int, ...] = ()  # lead ids past the warning, not yet cancelled
    bookings_lost_today: int | None = None  # unacknowledged past the 10 minutes
    not_matched_doctors: tuple[str, ...] = ()
    detail: str | None = None  # a sentence of figures, e.g. a conversion sink's uploads

    @property
    def role_label(self) -> str:
        return ROLE_LABELS.get(self.role, self.role)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["role_label"] = self.role_label
        return data


@dataclass(frozen=True)
class HealthReport:
    checked_at: datetime
    clinic_today: date
    rows: tuple[HealthRow, ...]
    # The DAGs of this deployment that are no integration (reports, migrations, this check).
    other_dags: tuple[HealthRow, ...] = ()
    escalations_today: int = 0
    open_leads_overdue: int = 0
    last_check: datetime | None = None  # the integration_health DAG's last successful run

    @property
    def state(self) -> State:
        states = {row.state for row in (*self.rows, *self.other_dags)}
        return "red" if "red" in states else "yellow" if "yellow" in states else "green"

    def counts(self) -> dict[str, int]:
        every = (*self.rows, *self.other_dags)
        return {
            state: sum(row.state == state for row in every) for state in ("green", "yellow", "red")
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "checked_at": self.checked_at,
            "clinic_today": self.clinic_today,
            "state": self.state,
            "counts": self.counts(),
            "last_check": self.last_check,
            "escalations_today": self.escalations_today,
            "open_leads_overdue": self.open_leads_overdue,
            "integrations": [row.as_dict() for row in self.rows],
            "dags": [row.as_dict() for row in self.other_dags],
        }


# -- queries ----------------------------------------------------------------------------------
_DAG_RUNS = """
select d.dag_id, s.last_success, first.first_seen, last.state as last_state,
       fails.failures, err.error, err.error_at, err.diagnosis
  from unnest(%(dag_ids)s::text[]) as d (dag_id)
  left join lateral (
        select max(finished_at) as last_success from integration.dag_runs r
         where r.dag_id = d.dag_id and r.state = 'success') s on true
  left join lateral (
        select min(coalesce(started_at, recorded_at)) as first_seen from integration.dag_runs r
         where r.dag_id = d.dag_id) first on true
  left join lateral (
        select state from integration.dag_runs r
         where r.dag_id = d.dag_id and r.state in ('success', 'failed')
         order by finished_at desc nulls last limit 1) last on true
  left join lateral (
        select count(*) as failures from integration.dag_runs r
         where r.dag_id = d.dag_id and r.state = 'failed'
           and r.finished_at > coalesce(s.last_success, '-infinity')) fails on true
  left join lateral (
        select error, error_at, diagnosis from integration.dag_runs r
         where r.dag_id = d.dag_id and r.error is not null
         order by error_at desc nulls last limit 1) err on true
"""

_LEADS_TODAY = """
select source, count(*) from integration.leads
 where created_at >= %(midnight)s and source = any(%(sources)s) group by source
"""

_REJECTS_TODAY = """
select source, count(*) from (
    select source from integration.lead_rejects
     where last_seen_at >= %(midnight)s and source = any(%(sources)s)
    union all
    select source from integration.intake_requests
     where received_at >= %(midnight)s and outcome = 'rejected' and source = any(%(sources)s)
) rejects group by source
"""

_BOOKINGS = """
select source, lead_id, created_at from integration.leads
 where source = any(%(sources)s) and ack_required and acknowledged_at is null
   and ack_error is null and created_at >= %(midnight)s
"""

_PUBLISH = """
select a.aggregator, ok.last_success, first.first_seen, last.status as last_status,
       ok.free_slots, fails.failures, err.error, err.finished_at as error_at,
       unmatched.not_matched_doctors
  from unnest(%(aggregators)s::text[]) as a (aggregator)
  left join lateral (
        select finished_at as last_success, free_slots from integration.publish_log p
         where p.aggregator = a.aggregator and p.status in ('sent', 'skipped')
         order by started_at desc limit 1) ok on true
  left join lateral (
        select min(started_at) as first_seen from integration.publish_log p
         where p.aggregator = a.aggregator) first on true
  left join lateral (
        select status from integration.publish_log p
         where p.aggregator = a.aggregator order by started_at desc limit 1) last on true
  left join lateral (
        select count(*) as failures from integration.publish_log p
         where p.aggregator = a.aggregator and p.status = 'failed'
           and p.finished_at > coalesce(ok.last_success, '-infinity')) fails on true
  left join lateral (
        select error, finished_at from integration.publish_log p
         where p.aggregator = a.aggregator and p.status = 'failed'
         order by started_at desc limit 1) err on true
  left join lateral (
        select not_matched_doctors from integration.publish_log p
         where p.aggregator = a.aggregator and p.not_matched_doctors is not null
         order by started_at desc limit 1) unmatched on true
"""

_PUSHED = """
select s.source, ok.last_success, bad.reason, bad.received_at
  from unnest(%(sources)s::text[]) as s (source)
  left join lateral (
        select max(received_at) as last_success from integration.intake_requests r
         where r.source = s.source and r.outcome <> 'rejected') ok on true
  left join lateral (
        select reason, received_at from integration.intake_requests r
         where r.source = s.source and r.outcome = 'rejected'
         order by received_at desc limit 1) bad on true
"""


def _by_key(rows: Iterable[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {row[key]: row for row in rows}


def _query(conn: psycopg.Connection, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(sql, params).fetchall()


def _counts(conn: psycopg.Connection, sql: str, params: dict[str, Any]) -> dict[str, int]:
    return dict(conn.execute(sql, params).fetchall())


def _age(now: datetime, moment: datetime | None) -> int | None:
    return None if moment is None else int((now - moment).total_seconds())


def _minutes(delta: timedelta | None) -> int | None:
    return None if delta is None else int(delta.total_seconds() // 60)


def _later(*pairs: tuple[str | None, datetime | None]) -> tuple[str | None, datetime | None]:
    """The newer of (error, when) pairs."""
    known = [pair for pair in pairs if pair[0]]
    if not known:
        return None, None
    return max(known, key=lambda pair: pair[1] or datetime.min.replace(tzinfo=UTC))


def compute_health(
    conn: psycopg.Connection,
    config: IntegrationsConfig,
    alerts_config: AlertsConfig,
    *,
    now: datetime,
) -> HealthReport:
    """The health of every configured integration and clinic sync source at ``now``."""
    limits = alerts_config.limits
    clinic_tz = ZoneInfo(config.clinic_timezone)
    today = now.astimezone(clinic_tz).date()
    midnight = datetime.combine(today, datetime.min.time(), clinic_tz)
    pulled = [s for s in config.lead_sources if not s.spec.push]
    pushed = [s for s in config.lead_sources if s.spec.push]
    source_names = [s.name for s in config.lead_sources]
    pull_dags = {s.dag_id: s for s in pulled}
    publish_dags = {a.dag_id: a for a in config.aggregators}
    cost_dags = {s.dag_id: s for s in config.cost_sources}
    sink_dags = {s.dag_id: s for s in config.conversion_sinks}
    integration_dags = [*pull_dags, *publish_dags, *cost_dags, *sink_dags]
    known_dags = [
        row[0]
        for row in conn.execute(
            "select distinct dag_id from integration.dag_runs where dag_id <> all(%s)",
            (integration_dags,),
        ).fetchall()
    ]
    runs = _by_key(_query(conn, _DAG_RUNS, {"dag_ids": [*integration_dags, *known_dags]}), "dag_id")
    day = {"midnight": midnight, "sources": source_names}
    leads_today = _counts(conn, _LEADS_TODAY, day)
    rejects_today = _counts(conn, _REJECTS_TODAY, day)
    bookings: dict[str, list[dict[str, Any]]] = {}
    acknowledging = [s.name for s in pulled if s.spec.acknowledges]
    for booking in _query(conn, _BOOKINGS, {"midnight": midnight, "sources": acknowledging}):
        bookings.setdefault(booking["source"], []).append(booking)

    rows: list[HealthRow] = []
    for dag_id, source in pull_dags.items():
        run = runs.get(dag_id, {})
        limit = source.interval * limits.pull_intervals
        warnings = []
        if run.get("last_state") == "failed" and run.get("diagnosis") in PULL_DIAGNOSES:
            warnings.append(PULL_DIAGNOSES[run["diagnosis"]])
        rejected = rejects_today.get(source.name, 0)
        if rejected:
            warnings.append(f"отклонено записей сегодня: {rejected}")
        waiting = near = lost = None
        if source.spec.acknowledges:
            pending = bookings.get(source.name, [])
            ages = [(b["lead_id"], now - b["created_at"]) for b in pending]
            near = tuple(
                sorted(i for i, age in ages if limits.booking_warning <= age < ACKNOWLEDGE_WITHIN)
            )
            waiting = sum(age < ACKNOWLEDGE_WITHIN for _, age in ages)
            lost = sum(age >= ACKNOWLEDGE_WITHIN for _, age in ages)
            if near:
                warnings.append(f"записей без подтверждения, скоро отмена: {len(near)}")
            if lost:
                warnings.append(f"записей не подтверждено вовремя сегодня: {lost}")
        rows.append(
            _run_row(
                dag_id,
                run,
                now,
                role="lead_source",
                name=source.name,
                title=source.title,
                kind=source.kind,
                interval=source.interval,
                limit=limit,
                warnings=warnings,
                leads_today=leads_today.get(source.name, 0),
                rejects_today=rejected,
                bookings_waiting=waiting,
                bookings_near_expiry=near or (),
                bookings_lost_today=lost,
            )
        )

    for row in _query(conn, _PUSHED, {"sources": [s.name for s in pushed]}):
        source = config.lead_source(row["source"])
        rejected = rejects_today.get(source.name, 0)
        failed_last = bool(
            row["received_at"]
            and (row["last_success"] is None or row["received_at"] > row["last_success"])
        )
        verdict = judge(
            now=now,
            last_success=row["last_success"],
            first_seen=None,
            limit=None,
            last_failed=failed_last,
            failures_in_a_row=0,
            warnings=[f"отклонено запросов и записей сегодня: {rejected}"] if rejected else [],
        )
        rows.append(
            HealthRow(
                key=f"push_source:{source.name}",
                role="push_source",
                name=source.name,
                title=source.title,
                kind=source.kind,
                dag_id=None,
                interval_minutes=None,
                limit_minutes=None,
                last_success=row["last_success"],
                age_seconds=_age(now, row["last_success"]),
                last_error=redact(row["reason"]),
                last_error_at=row["received_at"],
                failures_in_a_row=0,
                state=verdict.state,
                reasons=verdict.reasons,
                leads_today=leads_today.get(source.name, 0),
                rejects_today=rejected,
            )
        )

    published = _by_key(
        _query(conn, _PUBLISH, {"aggregators": [a.name for a in config.aggregators]}),
        "aggregator",
    )
    for dag_id, aggregator in publish_dags.items():
        log, run = published.get(aggregator.name, {}), runs.get(dag_id, {})
        limit = aggregator.interval * limits.publish_intervals
        unmatched = tuple(log.get("not_matched_doctors") or ())
        warnings = [f"не сопоставлены врачи: {len(unmatched)}"] if unmatched else []
        error, error_at = _later(
            (log.get("error"), log.get("error_at")), (run.get("error"), run.get("error_at"))
        )
        failures = max(log.get("failures") or 0, run.get("failures") or 0)
        firsts = [moment for moment in (log.get("first_seen"), run.get("first_seen")) if moment]
        verdict = judge(
            now=now,
            last_success=log.get("last_success"),
            first_seen=min(firsts) if firsts else None,
            limit=limit,
            last_failed=log.get("last_status") == "failed" or run.get("last_state") == "failed",
            failures_in_a_row=failures,
            warnings=warnings,
        )
        rows.append(
            HealthRow(
                key=f"aggregator:{aggregator.name}",
                role="aggregator",
                name=aggregator.name,
                title=aggregator.title,
                kind=aggregator.kind,
                dag_id=dag_id,
                interval_minutes=_minutes(aggregator.interval),
                limit_minutes=_minutes(limit),
                last_success=log.get("last_success"),
                age_seconds=_age(now, log.get("last_success")),
                last_error=redact(error),
                last_error_at=error_at,
                failures_in_a_row=failures,
                state=verdict.state,
                reasons=verdict.reasons,
                slots_published=log.get("free_slots"),
                not_matched_doctors=unmatched,
            )
        )

    rows.extend(_cost_rows(cost_dags, runs, now))
    rows.extend(_conversion_rows(conn, sink_dags, runs, now))
    rows.extend(_heartbeat_rows(conn, now, limits.clinic_heartbeat))
    other = [_dag_row(dag_id, runs.get(dag_id, {}), now) for dag_id in sorted(known_dags)]
    escalations, overdue = conn.execute(
        """
        select (select count(*) from integration.lead_escalations where escalated_at >= %s),
               (select count(*) from integration.leads
                 where status = 'new' and source_state is null and created_at < %s
                   and created_at >= %s)
        """,
        (midnight, now - limits.lead_escalation, now - limits.escalation_lookback),
    ).fetchone()
    return HealthReport(
        checked_at=now,
        clinic_today=today,
        rows=tuple(rows),
        other_dags=tuple(other),
        escalations_today=escalations,
        open_leads_overdue=overdue,
        last_check=runs.get(HEALTH_DAG_ID, {}).get("last_success"),
    )


def _cost_rows(
    cost_dags: dict[str, CostSource], runs: dict[str, dict[str, Any]], now: datetime
) -> list[HealthRow]:
    """One row per ad cost import: red once a day's import is missed or fails twice."""
    return [
        _run_row(
            dag_id,
            runs.get(dag_id, {}),
            now,
            role="cost_source",
            name=source.name,
            title=source.title,
            kind=source.kind,
            interval=timedelta(days=1),
            limit=COST_IMPORT_LIMIT,
        )
        for dag_id, source in cost_dags.items()
    ]


_CONVERSION_UPLOADS = """
select sink, sum(rows_sent) as rows_sent, sum(linked_quantity) as linked,
       sum(user_not_found_quantity) as user_not_found,
       sum(goal_not_found_quantity) as goal_not_found,
       count(*) filter (where not finished) as processing,
       count(*) filter (where not finished and uploaded_at < %(overdue)s) as overdue
  from integration.conversion_uploads
 where sink = any(%(sinks)s) and uploaded_at >= %(since)s
 group by sink
"""


def _conversion_rows(
    conn: psycopg.Connection,
    sink_dags: dict[str, ConversionSink],
    runs: dict[str, dict[str, Any]],
    now: datetime,
) -> list[HealthRow]:
    """One row per conversion sink, judged by its DAG's runs, with what the service said
    of the last 7 days' uploads: rows it could not link are shown, a goal the counter does
    not have is a warning."""
    uploads = _by_key(
        _query(
            conn,
            _CONVERSION_UPLOADS,
            {
                "sinks": [sink.name for sink in sink_dags.values()],
                "since": now - CONVERSION_UPLOADS_PERIOD,
                "overdue": now - UPLOAD_PROCESSING_OVERDUE,
            },
        ),
        "sink",
    )
    rows = []
    for dag_id, sink in sink_dags.items():
        figures = uploads.get(sink.name, {})
        warnings = []
        if figures.get("goal_not_found"):
            warnings.append(
                f"цель не найдена в счётчике: {figures['goal_not_found']} строк за 7 дней —"
                " проверьте идентификаторы целей"
            )
        if figures.get("overdue"):
            warnings.append(f"загрузок в обработке дольше суток: {figures['overdue']}")
        rows.append(
            _run_row(
                dag_id,
                runs.get(dag_id, {}),
                now,
                role="conversion_sink",
                name=sink.name,
                title=sink.title,
                kind=sink.kind,
                interval=timedelta(hours=1),
                limit=CONVERSION_SEND_LIMIT,
                warnings=warnings,
                detail=_uploads_text(figures),
            )
        )
    return rows


def _uploads_text(figures: dict[str, Any]) -> str:
    """«за 7 дней: отправлено 40, связано 31, посетитель не найден 9; загрузок в
    обработке: 1» — the service's own counts, those it gives."""
    if not figures.get("rows_sent"):
        return "за 7 дней ничего не отправлено"
    counts = [f"отправлено {figures['rows_sent']}"]
    for key, label in (
        ("linked", "связано"),
        ("user_not_found", "посетитель не найден"),
        ("goal_not_found", "цель не найдена"),
    ):
        if figures.get(key) is not None:
            counts.append(f"{label} {figures[key]}")
    text = "за 7 дней: " + ", ".join(counts)
    if figures.get("processing"):
        text += f"; загрузок в обработке: {figures['processing']}"
    return text


def _heartbeat_rows(conn: psycopg.Connection, now: datetime, limit: timedelta) -> list[HealthRow]:
    beats = conn.execute(
        "select source, synced_at from clinic.sync_heartbeat order by source"
    ).fetchall()
    if not beats:
        return [
            HealthRow(
                key="clinic_sync:",
                role="clinic_sync",
                name="",
                title="Синхронизация клиники",
                kind=None,
                dag_id=None,
                interval_minutes=None,
                limit_minutes=_minutes(limit),
                last_success=None,
                age_seconds=None,
                last_error=None,
                last_error_at=None,
                failures_in_a_row=0,
                state="yellow",
                reasons=("клиника не записала ни одной отметки в clinic.sync_heartbeat",),
            )
        ]
    rows = []
    for source, synced_at in beats:
        verdict = judge(
            now=now,
            last_success=synced_at,
            first_seen=synced_at,
            limit=limit,
            last_failed=False,
            failures_in_a_row=0,
        )
        rows.append(
            HealthRow(
                key=f"clinic_sync:{source}",
                role="clinic_sync",
                name=source,
                title=f"Синхронизация клиники «{source}»",
                kind=None,
                dag_id=None,
                interval_minutes=None,
                limit_minutes=_minutes(limit),
                last_success=synced_at,
                age_seconds=_age(now, synced_at),
                last_error=None,
                last_error_at=None,
                failures_in_a_row=0,
                state=verdict.state,
                reasons=verdict.reasons,
            )
        )
    return rows


def _dag_row(dag_id: str, run: dict[str, Any], now: datetime) -> HealthRow:
    """A DAG that is no integration: red only when it failed twice in a row."""
    return _run_row(
        dag_id,
        run,
        now,
        role="dag",
        name=dag_id,
        title=dag_id,
        kind=None,
        interval=None,
        limit=None,
    )


def _run_row(
    dag_id: str,
    run: dict[str, Any],
    now: datetime,
    *,
    role: str,
    name: str,
    title: str,
    kind: str | None,
    interval: timedelta | None,
    limit: timedelta | None,
    warnings: Iterable[str] = (),
    **figures: Any,
) -> HealthRow:
    """The row of something judged by its DAG's runs (``integration.dag_runs``): its last
    success, its last error and the failures since, against ``limit``."""
    failures = run.get("failures") or 0
    verdict = judge(
        now=now,
        last_success=run.get("last_success"),
        first_seen=run.get("first_seen"),
        limit=limit,
        last_failed=run.get("last_state") == "failed",
        failures_in_a_row=failures,
        warnings=warnings,
    )
    return HealthRow(
        key=f"{role}:{name}",
        role=role,
        name=name,
        title=title,
        kind=kind,
        dag_id=dag_id,
        interval_minutes=_minutes(interval),
        limit_minutes=_minutes(limit),
        last_success=run.get("last_success"),
        age_seconds=_age(now, run.get("last_success")),
        last_error=redact(run.get("error")),
        last_error_at=run.get("error_at"),
        failures_in_a_row=failures,
        state=verdict.state,
        reasons=verdict.reasons,
        **figures,
    )
