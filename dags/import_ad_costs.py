"""Ad costs: one DAG per cost source listed in include/integrations.yaml."""

from datetime import datetime, timedelta

from airflow.sdk import CronTriggerTimetable, Param, dag

from ident_hooks.config import CostSource, load_config
from ident_hooks.operators.import_ad_costs import ImportAdCostsOperator

DOC = """
### Import ad costs from {title} (`{name}`, kind `{kind}`)

Daily at 06:00 clinic time ({tz}) asks **{name}** for every campaign's impressions, clicks
and cost per day for the last {days} days up to yesterday ({vat}), and replaces those days'
rows of `report.ad_costs` (source `{name}`) in one transaction: the platform revises recent
days, and importing a day again leaves exactly its latest figures. A day without
statistics ends up with no rows.

**Connection:** `{conn}` — the OAuth token as the password, `Client-Login` for an agency's
token (docs/integrations.md, "Ad costs").

The platform builds a report offline: the run waits as long as it is told (`retryIn`), up
to 5 minutes, then fails retryably and its retry asks for the same report. A wrong token
or a refused request fails the run at once, without retries: fix the connection and re-run.

**To re-import a period:** *Trigger DAG w/ config* with `date_from` and `date_to`
(YYYY-MM-DD); those days are replaced. A failed run can simply be re-run (Clear). There is
no cursor to reset: every run reads its own period.
"""


def make_import_dag(source: CostSource, clinic_timezone: str):
    @dag(
        dag_id=source.dag_id,
        schedule=CronTriggerTimetable("0 6 * * *", timezone=clinic_timezone),
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
        dagrun_timeout=timedelta(minutes=60),
        tags=["costs", source.kind],
        params={
            "date_from": Param(None, type=["null", "string"], format="date"),
            "date_to": Param(None, type=["null", "string"], format="date"),
        },
        doc_md=DOC.format(
            name=source.name,
            kind=source.kind,
            title=source.title,
            tz=clinic_timezone,
            days=source.days_back,
            vat="with VAT" if source.include_vat else "without VAT",
            conn=source.connection,
        ),
        default_args={
            "owner": "data-team",
            "retries": 3,
            "retry_delay": timedelta(minutes=5),
            "execution_timeout": timedelta(minutes=15),
        },
    )
    def import_ad_costs():
        ImportAdCostsOperator(task_id="import_costs", cost_source=source.name)

    return import_ad_costs()


_config = load_config()
for _source in _config.cost_sources:
    make_import_dag(_source, _config.clinic_timezone)
