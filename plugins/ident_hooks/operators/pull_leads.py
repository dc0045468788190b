"""Operators that pull a lead source's leads into ``integration.leads`` and acknowledge
the stored bookings a source waits to hear about.

Nothing heavy is imported at module level: DAG files import this module at parse time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, Variable

from ident_hooks.config import LeadSource, load_config
from ident_hooks.leads.cursor import cursor_variable

if TYPE_CHECKING:
    from airflow.sdk import Context

    from ident_hooks.http_client import ServiceClient


def _client_for(source: LeadSource) -> ServiceClient:
    """The HTTP client of one configured lead source, on its connection type's hook."""
    from ident_hooks.hooks import HOOKS

    return source.spec.connector_class().client(
        source.connection, hook_class=HOOKS[source.spec.connection.name]
    )


class PullLeadsOperator(BaseOperator):
    """Pull the leads of the lead source configured as ``source`` and store them.

    Asks the source for the period its cursor (the Airflow Variable
    ``leads_cursor_<source>``) says, upserts the leads, then moves the cursor
    (``ident_hooks.leads.pull.pull_source``). Returns the run's summary (``inserted``,
    ``updated``, ``rejected``, ...). A permanent failure (a refusal, a partner that
    switched the integration off, bad settings, a bad cursor) fails the task at once: no
    retry can help.
    """

    template_fields: Sequence[str] = ("source",)

    def __init__(self, *, source: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source = source

    @property
    def cursor_key(self) -> str:
        return cursor_variable(self.source)

    def read_cursor(self) -> str | None:
        return Variable.get(self.cursor_key, default=None)

    def write_cursor(self, value: str) -> None:
        Variable.set(self.cursor_key, value)

    def execute(self, context: Context) -> dict:
        from ident_hooks.db import connect
        from ident_hooks.leads.pull import pull_source
        from ident_hooks.registry import record_instances
        from ident_hooks.task_errors import airflow_error_policy

        config = load_config()
        source = config.lead_source(self.source)
        client = _client_for(source)
        # A refusal, a partner that switched the integration off, bad settings: no retry
        # can help, so the run fails once instead of retrying every 2 minutes.
        with airflow_error_policy(), connect() as conn:
            record_instances(conn, config)
            conn.commit()
            summary = pull_source(
                source.name,
                kind=source.kind,
                conn=conn,
                client=client,
                clinic_timezone=config.clinic_timezone,
                now=datetime.now().astimezone(),
                read_cursor=self.read_cursor,
                write_cursor=self.write_cursor,
                initial_days=source.initial_days,
            )
        return summary.as_dict()


class AcknowledgeBookingsOperator(BaseOperator):
    """Acknowledge every stored lead of ``source`` that its service waits to hear about
    (``ident_hooks.leads.pull.acknowledge_stored``); returns the counts. A failed
    acknowledgement stays pending for the next run; a permanent failure (no token in the
    connection, say) fails the task at once, as the pull's does.
    """

    template_fields: Sequence[str] = ("source",)

    def __init__(self, *, source: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source = source

    def execute(self, context: Context) -> dict:
        from ident_hooks.db import connect
        from ident_hooks.leads.pull import acknowledge_stored
        from ident_hooks.task_errors import airflow_error_policy

        source = load_config().lead_source(self.source)
        client = _client_for(source)
        with airflow_error_policy(), connect() as conn:
            return acknowledge_stored(source.name, kind=source.kind, conn=conn, client=client)
