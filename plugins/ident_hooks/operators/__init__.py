"""Airflow operators of this provider: each owns its service's client, its cursor and the
error policy (``ident_hooks.task_errors``), so a DAG file only creates them from
``include/integrations.yaml`` by the configured name.

* :mod:`ident_hooks.operators.pull_leads`: ``PullLeadsOperator``,
  ``AcknowledgeBookingsOperator``;
* :mod:`ident_hooks.operators.publish_schedule`: ``PublishScheduleOperator``;
* :mod:`ident_hooks.operators.import_ad_costs`: ``ImportAdCostsOperator``;
* :mod:`ident_hooks.operators.send_conversions`: ``SendConversionsOperator``.
"""
