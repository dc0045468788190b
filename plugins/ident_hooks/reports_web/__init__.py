"""The marketing reports page: weekly charts and CSV downloads in the Airflow api-server.

``ident_hooks.airflow_plugins.IdentReportsPlugin`` mounts ``app`` (through
``ident_hooks.web.lazy_app``) at ``/reports``; ``csv_export`` streams the report tables as CSV.
"""
