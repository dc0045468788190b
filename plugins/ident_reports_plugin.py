"""Airflow plugin: the marketing reports page at /reports/, next to the inbox in the navigation.

Every Airflow component imports this file; only the api-server serves the app, which is
built on its first request (see ``ident_hooks.web.lazy_app``), so the import stays cheap.
"""

from airflow.plugins_manager import AirflowPlugin

from ident_hooks.web.lazy_app import LazyASGIApp

reports_app = LazyASGIApp("ident_hooks.reports_web.app:create_app")


class IdentReportsPlugin(AirflowPlugin):
    name = "ident_reports"
    fastapi_apps = [{"app": reports_app, "url_prefix": "/reports", "name": "Отчёты"}]
    external_views = [
        {
            "name": "Отчёты",
            "href": "/reports/",
            "destination": "nav",
            "nav_top_level": True,
            "icon": "/reports/static/icon.svg",
        }
    ]
