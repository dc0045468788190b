"""The provider's metadata for Airflow's ``ProvidersManager``.

Registered as the ``apache_airflow_provider`` entry point in ``pyproject.toml``; Airflow
calls :func:`get_provider_info` and validates the dict against
``airflow/provider_info.schema.json``. Each connection type of the registry is listed with
its hook and its form: ``ui-field-behaviour`` (hidden, relabelled and pre-filled standard
fields) and ``conn-fields`` (fields kept in the connection's extra), the declarative form
Airflow 3.2+ reads for Admin → Connections without importing the hooks
(``airflow/providers_manager.py``: ``_load_ui_metadata``; the UI's
``/ui/connections/hook_meta``). The operators' modules are listed as the schema allows
(``operators``: integration name and modules); Airflow validates them and imports none.
"""

from __future__ import annotations

from typing import Any

from ident_hooks import __version__
from ident_hooks.registry import CONNECTION_TYPES

DISTRIBUTION = "ident-booking-platform"
INTEGRATION = "Online booking for clinics"


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": DISTRIBUTION,
        "name": INTEGRATION,
        "description": "Schedule publishing to medical aggregators (ПроДокторов, НаПоправку, "
        "the IDENT protocol) and lead ingestion (UIS, Flexbe, НаПоправку, IDENT GetTickets, "
        "pushed leads) for clinics.",
        "versions": [__version__],
        "integrations": [{"integration-name": INTEGRATION, "tags": ["service"]}],
        "operators": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [
                    "ident_hooks.operators.pull_leads",
                    "ident_hooks.operators.publish_schedule",
                    "ident_hooks.operators.import_ad_costs",
                    "ident_hooks.operators.send_conversions",
                ],
            }
        ],
        "hooks": [{"integration-name": INTEGRATION, "python-modules": ["ident_hooks.hooks"]}],
        "triggers": [{"integration-name": INTEGRATION, "python-modules": ["ident_hooks.triggers"]}],
        "connection-types": [
            {
                "connection-type": connection.name,
                "hook-class-name": f"ident_hooks.hooks.{connection.hook_class_name}",
                "hook-name": connection.hook_name,
                "ui-field-behaviour": connection.ui_field_behaviour(),
                "conn-fields": connection.conn_fields(),
            }
            for connection in CONNECTION_TYPES.values()
        ],
    }
