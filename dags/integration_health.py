"""Integration health: every minute, alert on integrations turning red and back green, and
escalate leads nobody took (ident_hooks.health; limits and destinations: include/alerts.yaml)."""

from datetime import datetime, timedelta

from airflow.sdk import (
    CronTriggerTimetable,
    dag,
    task,
)

DOC = """
### Integration health and alerts

Every minute computes the health of every integration in `include/integrations.yaml` (the
same rows as the **Состояние интеграций** page, `/status/`) and sends, through the
Telegram and SMTP providers (connections named in `include/alerts.yaml`):

- **to the data team**: one message when an integration turns red (its last success older
  than its limit — pulls 3 × their interval, publishing 2 × — or its DAG failed twice in a
  row), one when it is no longer red; the same for any other DAG failing twice in a row
  and for the clinic's sync heartbeat (`clinic.sync_heartbeat`) going stale;
- **to a branch's front desk**: each lead nobody took within `lead_escalation_minutes`
  (escalated once, recorded in `integration.lead_escalations`) and each НаПоправку booking
  still unacknowledged `booking_warning_minutes` after it came (the service cancels it at 10).

What was sent: `integration.alerts_sent`; the state of each alert:
`integration.alert_state` — **to reset** an alert (say, to hear of an ongoing outage
again), delete its row. A failed run needs no re-run: the next one, a minute later,
catches up (Clear re-runs it at once). The status page shows when this DAG last
succeeded («последняя проверка с оповещениями»).
"""


@dag(
    dag_id="integration_health",
    schedule=CronTriggerTimetable("* * * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=5),
    tags=["health"],
    doc_md=DOC,
    default_args={
        "owner": "data-team",
        # Alert state lives in the database: a retry never repeats a message already sent.
        "retries": 1,
        "retry_delay": timedelta(seconds=15),
        "execution_timeout": timedelta(minutes=2),
    },
)
def integration_health():
    @task(multiple_outputs=False)
    def check_and_alert() -> dict:
        from airflow.sdk import conf

        from ident_hooks.config import load_config
        from ident_hooks.db import connect
        from ident_hooks.health.alerts import run_checks
        from ident_hooks.health.settings import load_alerts_config

        base_url = (conf.get("api", "base_url", fallback="") or "").rstrip("/")
        with connect() as conn:
            summary = run_checks(
                conn,
                load_config(),
                load_alerts_config(),
                now=datetime.now().astimezone(),
                inbox_url=f"{base_url}/inbox/" if base_url else None,
            )
        print(summary.as_dict())
        return summary.as_dict()

    check_and_alert()


integration_health()
