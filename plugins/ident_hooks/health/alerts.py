"""Alert decisions: what to say, to whom, and only once.

* **Outages and recoveries** — every health row (``status``) has a row in
  ``integration.alert_state`` keyed by its ``key``. A row turning red sends one message to
  the data team and marks it ``notified = red``; later checks that still find it red send
  nothing; the first check that finds it no longer red sends one recovery message. A
  message whose every channel failed leaves ``notified`` as it was, so the next check
  tries again. Covers integrations (stale, or failing twice in a row), other DAGs failing
  twice in a row, and clinic sync heartbeats gone stale.
* **НаПоправку bookings about to be cancelled** — one message per booking to its branch's
  front desk, once (``integration.alerts_sent`` says it went).
* **Leads left waiting** — a lead nobody took within ``lead_escalation_minutes`` is
  escalated once (``integration.lead_escalations``, primary key ``lead_id``); each front
  desk gets one message per check listing its newly escalated leads.

Messages carry no patient names or phones (Telegram is a third party): the lead's
number, source, branch and waiting time, and where to open it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from ident_hooks.health.notify import Channels, Delivery, Message, escape
from ident_hooks.health.settings import AlertsConfig
from ident_hooks.health.status import HealthReport, HealthRow, minutes_text

MAX_LEADS_PER_MESSAGE = 10
# How long the run log and the alert log are kept: enough for the page and an inquiry.
KEEP_DAG_RUNS = timedelta(days=14)
KEEP_ALERTS_SENT = timedelta(days=90)


@dataclass
class AlertSummary:
    """What one check sent: counts for the task's log and the tests."""

    outages: list[str] = field(default_factory=list)
    recoveries: list[str] = field(default_factory=list)
    bookings: list[int] = field(default_factory=list)
    escalated: list[int] = field(default_factory=list)
    failed_deliveries: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "outages": self.outages,
            "recoveries": self.recoveries,
            "bookings": self.bookings,
            "escalated": self.escalated,
            "failed_deliveries": self.failed_deliveries,
        }


def _record(
    conn: psycopg.Connection, message: Message, deliveries: Iterable[Delivery], now: datetime
) -> None:
    with conn.cursor() as cursor:
        cursor.executemany(
            "insert into integration.alerts_sent"
            " (alert_key, kind, channel, destination, message, error, sent_at)"
            " values (%s, %s, %s, %s, %s, %s, %s)",
            [
                (message.alert_key, message.kind, d.channel, d.address, message.body, d.error, now)
                for d in deliveries
            ],
        )


def _delivered(deliveries: list[Delivery], message: Message) -> bool:
    """Sent through some channel, or there was no channel to send through."""
    return not message.destination.reachable or any(d.error is None for d in deliveries)


def _send(
    conn: psycopg.Connection,
    channels: Channels,
    message: Message,
    summary: AlertSummary,
    now: datetime,
) -> bool:
    deliveries = channels.send(message)
    _record(conn, message, deliveries, now)
    summary.failed_deliveries += sum(d.error is not None for d in deliveries)
    return _delivered(deliveries, message)


def _when(moment: datetime | None, tz: Any) -> str:
    return moment.astimezone(tz).strftime("%d.%m %H:%M") if moment else "никогда"


def outage_message(row: HealthRow, config: AlertsConfig, tz: Any) -> Message:
    lines = [f"🔴 <b>{escape(row.title)}</b> — {escape(row.role_label.lower())}: сбой"]
    lines += [f"• {escape(reason)}" for reason in row.reasons]
    lines.append(f"Последний успех: {_when(row.last_success, tz)}")
    if row.last_error:
        lines.append(f"Последняя ошибка: <i>{escape(row.last_error)}</i>")
    if row.dag_id:
        lines.append(f"DAG: {escape(row.dag_id)}")
    return Message(
        alert_key=row.key,
        kind="outage",
        destination=config.data_team,
        subject=f"Сбой: {row.title}",
        body="\n".join(lines),
    )


def recovery_message(
    row: HealthRow, red_since: datetime | None, now: datetime, config: AlertsConfig, tz: Any
) -> Message:
    lines = [f"✅ <b>{escape(row.title)}</b> — {escape(row.role_label.lower())}: снова работает"]
    lines.append(f"Последний успех: {_when(row.last_success, tz)}")
    if red_since:
        lines.append(f"Сбой длился {minutes_text((now - red_since).total_seconds())}")
    return Message(
        alert_key=row.key,
        kind="recovery",
        destination=config.data_team,
        subject=f"Восстановлено: {row.title}",
        body="\n".join(lines),
    )


