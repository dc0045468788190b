"""Schedule publishing: one DAG per aggregator listed in include/integrations.yaml."""

from datetime import datetime, timedelta

from airflow.sdk import dag, task

from ident_hooks.assets import LEADS
from ident_hooks.config import Aggregator, load_config, run_schedule

DOC = """
### Publish free appointment time to {title}

Every {minutes} min, and as soon as lead ingestion reports new leads (the `leads`
Asset), computes each doctor's free slots — work intervals (`clinic.work_intervals`)
minus appointments that are not cancelled (in any branch) and minus the time open
leads asked for — and sends them to **{title}** ({format}).

**Rules** ("Правила выгрузки расписания"), from `clinic.export_settings` and
`clinic.export_rules` for aggregator `{name}`: days ahead (default 30{napopravku}),
slot length (default 30 min, a doctor's rule overrides it), no slots in the next N hours
today (default 2), doctors excluded with `publish = false`. Times are in each branch's
own time zone. Settings that make no sense stop the run before anything is sent.

**Connection:** `{conn}` — host = the API base URL, password = the token or key.

**Delivery:** large networks go in several requests (per branch, split further when
big), each retried on its own on network errors, 5xx and 429 (honouring Retry-After);
401/403/422 fail the run at once with the service's message. A request identical to
the last one sent successfully is not sent again within 60 minutes.

**Where to look:** `integration.publish_log` has one row per run (doctors, free slots,
busy cells, bytes, HTTP status, payload hash, error).

**Re-run / reset:** any run can be re-run (Clear) safely — it recomputes from the
database. To force a full resend, delete this aggregator's rows from
`integration.publish_state`.
"""
TITLES = {
    "prodoctorov": ("ПроДокторов", "free and busy cells, /v2/doctors/send_schedule/"),
    "napopravku": ("НаПоправку", "clinics, doctors and free ranges, RTA API `slots`"),
    "sberzdorovie": ("СберЗдоровье", "IDENT PostTimeTable, free and busy"),
    "32top": ("32top", "IDENT PostTimeTable, free and busy"),
}


def make_publish_dag(aggregator: Aggregator):
    minutes = int(aggregator.interval.total_seconds() // 60)
    title, payload_format = TITLES[aggregator.name]

    @dag(
        dag_id=f"publish_schedule_{aggregator.name}",
        schedule=run_schedule(aggregator.interval, also_on=[LEADS]),
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
        dagrun_timeout=timedelta(minutes=max(10, 2 * minutes)),
        tags=["schedule", aggregator.name],
        doc_md=DOC.format(
            title=title,
            format=payload_format,
            name=aggregator.name,
            minutes=minutes,
            conn=aggregator.connection,
            napopravku="; НаПоправку is always today + 32"
            if aggregator.name == "napopravku"
            else "",
        ),
        default_args={
            "owner": "data-team",
            "retries": 2,
            "retry_delay": timedelta(minutes=1),
            "execution_timeout": timedelta(minutes=max(8, minutes)),
        },
    )
    def publish_schedule():
        @task(multiple_outputs=False)
        def publish(run_id: str | None = None) -> dict:
            from ident_hooks.db import connect
            from ident_hooks.http_client import ServiceMisconfigured, ServiceRejected
            from ident_hooks.schedule.aggregators import AGGREGATORS, RequestTooLarge
            from ident_hooks.schedule.engine import InvalidExportSettings
            from ident_hooks.schedule.publish import publish_schedule
            from ident_hooks.task_errors import fail_without_retry_on

            refused = (InvalidExportSettings, ServiceRejected, ServiceMisconfigured)
            client = AGGREGATORS[aggregator.name].client(aggregator.connection)
            with fail_without_retry_on(*refused, RequestTooLarge), connect() as conn:
                summary = publish_schedule(
                    aggregator.name,
                    conn=conn,
                    client=client,
                    now=datetime.now().astimezone(),
                    run_id=run_id,
                )
            return summary.as_dict()

        publish()

    return publish_schedule()


for _aggregator in load_config().aggregators:
    make_publish_dag(_aggregator)
