# The production image: Airflow 3.3.2 plus this project's pinned packages.
FROM apache/airflow:3.3.2
COPY --chown=airflow:root requirements.txt /requirements.txt
RUN pip install --no-cache-dir -r /requirements.txt
