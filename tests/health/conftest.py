"""Health fixtures: the Telegram Bot API simulator and the SMTP sink (started by the tests),
the Airflow connections and an alerts config pointing at them, and a clean clinic database.

The Telegram provider's hook always talks to api.telegram.org; ``ident_hooks.health.notify``
adds the connection extra ``base_url``, which is how the real notifier reaches the
simulator here.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from alert_targets import (
    BOT_TOKEN,
    DATA_CHAT,
    DATA_EMAIL,
    DEFAULT_CHAT,
    MSK_CHAT,
    MSK_EMAIL,
    SMTP_LOGIN,
    SMTP_PASSWORD,
)

from ident_dev.simulators.smtp_sink import SmtpSink
from ident_dev.simulators.telegram import TelegramSimulator

TESTS = Path(__file__).resolve().parents[1]


def _web_conftest():
    """tests/web/conftest.py, for its api-server fixture (one module per process)."""
    if "web_conftest" not in sys.modules:
        spec = importlib.util.spec_from_file_location("web_conftest", TESTS / "web" / "conftest.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["web_conftest"] = module
        spec.loader.exec_module(module)
    return sys.modules["web_conftest"]


airflow_web = _web_conftest().airflow_web
sys.path.insert(0, str(TESTS / "web"))
from test_inbox_browser import browser_page  # noqa: E402, F401  (a fixture)


@pytest.fixture
def telegram() -> Iterator[TelegramSimulator]:
    chats = {DATA_CHAT: "Команда данных", MSK_CHAT: "Ресепшн Москва", DEFAULT_CHAT: "Ресепшн"}
    with TelegramSimulator(token=BOT_TOKEN, chats=chats) as simulator:
        yield simulator


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink(login=SMTP_LOGIN, password=SMTP_PASSWORD) as sink:
        yield sink


def alerts_yaml(**limits) -> dict:
    return {
        "limits": {"lead_escalation_minutes": 5, "booking_warning_minutes": 6, **limits},
        "telegram_connection": "ident_alerts_telegram",
        "email_connection": "ident_alerts_smtp",
        "data_team": {"telegram_chat_id": DATA_CHAT, "emails": [DATA_EMAIL]},
        "front_desks": {
            "default": {"title": "Ресепшн", "telegram_chat_id": DEFAULT_CHAT},
            "msk": {
                "title": "Ресепшн Москва",
                "admins": ["anna"],
                "telegram_chat_id": MSK_CHAT,
                "emails": [MSK_EMAIL],
            },
        },
    }


@pytest.fixture
def alert_channels(telegram, smtp, monkeypatch, tmp_path):
    """Connections to the simulators and an alerts.yaml naming their chats and addresses."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_IDENT_ALERTS_TELEGRAM",
        json.dumps(
            {
                "conn_type": "telegram",
                "password": BOT_TOKEN,
                "extra": {"base_url": telegram.base_url + "/bot"},
            }
        ),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_IDENT_ALERTS_SMTP",
        json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": smtp.port,
                "login": SMTP_LOGIN,
                "password": SMTP_PASSWORD,
                "extra": {**smtp.connection_extra(), "from_email": SMTP_LOGIN},
            }
        ),
    )
    path = tmp_path / "alerts.yaml"
    path.write_text(yaml.safe_dump(alerts_yaml(), allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("IDENT_ALERTS_CONFIG", str(path))
    return telegram, smtp


@pytest.fixture
def health_conn(clinic_conn: psycopg.Connection) -> psycopg.Connection:
    """The clinic database without leads, runs, alerts or heartbeats; branches msk and spb."""
    clinic_conn.execute(
        "truncate integration.leads, integration.lead_rejects, integration.publish_log,"
        " integration.intake_requests, integration.dag_runs, integration.alert_state,"
        " integration.alerts_sent, integration.lead_escalations, clinic.sync_heartbeat,"
        " integration.conversion_uploads cascade"
    )
    clinic_conn.execute(
        "insert into clinic.branches (branch_id, name) values"
        " ('msk', 'Москва, Арбат'), ('spb', 'Санкт-Петербург')"
    )
    clinic_conn.commit()
    return clinic_conn
