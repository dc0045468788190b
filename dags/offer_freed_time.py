"""Freed time offered to waiting leads: ident_hooks.schedule.freed does the work."""

from datetime import UTC, datetime, timedelta

from airflow.sdk import dag, task

from ident_hooks.assets import CLINIC_SCHEDULE, LEADS
from ident_hooks.config import run_schedule

NEARBY_DAYS_VARIABLE = "freed_time_nearby_days"
PER_LEAD_VARIABLE = "freed_time_slots_per_lead"

DOC = """
### Offer freed time to waiting leads

Within seconds of any change of the clinic's schedule (the `clinic_schedule` Asset), when
leads are stored (the `leads` Asset), and every 5 min: when an appointment is cancelled
(its status becomes `cancelled`, or it is deleted), its time is flagged on the open leads
(new, in progress) that asked for that doctor — or, having named no known doctor, named
that doctor's specialty — for a day within N days of it (branch time zone), or that named
no time and came within the last N days; at most M slots a lead, those closest to the time
it asked for (the soonest when it named none). The inbox shows the flagged slots on the lead.

Only time that is really free is offered: no other active appointment of the doctor
overlaps it, it lies in the doctor's work interval, and it starts after the export rules'
"no slots in the next N hours" (`clinic.export_settings.skip_hours_today`, default 2).
Offers that no longer hold — the time booked again, the lead taken to done or spam, the
slot now too close — are removed on the next run.

**Settings:** N is the Airflow Variable `freed_time_nearby_days` (default 3), M the
Variable `freed_time_slots_per_lead` (default 3).

**Where to look:** `integration.freed_appointments` (cancellations noted by the trigger of
migration 0026), `integration.lead_freed_slots` (the offers; `flagged_at` is when a run
first offered it). The task's return value counts offers added, withdrawn and standing.

**Re-run / reset:** every run recomputes all offers from the noted cancellations, so any
run can be re-run (Clear) or triggered at will; it never duplicates an offer. To offer a
slot again as new, delete its rows from `integration.lead_freed_slots`; to forget a
cancellation, delete it from `integration.freed_appointments`.
"""


@dag(
    dag_id="offer_freed_time",
    schedule=run_schedule(timedelta(minutes=5), also_on=[CLINIC_SCHEDULE, LEADS]),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=10),
    tags=["schedule", "leads"],
    doc_md=DOC,
    default_args={
        "owner": "data-team",
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "execution_timeout": timedelta(minutes=5),
    },
)
def offer_freed_time():
    @task(multiple_outputs=False)
    def offer() -> dict:
        from airflow.sdk import Variable

        from ident_hooks.db import connect
        from ident_hooks.schedule.freed import (
            DEFAULT_NEARBY_DAYS,
            DEFAULT_PER_LEAD,
            offer_freed_time,
        )

        nearby_days = int(Variable.get(NEARBY_DAYS_VARIABLE, default=DEFAULT_NEARBY_DAYS))
        per_lead = int(Variable.get(PER_LEAD_VARIABLE, default=DEFAULT_PER_LEAD))
        with connect() as conn:
            result = offer_freed_time(
                conn, datetime.now(UTC), nearby_days=nearby_days, per_lead=per_lead
            )
        return result.as_dict()

    offer()


offer_freed_time()