def alert_on_states(
    conn: psycopg.Connection,
    report: HealthReport,
    config: AlertsConfig,
    channels: Channels,
    *,
    now: datetime,
    tz: Any,
    summary: AlertSummary,
) -> None:
    """Outage and recovery messages for every health row (see the module's docstring)."""
    rows = [*report.rows, *report.other_dags]
    with conn.cursor(row_factory=dict_row) as cursor:
        known = {
            r["alert_key"]: r
            for r in cursor.execute(
                "select alert_key, state, since, notified, last_sent from integration.alert_state"
                " where alert_key = any(%s)",
                ([row.key for row in rows],),
            ).fetchall()
        }
    for row in rows:
        previous = known.get(row.key)
        since = previous["since"] if previous and previous["state"] == row.state else now
        notified = previous["notified"] if previous else None
        last_sent = previous["last_sent"] if previous else None
        message = None
        if row.state == "red" and notified != "red":
            message = outage_message(row, config, tz)
        elif row.state != "red" and notified == "red":
            red_since = previous["since"] if previous["state"] == "red" else last_sent
            message = recovery_message(row, red_since, now, config, tz)
        if message is not None and _send(conn, channels, message, summary, now):
            notified, last_sent = row.state, now
            (summary.outages if message.kind == "outage" else summary.recoveries).append(row.key)
        conn.execute(
            """
            insert into integration.alert_state
                   (alert_key, state, since, notified, last_sent, detail, checked_at)
            values (%s, %s, %s, %s, %s, %s, %s)
            on conflict (alert_key) do update
               set state = excluded.state, since = excluded.since, notified = excluded.notified,
                   last_sent = excluded.last_sent, detail = excluded.detail,
                   checked_at = excluded.checked_at
            """,
            (row.key, row.state, since, notified, last_sent, "; ".join(row.reasons), now),
        )
        conn.commit()


_BOOKINGS = """
select l.lead_id, l.source, l.branch_id, coalesce(b.name, l.branch_id) as branch_name,
       l.created_at, integration.lead_source_label(l.source) as source_label
  from integration.leads l
  left join clinic.branches b on b.branch_id = l.branch_id
 where l.lead_id = any(%s)
   and not exists (select from integration.alerts_sent a
                    where a.alert_key = 'booking:' || l.lead_id and a.error is null)
 order by l.created_at
"""


def alert_on_bookings(
    conn: psycopg.Connection,
    report: HealthReport,
    config: AlertsConfig,
    channels: Channels,
    *,
    now: datetime,
    tz: Any,
    summary: AlertSummary,
) -> None:
    """One message per НаПоправку booking near its cancellation, to its branch's desk."""
    from ident_hooks.health.status import ACKNOWLEDGE_WITHIN

    near = [lead_id for row in report.rows for lead_id in row.bookings_near_expiry]
    if not near:
        return
    with conn.cursor(row_factory=dict_row) as cursor:
        bookings = cursor.execute(_BOOKINGS, (near,)).fetchall()
    for booking in bookings:
        left = ACKNOWLEDGE_WITHIN - (now - booking["created_at"])
        desk = config.desk_for(booking["branch_id"])
        message = Message(
            alert_key=f"booking:{booking['lead_id']}",
            kind="booking",
            destination=desk,
            subject=f"Запись {booking['source_label']} не подтверждена",
            body=(
                f"⏰ <b>{escape(booking['source_label'])}: запись не подтверждена</b>\n"
                f"Заявка №{booking['lead_id']}, филиал {escape(booking['branch_name'] or '—')},"
                f" создана {_when(booking['created_at'], tz)}.\n"
                f"Сервис отменит её через {minutes_text(left.total_seconds())}, если она не"
                " будет подтверждена: подтвердите запись в кабинете сервиса."
            ),
        )
        if _send(conn, channels, message, summary, now):
            summary.bookings.append(booking["lead_id"])
        conn.commit()


_WAITING = """
select l.lead_id, l.branch_id, coalesce(b.name, l.branch_id) as branch_name, l.created_at,
       integration.lead_source_label(l.source) as source_label
  from integration.leads l
  left join clinic.branches b on b.branch_id = l.branch_id
 where l.status = 'new' and l.source_state is null
   and l.created_at <= %(due)s and l.created_at >= %(oldest)s
   and not exists (select from integration.lead_escalations e where e.lead_id = l.lead_id)
 order by l.created_at, l.lead_id
"""


