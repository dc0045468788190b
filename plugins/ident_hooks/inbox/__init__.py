"""The front desk's leads inbox: a page in the Airflow api-server that shows open leads.

``lazy_app`` is what the plugin mounts, ``app`` the FastAPI application behind it, ``store``
the queries and actions on ``integration.leads``, ``security`` the cross-site request checks.
"""
