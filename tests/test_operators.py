"""The operators reach each configured service through the hook of its kind's connection
type (the type its connection form has under Admin → Connections)."""

from __future__ import annotations

import json

import pytest

from ident_hooks.config import load_config
from ident_hooks.operators import publish_schedule, pull_leads

CONFIG = load_config()
PULLED = [source for source in CONFIG.lead_sources if not source.spec.push]


def _connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, conn_type: str) -> None:
    # Nothing listens there: making a client's session sends nothing.
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}",
        json.dumps({"conn_type": conn_type, "host": "http://127.0.0.1:9/api/", "password": "k"}),
    )


@pytest.mark.parametrize("source", PULLED, ids=[source.name for source in PULLED])
def test_a_lead_source_client_is_built_on_its_connection_types_hook(source, monkeypatch):
    conn_type = source.spec.connection.name
    _connection(monkeypatch, source.connection, conn_type)
    hook = pull_leads._client_for(source).hook
    assert (hook.conn_type, hook.http_conn_id) == (conn_type, source.connection)
    assert type(hook).__name__ == source.spec.connection.hook_class_name


@pytest.mark.parametrize("aggregator", CONFIG.aggregators, ids=lambda aggregator: aggregator.name)
def test_an_aggregator_client_is_built_on_its_connection_types_hook(aggregator, monkeypatch):
    conn_type = aggregator.spec.connection.name
    _connection(monkeypatch, aggregator.connection, conn_type)
    hook = publish_schedule._client_for(aggregator).hook
    assert (hook.conn_type, hook.http_conn_id) == (conn_type, aggregator.connection)
    assert type(hook).__name__ == aggregator.spec.connection.hook_class_name
