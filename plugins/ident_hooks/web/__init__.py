"""The web kit of this project's pages in the Airflow api-server: the leads inbox
(``ident_hooks.inbox``), the reports (``ident_hooks.reports_web``) and the status page
(``ident_hooks.health.app``).

``lazy_app`` is what the plugins mount, ``pages`` builds each page's FastAPI app and renders
its template over ``templates/base.html`` (head, header, login line, links) and
``static/base.css``, ``security`` holds the login redirect and the headers every response
carries. Importing this package loads nothing heavy: every Airflow component imports the
plugins.
"""
