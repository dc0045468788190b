"""The intake's push sources and secrets come from the integrations config and Airflow
connections (``AIRFLOW_CONN_*`` here), never from code."""

from __future__ import annotations

import json
from datetime import timedelta

from ident_hooks.config import IntegrationsConfig, LeadSource
from ident_hooks.intake.settings import from_airflow


def test_push_sources_and_secrets_come_from_airflow_connections(monkeypatch):
    config = IntegrationsConfig(
        clinic_timezone="Asia/Yekaterinburg",
        aggregators=(),
        lead_sources=(
            LeadSource("uis", "uis", "UIS", "uis", timedelta(minutes=2)),
            LeadSource("tilda", "tilda", "Tilda", "tilda", timedelta(minutes=2)),
            LeadSource("site_form", "webhook", "Форма на сайте", "site_form_conn", timedelta(0)),
            LeadSource("landing", "webhook", "Лендинг", "landing", timedelta(0)),
        ),
    )
    monkeypatch.setenv("AIRFLOW_CONN_TILDA", json.dumps({"conn_type": "generic", "password": "t"}))
    monkeypatch.setenv(
        "AIRFLOW_CONN_SITE_FORM_CONN", json.dumps({"conn_type": "generic", "password": "s"})
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_INTAKE_TICKETS", json.dumps({"conn_type": "generic", "password": "k"})
    )
    monkeypatch.delenv("AIRFLOW_CONN_LANDING", raising=False)  # no connection: left out

    settings = from_airflow(config, connect=lambda: None)

    assert {name: (s.kind, s.title, s.secret) for name, s in settings.sources.items()} == {
        "tilda": ("tilda", "Tilda", "t"),
        "site_form": ("webhook", "Форма на сайте", "s"),
    }
    assert settings.tickets_key == "k"
    assert str(settings.timezone) == "Asia/Yekaterinburg"
