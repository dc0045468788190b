"""The marketing reports page: weekly charts and CSV downloads in the Airflow api-server.

``ident_reports_plugin`` mounts ``app`` (through ``ident_hooks.web.lazy_app``) at
``/reports``; ``csv_export`` streams the report tables as CSV.
"""
