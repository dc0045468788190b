"""Marketing reports: the report.* tables, rebuilt as leads arrive and once a day."""

from datetime import datetime, timedelta

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, task

from ident_hooks.assets import LEADS
from ident_hooks.config import load_config

DOC = """
### Build the marketing reports

Rebuilds the tables marketers query in schema `report` of the clinic database
(connection **`ident_db`**): `leads_daily`, `campaigns`, `response_time`,
`doctor_demand` (see `docs/reports.md` for every column and the channel rules).

**When:** as soon as lead ingestion stores new or changed leads (the `leads` Asset) and
every day at 03:00 ({tz}) — conversions change as appointments are booked or cancelled,
and doctors' free slots change with every booking.

**What a run does:** only the days touched since the last run. Every insert, update or
delete of a lead (ingestion, the admins' inbox, a manual fix) is noted by a trigger in
`report_build.lead_changes`; appointments are compared with the copy the last run kept.
The run recomputes the affected leads (their phone's neighbours within 30 days too:
repeat leads and conversions), then deletes and re-inserts the rows of the days,
campaigns and doctor weeks whose numbers changed — in one transaction, so a failed or
repeated run leaves the tables consistent. `report.build_state.built_at` says when the
tables were last brought up to date.

**Re-run / reset:** any run can be re-run (Clear) safely. To rebuild everything, trigger
the DAG with the param `full_rebuild` = true (*Trigger DAG* → params), or run
`python -m ident_hooks.reports.build --full`. A full rebuild also happens by itself on
the first run, after the channel rules or the clinic time zone change, and after
`integration.leads` was truncated. Deleting the row of `report.build_state` resets the
reports: the next run rebuilds them from scratch.
"""


@dag(
    dag_id="build_marketing_reports",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 3 * * *", timezone=load_config().clinic_timezone),
        assets=[LEADS],
    ),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=60),
    tags=["reports", "marketing"],
    doc_md=DOC.format(tz=load_config().clinic_timezone),
    params={
        "full_rebuild": Param(
            False,
            type="boolean",
            title="Rebuild everything",
            description="Recompute every report table from all leads, not only what changed.",
        )
    },
    default_args={
        "owner": "data-team",
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "execution_timeout": timedelta(minutes=45),
    },
)
def build_marketing_reports():
    @task(multiple_outputs=False)
    def build(params: dict | None = None) -> dict:
        from ident_hooks.db import connect
        from ident_hooks.reports.build import build_reports

        with connect() as conn:
            summary = build_reports(
                conn,
                clinic_timezone=load_config().clinic_timezone,
                now=datetime.now().astimezone(),
                full=bool((params or {}).get("full_rebuild")),
            )
        print(
            f"{summary.mode} build ({summary.reason}): {summary.leads_changed} leads changed,"
            f" days {summary.days or '-'}, {summary.campaigns} campaigns,"
            f" {len(summary.weeks)} doctor weeks, {summary.seconds} s"
        )
        return summary.as_dict()

    build()


build_marketing_reports()
