"""The operator that sends one conversion sink's new conversions and follows its uploads.

Nothing heavy is imported at module level: DAG files import this module at parse time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from ident_hooks.config import load_config

if TYPE_CHECKING:
    from airflow.sdk import Context


class SendConversionsOperator(BaseOperator):
    """Send the conversions of the sink configured as ``sink``.

    First each upload the service was still processing is asked about again and its state
    stored; then the events the sink has not sent yet (``ident_hooks.conversions.events``,
    within the service's link window) go to the service, and what it accepted is written
    to the ledger at once, so a re-run sends nothing twice. Returns counts: conversions
    sent per event, uploads made, uploads followed.

    A permanent failure (a wrong token, a refused upload) fails the task at once; anything
    else is left to Airflow's retries. Either way the conversions not accepted stay unsent
    and go with the next run.
    """

    template_fields: Sequence[str] = ("sink",)

    def __init__(self, *, sink: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sink = sink

    def execute(self, context: Context) -> dict:
        from ident_hooks.conversions.events import pending_events
        from ident_hooks.conversions.ledger import (
            record_deliveries,
            unfinished_uploads,
            update_upload,
        )
        from ident_hooks.db import connect
        from ident_hooks.hooks import HOOKS
        from ident_hooks.task_errors import airflow_error_policy

        config = load_config()
        sink = config.conversion_sink(self.sink)
        connector_class = sink.spec.connector_class()
        client = connector_class.client(
            sink.connection, hook_class=HOOKS[sink.spec.connection.name]
        )
        connector = connector_class(client, sink, clinic_timezone=config.clinic_timezone)
        source_kinds = {source.name: source.kind for source in config.lead_sources}
        with airflow_error_policy(), connect() as conn:
            followed = unfinished_uploads(conn, sink.name)
            for upload in followed:
                update_upload(conn, sink.name, connector.follow(upload), now=_now())
            now = _now()
            events = pending_events(
                conn,
                sink,
                source_kinds=source_kinds,
                now=now,
                link_window=connector.link_window,
                earliest=connector.earliest_linkable(now),
            )
            conn.commit()  # no transaction stays open while the service is called
            deliveries = connector.deliver(events, now)
            record_deliveries(conn, sink.name, deliveries, now=_now())
        sent = Counter(event.event for delivery in deliveries for event in delivery.events)
        return {
            "pending": len(events),
            "sent": {event: sent[event] for event in sink.events},
            "uploads": len(deliveries),
            "uploads_followed": len(followed),
        }


def _now() -> datetime:
    return datetime.now(UTC)
