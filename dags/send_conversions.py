"""Conversions back to ad systems: one DAG per conversion sink in include/integrations.yaml."""

from datetime import datetime, timedelta

from airflow.sdk import CronTriggerTimetable, dag

from ident_hooks.config import ConversionSink, load_config
from ident_hooks.operators.send_conversions import SendConversionsOperator

EVENT_TEXTS = {
    "lead": "each lead (not spam) at its creation, as goal `{goal}`",
    "first_visit": (
        "each lead's first visit — the earliest completed appointment of the lead's phone"
        " within {window} days after it (a visit counts only for the latest lead before"
        " it) — at the visit's start, with its amount in {currency} when the clinic's"
        " data has one, as goal `{goal}`"
    ),
}

DOC = """
### Send conversions to {title} (`{name}`, kind `{kind}`)

Hourly at minute 20, clinic time ({tz}), tells **{name}** which leads became what:

{events}

The service takes what it can link (a lead with a click id, a UIS call...); the rest is
offered again next run. Only what has not gone to this sink before goes (the ledger
`integration.conversions_sent`, one row per sink, event and lead), nothing with a time in
the future, nothing older than {lookback} days (`lookback_days`) or than the service
still links. Each run first asks the service about its uploads still being processed and
keeps what it says in `integration.conversion_uploads`: the status page shows, per sink,
how many rows it could not link.

**Connection:** `{conn}` (docs/integrations.md, the section of its service: token
rights, goals, how to check an upload).

A wrong token or an upload the service refuses fails the run at once, without retries: fix
the connection or the goals and re-run (Clear). Other failures are retried. What the
service did not accept is not in the ledger and goes with the next run.

**To resend** (after fixing a goal, say): delete the ledger rows, and the next run sends
those conversions again, as far as they are still within the windows above:

```sql
delete from integration.conversions_sent
 where sink = '{name}'
   and event = 'first_visit'         -- or 'lead'; leave this line out for both
   and occurred_at >= '2026-12-01';  -- the conversions since that day
```
"""


def make_send_dag(sink: ConversionSink, clinic_timezone: str):
    events = "\n".join(
        "* "
        + EVENT_TEXTS[event].format(
            goal=sink.goals.get(event, event),
            window=sink.visit_window_days,
            currency=sink.currency,
        )
        for event in sink.events
    )

    @dag(
        dag_id=sink.dag_id,
        schedule=CronTriggerTimetable("20 * * * *", timezone=clinic_timezone),
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
        dagrun_timeout=timedelta(minutes=50),
        tags=["conversions", sink.kind],
        doc_md=DOC.format(
            name=sink.name,
            kind=sink.kind,
            title=sink.title,
            tz=clinic_timezone,
            events=events,
            lookback=sink.lookback_days,
            conn=sink.connection,
        ),
        default_args={
            "owner": "data-team",
            "retries": 2,
            "retry_delay": timedelta(minutes=5),
            "execution_timeout": timedelta(minutes=15),
        },
    )
    def send_conversions():
        SendConversionsOperator(task_id="send_conversions", sink=sink.name)

    return send_conversions()


_config = load_config()
for _sink in _config.conversion_sinks:
    make_send_dag(_sink, _config.clinic_timezone)
