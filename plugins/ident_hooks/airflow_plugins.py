"""The provider's Airflow plugins: the front desk's inbox at /inbox/, the marketing reports at
/reports/ and the integrations' status page at /status/, each linked from the UI's
navigation, and the listener that records every DAG run for the status page and the alerts.

Registered through the ``airflow.plugins`` entry point (``pyproject.toml``), so installing
the provider is all a deployment does to get them. Every Airflow component imports this
module; only the api-server serves the apps, each built on its first request (see
``ident_hooks.web.lazy_app``), and the listener module imports nothing heavy until a run
ends, so the import stays cheap.
"""

from airflow.plugins_manager import AirflowPlugin

from ident_hooks.health import listener
from ident_hooks.web.lazy_app import LazyASGIApp


def _nav_link(title: str, prefix: str) -> dict:
    return {
        "name": title,
        "href": f"{prefix}/",
        "destination": "nav",
        "nav_top_level": True,
        "icon": f"{prefix}/static/icon.svg",
    }


class IdentInboxPlugin(AirflowPlugin):
    name = "ident_inbox"
    fastapi_apps = [
        {
            "app": LazyASGIApp("ident_hooks.inbox.app:create_app"),
            "url_prefix": "/inbox",
            "name": "Заявки",
        }
    ]
    external_views = [_nav_link("Заявки", "/inbox")]


class IdentReportsPlugin(AirflowPlugin):
    name = "ident_reports"
    fastapi_apps = [
        {
            "app": LazyASGIApp("ident_hooks.reports_web.app:create_app"),
            "url_prefix": "/reports",
            "name": "Отчёты",
        }
    ]
    external_views = [_nav_link("Отчёты", "/reports")]


class IdentHealthPlugin(AirflowPlugin):
    name = "ident_health"
    fastapi_apps = [
        {
            "app": LazyASGIApp("ident_hooks.health.app:create_app"),
            "url_prefix": "/status",
            "name": "Состояние интеграций",
        }
    ]
    external_views = [_nav_link("Состояние интеграций", "/status")]
    listeners = [listener]