def escalate_waiting_leads(
    conn: psycopg.Connection,
    config: AlertsConfig,
    channels: Channels,
    *,
    now: datetime,
    tz: Any,
    inbox_url: str | None,
    summary: AlertSummary,
) -> None:
    """Escalate every lead nobody took in time, once, to its branch's front desk."""
    from ident_hooks.inbox.store import configured_conversation_window, open_conversations

    limits = config.limits
    with conn.cursor(row_factory=dict_row) as cursor:
        waiting = cursor.execute(
            _WAITING,
            {"due": now - limits.lead_escalation, "oldest": now - limits.escalation_lookback},
        ).fetchall()
    # The inbox shows a person's leads as one row: once someone took it, a later lead of
    # that person (another form, a call) is being answered too and is no reason to alert.
    answered = {
        lead["lead_id"]
        for group in open_conversations(conn, configured_conversation_window())
        if any(lead["status"] == "in_progress" for lead in group)
        for lead in group
    }
    conn.commit()
    waiting = [lead for lead in waiting if lead["lead_id"] not in answered]
    by_desk: dict[str, list[dict[str, Any]]] = {}
    for lead in waiting:
        by_desk.setdefault(config.desk_for(lead["branch_id"]).name, []).append(lead)
    minutes = int(limits.lead_escalation.total_seconds() // 60)
    for desk_name, leads in by_desk.items():
        desk = config.front_desks[desk_name]
        lines = [f"⚠️ <b>Заявки ждут ответа дольше {minutes} мин</b> — {escape(desk.title)}"]
        for lead in leads[:MAX_LEADS_PER_MESSAGE]:
            lines.append(
                f"• №{lead['lead_id']} ({escape(lead['source_label'])}),"
                f" филиал {escape(lead['branch_name'] or '—')}:"
                f" ждёт {minutes_text((now - lead['created_at']).total_seconds())}"
            )
        if len(leads) > MAX_LEADS_PER_MESSAGE:
            lines.append(f"… и ещё {len(leads) - MAX_LEADS_PER_MESSAGE}")
        lines.append(
            f"Откройте «Заявки»: {escape(inbox_url)}" if inbox_url else "Откройте «Заявки»."
        )
        message = Message(
            alert_key=f"escalation:{desk_name}",
            kind="escalation",
            destination=desk,
            subject=f"Заявки ждут ответа: {len(leads)}",
            body="\n".join(lines),
        )
        deliveries = channels.send(message)
        _record(conn, message, deliveries, now)
        summary.failed_deliveries += sum(d.error is not None for d in deliveries)
        if not _delivered(deliveries, message):
            conn.commit()  # keep the failed attempts; the leads are tried again next check
            continue
        delivered = sorted({d.channel for d in deliveries if d.error is None})
        with conn.cursor() as cursor:
            cursor.executemany(
                "insert into integration.lead_escalations"
                " (lead_id, escalated_at, branch_id, desk, channels, waited_seconds)"
                " values (%s, %s, %s, %s, %s, %s) on conflict (lead_id) do nothing",
                [
                    (
                        lead["lead_id"],
                        now,
                        lead["branch_id"],
                        desk_name,
                        delivered,
                        int((now - lead["created_at"]).total_seconds()),
                    )
                    for lead in leads
                ],
            )
        conn.commit()
        summary.escalated.extend(lead["lead_id"] for lead in leads)


def run_checks(
    conn: psycopg.Connection,
    config: Any,
    alerts_config: AlertsConfig,
    *,
    now: datetime,
    channels: Channels | None = None,
    inbox_url: str | None = None,
) -> AlertSummary:
    """One health check: compute the health, alert on changes, escalate waiting leads."""
    from zoneinfo import ZoneInfo

    from ident_hooks.health.status import compute_health

    channels = channels or Channels(alerts_config)
    tz = ZoneInfo(config.clinic_timezone)
    summary = AlertSummary()
    report = compute_health(conn, config, alerts_config, now=now)
    conn.commit()
    alert_on_states(conn, report, alerts_config, channels, now=now, tz=tz, summary=summary)
    alert_on_bookings(conn, report, alerts_config, channels, now=now, tz=tz, summary=summary)
    escalate_waiting_leads(
        conn, alerts_config, channels, now=now, tz=tz, inbox_url=inbox_url, summary=summary
    )
    prune(conn, now=now)
    return summary


def prune(conn: psycopg.Connection, *, now: datetime) -> None:
    """Forget runs and sent alerts older than the retention periods above."""
    conn.execute(
        "delete from integration.dag_runs"
        " where coalesce(finished_at, started_at, recorded_at) < %s",
        (now - KEEP_DAG_RUNS,),
    )
    conn.execute(
        "delete from integration.alerts_sent where sent_at < %s", (now - KEEP_ALERTS_SENT,)
    )
    conn.commit()
