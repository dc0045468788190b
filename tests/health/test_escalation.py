"""A lead nobody takes is escalated exactly once to its branch's front desk, through the
real notifiers, by the integration_health DAG (dag.test()); time pinned with time_machine."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import time_machine
from alert_targets import BOT_TOKEN, DATA_CHAT, DEFAULT_CHAT, MSK_CHAT, MSK_EMAIL

MOSCOW = ZoneInfo("Europe/Moscow")
T0 = datetime(2026, 12, 2, 10, 0, tzinfo=MOSCOW)


def _run_health():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag().get_dag("integration_health").test()


def _lead(
    conn,
    *,
    created_at,
    branch_id="msk",
    status="new",
    source="flexbe",
    phone="+79161234567",
) -> int:
    taken = {"taken_by": "anna", "taken_at": created_at + timedelta(minutes=1)}
    row = {
        "source": source,
        "external_id": uuid.uuid4().hex,
        "created_at": created_at,
        "name": "Смирнова Ольга",
        "phone_raw": phone,
        "phone_e164": phone,
        "branch_id": branch_id,
        "raw": json.dumps({"id": "t"}),
        "status": status,
        **(taken if status == "in_progress" else {}),
    }
    names, values = ", ".join(row), ", ".join(f"%({n})s" for n in row)
    (lead_id,) = conn.execute(
        f"insert into integration.leads ({names}) values ({values}) returning lead_id", row
    ).fetchone()
    conn.commit()
    return lead_id


def test_a_lead_left_waiting_is_escalated_once_to_its_branch(
    alert_channels, health_conn, airflow_db
):
    telegram, smtp = alert_channels
    with time_machine.travel(T0, tick=True) as clock:
        waiting = _lead(health_conn, created_at=T0 - timedelta(minutes=3))
        # Four people: the inbox shows one person's leads as one row.
        no_branch = _lead(
            health_conn, created_at=T0 - timedelta(minutes=4), branch_id=None, phone="+79035550101"
        )
        taken = _lead(
            health_conn,
            created_at=T0 - timedelta(minutes=9),
            status="in_progress",
            phone="+79035550102",
        )
        old = _lead(health_conn, created_at=T0 - timedelta(days=2), phone="+79035550103")

        assert _run_health().state == "success"  # 3 and 4 minutes: nothing yet
        assert telegram.messages == [] and smtp.received() == []

        clock.shift(timedelta(minutes=2, seconds=30))  # 5.5 and 6.5 minutes
        assert _run_health().state == "success"
        for _ in range(3):  # later checks: no second escalation
            clock.shift(timedelta(minutes=1))
            assert _run_health().state == "success"

    rows = health_conn.execute(
        "select lead_id, branch_id, desk, channels, waited_seconds"
        " from integration.lead_escalations order by lead_id"
    ).fetchall()
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        (waiting, "msk", "msk", ["email", "telegram"]),
        (no_branch, None, "default", ["telegram"]),
    ]
    assert 5 * 60 <= rows[0][4] < 6 * 60
    assert taken not in [r[0] for r in rows] and old not in [r[0] for r in rows]

    to_msk = telegram.messages_to(MSK_CHAT)
    assert len(to_msk) == 1
    assert f"№{waiting}" in to_msk[0].plain and "Ресепшн Москва" in to_msk[0].plain
    assert "Смирнова" not in to_msk[0].plain and "916" not in to_msk[0].plain  # no patient data
    to_default = telegram.messages_to(DEFAULT_CHAT)
    assert len(to_default) == 1 and f"№{no_branch}" in to_default[0].plain
    assert telegram.messages_to(DATA_CHAT) == []
    mails = smtp.received()
    assert [(mail.rcpt_to, mail.subject) for mail in mails] == [
        ((MSK_EMAIL,), "Заявки ждут ответа: 1")
    ]

    # The report tables count them per clinic day and branch.
    from ident_hooks.reports.tables import rebuild_escalations

    rebuild_escalations(health_conn, "Europe/Moscow")
    report = health_conn.execute(
        "select branch_id, escalated from report.escalations order by branch_id"
    ).fetchall()
    health_conn.rollback()
    assert report == [("", 1), ("msk", 1)]


def test_a_lead_is_not_escalated_when_every_channel_fails_and_is_once_they_work(
    alert_channels, health_conn, airflow_db, monkeypatch
):
    from ident_hooks.config import load_config
    from ident_hooks.health.alerts import run_checks
    from ident_hooks.health.settings import load_alerts_config

    telegram, smtp = alert_channels
    lead_id = _lead(health_conn, created_at=T0 - timedelta(minutes=7), branch_id=None)
    # The default desk has only Telegram; the bot's token was revoked.
    telegram.token = "7012345678:revoked"
    summary = run_checks(health_conn, load_config(), load_alerts_config(), now=T0)
    assert summary.escalated == [] and summary.failed_deliveries == 1
    assert health_conn.execute("select count(*) from integration.lead_escalations").fetchone() == (
        0,
    )
    (error,) = health_conn.execute(
        "select error from integration.alerts_sent where kind = 'escalation'"
    ).fetchone()
    assert "Unauthorized" in error and "revoked" not in error

    telegram.token = BOT_TOKEN  # a new token from BotFather, the connection already has it
    summary = run_checks(
        health_conn, load_config(), load_alerts_config(), now=T0 + timedelta(minutes=1)
    )
    assert summary.escalated == [lead_id]
    assert len(telegram.messages_to(DEFAULT_CHAT)) == 1


def test_a_later_lead_of_a_person_someone_already_took_is_not_escalated(
    alert_channels, health_conn, airflow_db
):
    telegram, _ = alert_channels
    with time_machine.travel(T0, tick=True) as clock:
        taken = _lead(health_conn, created_at=T0 - timedelta(minutes=20), status="in_progress")
        # The same person calls ten minutes later: the admin who has the row answers it.
        again = _lead(health_conn, created_at=T0 - timedelta(minutes=10), source="uis_calls")
        stranger = _lead(health_conn, created_at=T0 - timedelta(minutes=10), phone="+79035550104")
        clock.shift(timedelta(minutes=1))
        assert _run_health().state == "success"

    escalated = [
        row[0] for row in health_conn.execute("select lead_id from integration.lead_escalations")
    ]
    health_conn.commit()
    assert escalated == [stranger]
    assert taken not in escalated and again not in escalated
    (message,) = telegram.messages_to(MSK_CHAT)
    assert f"№{stranger}" in message.plain and f"№{again}" not in message.plain
