"""The front desk's leads inbox: a page in the Airflow api-server that shows open leads.

``app`` is the FastAPI application the plugin mounts (through ``ident_hooks.web.lazy_app``),
``store`` the queries and actions on ``integration.leads``, ``push`` the changes sent to open
pages, ``security`` the cross-site request checks of the actions.
"""
