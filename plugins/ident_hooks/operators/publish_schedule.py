"""The operator that publishes the clinic's free appointment time to one aggregator.

Nothing heavy is imported at module level: DAG files import this module at parse time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from ident_hooks.config import Aggregator, load_config

if TYPE_CHECKING:
    from airflow.sdk import Context

    from ident_hooks.http_client import ServiceClient


def _client_for(aggregator: Aggregator) -> ServiceClient:
    """The HTTP client of one configured aggregator, on its connection type's hook."""
    from ident_hooks.hooks import HOOKS
    from ident_hooks.schedule.aggregators import publisher

    return publisher(aggregator.name).client(
        aggregator.connection, hook_class=HOOKS[aggregator.spec.connection.name]
    )


class PublishScheduleOperator(BaseOperator):
    """Publish free slots to the aggregator configured as ``aggregator``
    (``ident_hooks.schedule.publish.publish_schedule``); returns the run's summary.

    A run the clinic's changes started (the ``clinic_schedule`` or ``leads`` Asset) sends
    only what changed; what time alone changed goes on the timer's ticks and a person's
    runs. A change past the byte budget waits as *up for reschedule*, freeing the worker
    while the changes coalesce. A permanent failure (a refusal, bad settings, a request
    too large) fails the task at once: no retry can help.
    """

    template_fields: Sequence[str] = ("aggregator",)

    def __init__(self, *, aggregator: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.aggregator = aggregator

    def execute(self, context: Context) -> dict:
        from airflow.sdk.exceptions import AirflowRescheduleException

        from ident_hooks.db import connect
        from ident_hooks.registry import record_instances
        from ident_hooks.schedule.publish import publish_schedule
        from ident_hooks.task_errors import airflow_error_policy

        config = load_config()
        aggregator = config.aggregator(self.aggregator)
        client = _client_for(aggregator)
        with airflow_error_policy(), connect() as conn:
            record_instances(conn, config)
            conn.commit()
            summary = publish_schedule(
                aggregator.name,
                conn=conn,
                client=client,
                now=datetime.now().astimezone(),
                run_id=context["run_id"],
                on_change=aggregator.publish_on_change,
                # What time alone changed goes on the timer's ticks (and a person's runs),
                # never on the runs that changes start.
                on_timer=context["dag_run"].run_type != "asset_triggered",
            )
        if summary.deferred_until is not None:
            # Waiting for the byte budget frees the worker; the changes coalesce.
            raise AirflowRescheduleException(summary.deferred_until)
        return summary.as_dict()
