"""Airflow plugin: the front desk's leads inbox at /inbox/, linked from the UI's navigation.

Every Airflow component imports this file; only the api-server serves the app, which is
built on its first request (see ``ident_hooks.web.lazy_app``), so the import stays cheap.
"""

from airflow.plugins_manager import AirflowPlugin

from ident_hooks.web.lazy_app import LazyASGIApp

inbox_app = LazyASGIApp("ident_hooks.inbox.app:create_app")


class IdentInboxPlugin(AirflowPlugin):
    name = "ident_inbox"
    fastapi_apps = [{"app": inbox_app, "url_prefix": "/inbox", "name": "Заявки"}]
    external_views = [
        {
            "name": "Заявки",
            "href": "/inbox/",
            "destination": "nav",
            "nav_top_level": True,
            "icon": "/inbox/static/icon.svg",
        }
    ]
