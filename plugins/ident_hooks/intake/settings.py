"""The intake's settings from the integrations config and Airflow connections.

Push sources are the configured lead sources whose kind pushes (``push`` in
``ident_hooks.registry``: ``tilda``, ``webhook``, ``uis_notification``;
include/integrations.yaml); each one's secret is the password of its Airflow connection,
the GetTickets key the password of the connection ``intake_tickets``. Connections are read
with ``airflow.sdk.Connection.get``, which in a plain process reads ``AIRFLOW_CONN_*``
variables and then Airflow's metadata database — never code or YAML. A source whose
connection is missing or has no password is left out (and logged), so one misconfigured
source does not stop the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from ident_hooks.intake.app import IntakeSettings
from ident_hooks.intake.receive import IntakeSource

log = logging.getLogger(__name__)
TICKETS_CONN_ID = "intake_tickets"


def airflow_secret(conn_id: str) -> str | None:
    """The password of an Airflow connection; None when it is missing or empty."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        connection = Connection.get(conn_id)
    except AirflowNotFoundException:
        return None
    return connection.password or None


def push_sources(config: Any, secret: Callable[[str], str | None]) -> dict[str, IntakeSource]:
    """The configured push sources that have a secret, by name."""
    found = {}
    for source in config.lead_sources:
        if not source.spec.push:
            continue
        password = secret(source.connection)
        if password is None:
            log.warning(
                "%s: connection %s has no password; source disabled", source.name, source.connection
            )
            continue
        found[source.name] = IntakeSource(source.name, source.kind, source.title, password)
    return found


def from_airflow(
    config: Any,
    connect: Callable[[], psycopg.Connection],
    secret: Callable[[str], str | None] = airflow_secret,
    **options: Any,
) -> IntakeSettings:
    return IntakeSettings(
        sources=push_sources(config, secret),
        connect=connect,
        timezone=ZoneInfo(config.clinic_timezone),
        tickets_key=secret(TICKETS_CONN_ID),
        **options,
    )
