"""Integration health and alerts.

* ``settings`` — ``include/alerts.yaml``: limits and alert destinations;
* ``listener`` — an Airflow listener that records every run of this project's DAGs in
  ``integration.dag_runs`` (state, times, the failed task's error with secrets redacted);
* ``status`` — one row per integration instance (``include/integrations.yaml``) plus the
  clinic's sync heartbeats: last success, its age against the integration's own limit,
  last error, today's numbers, green / yellow / red;
* ``alerts`` — what to say and to whom: one message per outage and one per recovery, a
  lead left waiting escalated once to its branch's front desk, НаПоправку bookings about
  to be cancelled;
* ``notify`` — the channels: the Telegram and SMTP providers' hooks and notifiers;
* ``app`` — the status page (``/status/``) and its JSON.
"""
