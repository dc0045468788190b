"""The health rows computed from the clinic database, and the alerts they lead to: an
aggregator's figures, НаПоправку bookings about to be cancelled, a stale clinic heartbeat."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from alert_targets import DATA_CHAT, MSK_CHAT

from ident_hooks.config import load_config
from ident_hooks.health.alerts import run_checks
from ident_hooks.health.settings import load_alerts_config
from ident_hooks.health.status import compute_health, judge

MOSCOW = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 12, 2, 15, 0, tzinfo=MOSCOW)


def _report(conn, now=NOW):
    report = compute_health(conn, load_config(), load_alerts_config(), now=now)
    conn.commit()
    return {row.key: row for row in report.rows}, report


def _publish(conn, aggregator, status, minutes_ago, **columns):
    row = {
        "aggregator": aggregator,
        "started_at": NOW - timedelta(minutes=minutes_ago, seconds=5),
        "finished_at": NOW - timedelta(minutes=minutes_ago),
        "status": status,
        **columns,
    }
    names, values = ", ".join(row), ", ".join(f"%({n})s" for n in row)
    conn.execute(f"insert into integration.publish_log ({names}) values ({values})", row)


def _booking(conn, minutes_ago, branch_id="msk", acknowledged=False) -> int:
    (lead_id,) = conn.execute(
        "insert into integration.leads (source, external_id, created_at, branch_id, raw,"
        " ack_required, acknowledged_at) values ('napopravku', %s, %s, %s, %s, true, %s)"
        " returning lead_id",
        (
            uuid.uuid4().hex,
            NOW - timedelta(minutes=minutes_ago),
            branch_id,
            json.dumps({}),
            NOW if acknowledged else None,
        ),
    ).fetchone()
    return lead_id


def test_the_verdict_follows_the_limits():
    limit = timedelta(minutes=6)
    fresh = NOW - timedelta(minutes=2)
    assert judge(
        now=NOW, last_success=fresh, first_seen=fresh, limit=limit, last_failed=False,
        failures_in_a_row=0,
    ).state == "green"  # fmt: skip
    assert judge(
        now=NOW, last_success=fresh, first_seen=fresh, limit=limit, last_failed=True,
        failures_in_a_row=1,
    ).state == "yellow"  # fmt: skip
    assert judge(
        now=NOW, last_success=fresh, first_seen=fresh, limit=limit, last_failed=True,
        failures_in_a_row=2,
    ).state == "red"  # fmt: skip
    stale = judge(
        now=NOW, last_success=NOW - timedelta(minutes=7), first_seen=None, limit=limit,
        last_failed=False, failures_in_a_row=0,
    )  # fmt: skip
    assert stale.state == "red" and stale.reasons == ("последний успех 7 мин назад (предел 6 мин)",)
    never = judge(
        now=NOW, last_success=None, first_seen=None, limit=limit, last_failed=False,
        failures_in_a_row=0,
    )  # fmt: skip
    assert never == never.__class__("yellow", ("ещё не запускалась",))


def test_rows_carry_the_aggregators_figures_and_the_bookings(alert_channels, health_conn):
    _publish(health_conn, "napopravku", "sent", 25, free_slots=90)
    _publish(
        health_conn, "napopravku", "sent", 15, free_slots=120,
        not_matched_doctors=["Петров Геннадий Андреевич"],
    )  # fmt: skip
    _publish(health_conn, "napopravku", "failed", 5, error="POST slots -> 500: token=abc123 down")
    _publish(health_conn, "prodoctorov", "skipped", 3, free_slots=40)
    near = _booking(health_conn, 7)
    _booking(health_conn, 3)  # fresh: the pull acknowledges it in time
    _booking(health_conn, 12)  # past 10 minutes: cancelled by the service
    _booking(health_conn, 8, acknowledged=True)
    health_conn.commit()

    rows, report = _report(health_conn)
    napopravku = rows["aggregator:napopravku"]
    assert (napopravku.state, napopravku.slots_published) == ("yellow", 120)  # last run failed
    assert napopravku.not_matched_doctors == ("Петров Геннадий Андреевич",)
    assert napopravku.last_error == "POST slots -> 500: token=*** down"
    assert napopravku.limit_minutes == 20 and napopravku.age_seconds == 15 * 60
    prodoctorov = rows["aggregator:prodoctorov"]
    assert (prodoctorov.state, prodoctorov.slots_published) == ("green", 40)
    assert rows["aggregator:sberzdorovie"].reasons == ("ещё не запускалась",)
    bookings = rows["lead_source:napopravku"]
    assert bookings.bookings_near_expiry == (near,)
    assert (bookings.bookings_waiting, bookings.bookings_lost_today) == (2, 1)
    assert bookings.leads_today == 4
    assert rows["push_source:tilda"].state == "green"
    assert report.as_dict()["counts"]["red"] == 0

    first = run_checks(health_conn, load_config(), load_alerts_config(), now=NOW)
    again = run_checks(
        health_conn, load_config(), load_alerts_config(), now=NOW + timedelta(minutes=1)
    )
    assert (first.bookings, again.bookings) == ([near], [])
    telegram, _ = alert_channels
    # The desk also hears of these leads waiting (escalation); one booking message, once.
    (message,) = [m for m in telegram.messages_to(MSK_CHAT) if "не подтверждена" in m.plain]
    assert f"№{near}" in message.plain and "отменит её через 3 мин" in message.plain


def test_a_stale_clinic_heartbeat_turns_red_once_and_back(alert_channels, health_conn):
    telegram, smtp = alert_channels
    beat = "insert into clinic.sync_heartbeat values ('ident', %s) on conflict (source)"
    beat += " do update set synced_at = excluded.synced_at"
    health_conn.execute(beat, (NOW - timedelta(minutes=10),))
    health_conn.commit()
    assert _report(health_conn)[0]["clinic_sync:ident"].state == "green"
    run_checks(health_conn, load_config(), load_alerts_config(), now=NOW)

    later = NOW + timedelta(minutes=25)  # 35 minutes since the sync: limit 30
    rows, _ = _report(health_conn, later)
    assert rows["clinic_sync:ident"].state == "red"
    run_checks(health_conn, load_config(), load_alerts_config(), now=later)
    run_checks(health_conn, load_config(), load_alerts_config(), now=later + timedelta(minutes=1))
    health_conn.execute(beat, (later + timedelta(minutes=2),))
    health_conn.commit()
    run_checks(health_conn, load_config(), load_alerts_config(), now=later + timedelta(minutes=2))

    texts = [m.plain for m in telegram.messages_to(DATA_CHAT) if "Синхронизация" in m.plain]
    assert len(texts) == 2
    assert "сбой" in texts[0] and "предел 30 мин" in texts[0] and "снова работает" in texts[1]


def _cost_import_run(conn, dag_id, state, hours_ago, error=None):
    finished = NOW - timedelta(hours=hours_ago)
    conn.execute(
        "insert into integration.dag_runs"
        " (dag_id, run_id, state, started_at, finished_at, error, error_at)"
        " values (%s, %s, %s, %s, %s, %s, %s)",
        (dag_id, uuid.uuid4().hex, state, finished - timedelta(minutes=1), finished, error,
         finished if error else None),
    )  # fmt: skip


def test_an_ad_cost_import_has_its_row_red_once_a_day_is_missed(health_conn):
    (source,) = load_config().cost_sources
    key = f"cost_source:{source.name}"
    rows, _ = _report(health_conn)
    assert (rows[key].state, rows[key].reasons) == ("yellow", ("ещё не запускалась",))

    _cost_import_run(health_conn, source.dag_id, "success", 25)
    health_conn.commit()
    rows, report = _report(health_conn)
    assert (rows[key].state, rows[key].role_label) == ("green", "Расходы на рекламу")
    assert rows[key].limit_minutes == 26 * 60
    # Not shown twice: the import is an integration row, not one of the other DAGs.
    assert source.dag_id not in {row.dag_id for row in report.other_dags}

    rows, _ = _report(health_conn, now=NOW + timedelta(hours=2))
    assert rows[key].state == "red"  # yesterday's import is missing

    _cost_import_run(health_conn, source.dag_id, "failed", 2, error="error 53: token=abc123")
    _cost_import_run(health_conn, source.dag_id, "failed", 1, error="error 53: token=abc123")
    health_conn.commit()
    rows, _ = _report(health_conn)
    assert (rows[key].state, rows[key].failures_in_a_row) == ("red", 2)
    assert rows[key].last_error == "error 53: token=***"


def _upload(conn, sink, upload_id, hours_ago, rows_sent, finished=True, **counts):
    conn.execute(
        "insert into integration.conversion_uploads (sink, upload_id, channel, uploaded_at,"
        " rows_sent, finished, linked_quantity, user_not_found_quantity,"
        " goal_not_found_quantity) values (%s, %s, 'offline_conversions', %s, %s, %s, %s, %s,"
        " %s)",
        (sink, upload_id, NOW - timedelta(hours=hours_ago), rows_sent, finished,
         counts.get("linked"), counts.get("user_not_found"), counts.get("goal_not_found")),
    )  # fmt: skip


def test_a_conversion_sink_has_its_row_with_the_rows_the_service_could_not_link(health_conn):
    sink = load_config().conversion_sink("yandex_metrica")
    key = f"conversion_sink:{sink.name}"
    rows, _ = _report(health_conn)
    assert (rows[key].state, rows[key].reasons) == ("yellow", ("ещё не запускалась",))
    assert rows[key].detail == "за 7 дней ничего не отправлено"
    assert rows["conversion_sink:uis_deals"].role_label == "Конверсии в рекламные системы"

    _cost_import_run(health_conn, sink.dag_id, "success", 1)
    _upload(health_conn, sink.name, "1", 9 * 24, 100, linked=100, user_not_found=0)  # too old
    _upload(health_conn, sink.name, "2", 3 * 24, 30, linked=24, user_not_found=6, goal_not_found=0)
    _upload(health_conn, sink.name, "3", 26, 1, linked=0, user_not_found=3)
    _upload(health_conn, sink.name, "4", 2, 9, finished=False)  # still being processed
    _upload(health_conn, "uis_deals", "5", 2, 4)  # another sink's, the service counts none
    health_conn.commit()
    rows, report = _report(health_conn)
    metrica = rows[key]
    assert (metrica.state, metrica.reasons) == ("green", ())
    assert metrica.detail == (
        "за 7 дней: отправлено 40, связано 24, посетитель не найден 9, цель не найдена 0;"
        " загрузок в обработке: 1"
    )
    assert (metrica.interval_minutes, metrica.limit_minutes) == (60, 6 * 60)
    assert rows["conversion_sink:uis_deals"].detail == "за 7 дней: отправлено 4"
    assert sink.dag_id not in {row.dag_id for row in report.other_dags}

    # A goal the counter does not have, an upload processed for more than a day.
    _upload(health_conn, sink.name, "6", 1, 5, linked=0, user_not_found=0, goal_not_found=5)
    _upload(health_conn, sink.name, "7", 25, 2, finished=False)
    health_conn.commit()
    rows, _ = _report(health_conn)
    assert rows[key].state == "yellow"
    assert rows[key].reasons == (
        "цель не найдена в счётчике: 5 строк за 7 дней — проверьте идентификаторы целей",
        "загрузок в обработке дольше суток: 1",
    )

    rows, _ = _report(health_conn, now=NOW + timedelta(hours=6))
    assert rows[key].state == "red"  # no run for more than 6 hours
