"""A lead source taken down, end to end: real dag.test() runs of its pull DAG and of the
integration_health DAG, Airflow's verdicts recorded by our listener, real Telegram and SMTP
notifiers against the local simulators; time pinned with time_machine."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from alert_targets import DATA_CHAT, DATA_EMAIL, MSK_CHAT

from ident_dev.simulators.catalog import build_simulators

MOSCOW = ZoneInfo("Europe/Moscow")
T0 = datetime(2026, 12, 2, 11, 0, tzinfo=MOSCOW)
SOURCE = "32top"  # IDENT GetTickets: a wrong key is refused at once (no retries to wait for)


def _run(dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag().get_dag(dag_id).test()


@pytest.fixture
def source(health_conn, monkeypatch, airflow_db):
    from airflow.models.variable import Variable

    service = build_simulators([], ["msk", "spb"], seed=3)[SOURCE]
    service.server.start()
    monkeypatch.setenv(service.env_var, service.airflow_connection)
    Variable.delete(f"leads_cursor_{SOURCE}")
    yield service
    service.server.stop()


def _break(service, monkeypatch, secret: str) -> None:
    service.secret = secret
    monkeypatch.setenv(service.env_var, service.airflow_connection)


def _row(conn, key: str):
    from ident_hooks.config import load_config
    from ident_hooks.health.settings import load_alerts_config
    from ident_hooks.health.status import compute_health

    report = compute_health(conn, load_config(), load_alerts_config(), now=datetime.now(MOSCOW))
    conn.commit()
    return next(row for row in report.rows if row.key == key)


def test_a_source_taken_down_turns_red_alerts_once_and_recovers_once(
    alert_channels, source, health_conn, monkeypatch
):
    telegram, smtp = alert_channels
    key = f"lead_source:{SOURCE}"
    good_secret = source.secret
    with time_machine.travel(T0, tick=True) as clock:
        assert _run(f"pull_leads_{SOURCE}").state == "success"
        assert _run("integration_health").state == "success"
        assert _row(health_conn, key).state == "green"

        _break(source, monkeypatch, "revoked-key")
        clock.shift(timedelta(minutes=2))
        assert _run(f"pull_leads_{SOURCE}").state == "failed"
        assert _run("integration_health").state == "success"
        first_failure = _row(health_conn, key)
        assert first_failure.state == "yellow"
        assert "403" in first_failure.last_error and "revoked-key" not in first_failure.last_error
        assert telegram.messages_to(DATA_CHAT) == [] and smtp.received() == []

        clock.shift(timedelta(minutes=2))
        assert _run(f"pull_leads_{SOURCE}").state == "failed"
        assert _run("integration_health").state == "success"
        down = _row(health_conn, key)
        assert down.state == "red" and down.failures_in_a_row == 2
        # Well past the 3 × 2 min limit, and checked every minute: still one message.
        for _ in range(4):
            clock.shift(timedelta(minutes=1))
            assert _run("integration_health").state == "success"
        stale = _row(health_conn, key)
        assert stale.state == "red"
        assert any("предел 6 мин" in reason for reason in stale.reasons)

        outage = telegram.messages_to(DATA_CHAT)
        assert len(outage) == 1
        assert "32top" in outage[0].plain and "сбой" in outage[0].plain
        assert "403" in outage[0].plain and "revoked-key" not in outage[0].plain
        mails = smtp.received()
        assert len(mails) == 1 and mails[0].rcpt_to == (DATA_EMAIL,)
        assert mails[0].subject == "Сбой: 32top"
        assert telegram.messages_to(MSK_CHAT) == []  # front desks hear nothing of it

        _break(source, monkeypatch, good_secret)
        clock.shift(timedelta(minutes=1))
        assert _run(f"pull_leads_{SOURCE}").state == "success"
        for _ in range(3):
            assert _run("integration_health").state == "success"
            clock.shift(timedelta(minutes=1))
        assert _row(health_conn, key).state == "green"  # on the pinned clock, too

    messages = telegram.messages_to(DATA_CHAT)
    assert len(messages) == 2
    assert "снова работает" in messages[1].plain and "Сбой длился" in messages[1].plain
    mails = smtp.received()
    assert [mail.subject for mail in mails] == ["Сбой: 32top", "Восстановлено: 32top"]
    sent = health_conn.execute(
        "select kind, channel, error from integration.alerts_sent where alert_key = %s"
        " order by alert_id",
        (key,),
    ).fetchall()
    assert sent == [
        ("outage", "telegram", None),
        ("outage", "email", None),
        ("recovery", "telegram", None),
        ("recovery", "email", None),
    ]
