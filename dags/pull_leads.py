"""Lead ingestion: one DAG per lead source listed in include/integrations.yaml."""

from datetime import datetime, timedelta

from airflow.sdk import dag, task

from ident_hooks.assets import LEADS
from ident_hooks.config import LeadSource, load_config, run_schedule
from ident_hooks.operators.pull_leads import AcknowledgeBookingsOperator, PullLeadsOperator

DOC = """
### Pull leads from {title} (`{name}`, kind `{kind}`)

Every {minutes} min asks **{name}** for the leads (заявки) created from 00:00 (clinic
time, {tz}) of the day of the newest lead loaded so far (or two hours before that lead,
if earlier: just after midnight) until now, and upserts them
into `integration.leads` — one row per (source, external id), so the overlap with the
previous run is harmless. Records that cannot be read (no id, bad time, wrong types)
land in `integration.lead_rejects` with the reason; the rest are stored.
{ack}
**Connection:** `{conn}` (see the README, "Setting up integrations").

**Cursor:** the Airflow Variable `leads_cursor_{name}` holds the source time of the
newest lead loaded (ISO 8601 with offset, e.g. `2026-11-20T14:05:00+03:00`). It is
written only after the leads are committed and never moves backwards. With no Variable
the first run starts {initial_days} days back.

**To re-pull a period:** set `leads_cursor_{name}` to an earlier time (Admin →
Variables) — the next run loads from 00:00 of that date; nothing is duplicated.
Deleting the Variable resets it to {initial_days} days back. A failed run can simply be
re-run (Clear): it repeats the same period.

When the run stored new or changed leads it updates the `leads` Asset, which
schedule publishing and the marketing reports follow.
{revisit}{switched_off}"""
REVISIT_DOC = """
Leads of this kind change state at the source after they came in (cancelled or deleted
there: they leave the inbox; restored: they come back), so every run also re-reads the
last {days} days.
"""
SWITCHED_OFF_DOC = """
A plain 503 (no `Retry-After`) means the partner switched the integration off on its side:
the run fails at once with `ServiceSwitchedOff`, without retries, and the cursor stays.
Ask the partner to switch it back on; the next run after that loads what was missed.
"""
ACK_DOC = """
Each stored booking is then acknowledged (`appointments/set-received`): НаПоправку
cancels bookings not acknowledged within 10 minutes. Acknowledgement happens only after
the booking is committed; one that failed is retried on the next run.
"""


def make_pull_dag(source: LeadSource, clinic_timezone: str):
    minutes = int(source.interval.total_seconds() // 60)

    @dag(
        dag_id=source.dag_id,
        schedule=run_schedule(source.interval),
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
        dagrun_timeout=timedelta(minutes=max(5, 3 * minutes)),
        tags=["leads", source.kind],
        doc_md=DOC.format(
            name=source.name,
            kind=source.kind,
            minutes=minutes,
            tz=clinic_timezone,
            conn=source.connection,
            initial_days=source.initial_days,
            ack=ACK_DOC if source.spec.acknowledges else "",
            title=source.title,
            revisit=REVISIT_DOC.format(days=source.spec.revisit_days)
            if source.spec.revisit_days
            else "",
            switched_off=SWITCHED_OFF_DOC if source.spec.connector_class().switched_off else "",
        ),
        default_args={
            "owner": "data-team",
            "retries": 2,
            "retry_delay": timedelta(seconds=20),
            "execution_timeout": timedelta(minutes=max(4, 2 * minutes)),
        },
    )
    def pull_leads():
        summary = PullLeadsOperator(task_id="pull_and_store", source=source.name).output

        @task.short_circuit
        def stored_new_or_changed(summary: dict) -> bool:
            return bool(summary["inserted"] or summary["updated"])

        @task(outlets=[LEADS])
        def announce_leads(summary: dict) -> None:
            print(f"{summary['inserted']} new and {summary['updated']} changed leads")

        stored_new_or_changed(summary) >> announce_leads(summary)

        if source.spec.acknowledges:
            # all_done: bookings stored by earlier runs are acknowledged even if this
            # run's pull failed, before the service's 10-minute limit runs out.
            summary >> AcknowledgeBookingsOperator(
                task_id="acknowledge_bookings", source=source.name, trigger_rule="all_done"
            )

    return pull_leads()


_config = load_config()
for _source in _config.lead_sources:
    if not _source.spec.push:  # pushed leads arrive at the intake service
        make_pull_dag(_source, _config.clinic_timezone)
