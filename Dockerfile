# The production image: Airflow 3.3.2, this project's pinned runtime packages and the provider
# itself (ident_hooks, its connection types and the include/ files it reads). Nothing for
# development or tests (requirements-dev.txt) goes in.
FROM apache/airflow:3.3.2
COPY --chown=airflow:root requirements.txt /requirements.txt
RUN pip install --no-cache-dir -r /requirements.txt
COPY --chown=airflow:root pyproject.toml /src/pyproject.toml
COPY --chown=airflow:root plugins/ident_hooks /src/plugins/ident_hooks
COPY --chown=airflow:root include /src/include
# --no-deps: its dependencies are the pins above.
RUN pip install --no-cache-dir --no-deps /src
