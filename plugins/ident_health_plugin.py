"""Airflow plugin: the status page at /status/ («Состояние интеграций», next to the inbox in
the navigation) and the listener that records every DAG run for it and for the alerts.

Every Airflow component imports this file; only the api-server serves the app, which is
built on its first request (see ``ident_hooks.web.lazy_app``), and the listener module
imports nothing heavy until a run ends, so the import stays cheap.
"""

from airflow.plugins_manager import AirflowPlugin

from ident_hooks.health import listener
from ident_hooks.web.lazy_app import LazyASGIApp

status_app = LazyASGIApp("ident_hooks.health.app:create_app")


class IdentHealthPlugin(AirflowPlugin):
    name = "ident_health"
    fastapi_apps = [{"app": status_app, "url_prefix": "/status", "name": "Состояние интеграций"}]
    external_views = [
        {
            "name": "Состояние интеграций",
            "href": "/status/",
            "destination": "nav",
            "nav_top_level": True,
            "icon": "/status/static/icon.svg",
        }
    ]
    listeners = [listener]
