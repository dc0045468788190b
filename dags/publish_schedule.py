"""Schedule publishing: one DAG per aggregator listed in include/integrations.yaml."""

from datetime import datetime, timedelta

from airflow.sdk import dag

from ident_hooks.assets import CLINIC_SCHEDULE, LEADS
from ident_hooks.config import Aggregator, load_config, run_schedule
from ident_hooks.operators.publish_schedule import PublishScheduleOperator

DOC = """
### Publish free appointment time to {title}

{when}
computes each doctor's free slots — work intervals (`clinic.work_intervals`) minus
appointments that are not cancelled (in any branch) and minus the time open leads asked
for — and sends them to **{title}** (kind `{kind}`: {payload}).

**Rules** ("Правила выгрузки расписания"), from `clinic.export_settings` and
`clinic.export_rules` for aggregator `{name}`: days ahead ({horizon}), slot length
(default 30 min, a doctor's rule overrides it), no slots in the next N hours today
(default 2), doctors excluded with `publish = false`. Times are in each branch's own
time zone. Settings that make no sense stop the run before anything is sent. While the
clinic's sync heartbeat is stale (`include/alerts.yaml`), the near days offer no free time.

**Connection:** `{conn}` — host = the API base URL, password = the token or key.

**Delivery:** each request is retried on its own on network errors, 5xx and 429
(honouring Retry-After); 401/403/422 fail the run at once with the service's message.
{resend}

**Where to look:** `integration.publish_log` has one row per run (its `mode`: full,
changes, idle or poll; doctors recomputed, free slots, busy cells, bytes, HTTP status,
payload hash, error, doctors the service could not match).

**Byte budget:** {budget}

**Re-run / reset:** any run can be re-run (Clear) safely: it publishes what is not yet
accepted. To force a full recomputation and resend, delete this aggregator's rows from
`integration.schedule_state` and `integration.publish_state`; the next run (trigger one)
is then a full one. A run waiting for the byte budget can be marked success to drop the
wait: its changes go with the next run.
"""


def _when(minutes: int, on_change: bool) -> str:
    if on_change:
        return (
            "Within seconds of any change of the clinic's schedule (the `clinic_schedule` Asset:"
            " statement triggers log each change, its watcher in the triggerer fires), when"
            f" leads are stored (the `leads` Asset), and every {minutes} min: recomputes only"
            " the doctors that changed (everything on the first run of a local day, the daily"
            " snapshot), reading nothing while nothing changed;"
        )
    return (
        f"Every {minutes} min, and as soon as new leads are stored (the `leads` Asset),"
        " rereads the whole clinic and"
    )


def _resend_rule(spec, on_change: bool) -> str:
    if on_change:
        due = ", ".join(
            f"{kind} every {int(period.total_seconds() // 60)} min"
            for kind, period in spec.resend_every.items()
        )
        return (
            "Only requests whose body changed are sent"
            + (f"; unchanged ones as the service requires: {due}." if due else ".")
            + " A full run (daily) sends everything."
        )
    if not spec.skip_unchanged:
        return "Everything is sent on every run."
    skipped = ", ".join(
        f"{kind} for {int(period.total_seconds() // 60)} min"
        for kind, period in spec.skip_unchanged.items()
    )
    return (
        f"A request identical to the last one accepted is not sent again: {skipped}; "
        "any other request goes on every run."
    )


def _budget_rule(aggregator: Aggregator) -> str:
    if not aggregator.publish_on_change:
        return "none: polling is the reference the budget of a change-driven instance follows."
    limit = (
        f"{aggregator.byte_budget_per_hour} bytes an hour"
        if aggregator.byte_budget_per_hour
        else "what polling would send (the whole payload, uncompressed, every interval)"
    )
    return (
        f"changes never send more than {limit}"
        + (", counted gzipped (`gzip: true`)" if aggregator.gzip else "")
        + ". Past it they coalesce: the task waits as *up for reschedule* and sends them"
        " when the budget allows, or leaves them to the timer's next tick, which sends what"
        " differs as polling would; `integration.publish_log` shows such a run as"
        " `deferred` (`deferred_until`). Time alone resends only on the timer's ticks, when a"
        " free slot a body offers has crossed today's cut-off: a slot may linger there up to"
        " one interval, as with IDENT's own sending."
    )


def make_publish_dag(aggregator: Aggregator):
    minutes = int(aggregator.interval.total_seconds() // 60)
    spec = aggregator.spec

    @dag(
        dag_id=aggregator.dag_id,
        schedule=run_schedule(
            aggregator.interval,
            also_on=[CLINIC_SCHEDULE, LEADS] if aggregator.publish_on_change else [LEADS],
        ),
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
        dagrun_timeout=timedelta(minutes=max(10, 2 * minutes)),
        tags=["schedule", aggregator.kind],
        doc_md=DOC.format(
            title=aggregator.title,
            kind=spec.name,
            payload=spec.payload,
            name=aggregator.name,
            when=_when(minutes, aggregator.publish_on_change),
            conn=aggregator.connection,
            horizon=f"fixed by the service at today + {spec.fixed_days_ahead}"
            if spec.fixed_days_ahead is not None
            else "default 30",
            resend=_resend_rule(spec, aggregator.publish_on_change),
            budget=_budget_rule(aggregator),
        ),
        default_args={
            "owner": "data-team",
            "retries": 2,
            "retry_delay": timedelta(minutes=1),
            "execution_timeout": timedelta(minutes=max(8, minutes)),
        },
    )
    def publish_schedule():
        PublishScheduleOperator(task_id="publish", aggregator=aggregator.name)

    return publish_schedule()


for _aggregator in load_config().aggregators:
    make_publish_dag(_aggregator)
