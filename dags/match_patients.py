"""Leads matched again to the clinic's patient cards after the cards change."""

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, task

DOC = """
### Match leads to patient cards again

Every lead is matched to the clinic's patient cards when it is stored (in the same
transaction). The clinic's sync changes `clinic.patients` and `clinic.patient_phones` at
any time; triggers note each changed card in `integration.patient_changes`. Every two
minutes this DAG takes the noted cards, refreshes their phones in
`integration.patient_phone_index` (phones in E.164, as the leads have them) and matches
again the open leads and the leads of the last 30 days that those cards touch (same
phone, same e-mail, or matched to them before). A lead's rows in
`integration.lead_patient_matches` are replaced; the front desk's choices
(`integration.lead_patient_choices`) are never touched. See `docs/patients.md` for the
grades.

**Re-run / reset:** any run can be re-run (Clear) safely; a failed run leaves the noted
changes for the next one. To re-index every card and re-match every open and recent lead,
trigger the DAG with the param `full_rematch` = true, or run
`python -m ident_hooks.patients.rematch --full`. Truncating the cards does the same by
itself on the next run.
"""


@dag(
    dag_id="match_patients",
    schedule="*/2 * * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=20),
    tags=["leads"],
    doc_md=DOC,
    params={
        "full_rematch": Param(
            False,
            type="boolean",
            title="Re-match everything",
            description="Re-index every card's phones and re-match every open and recent lead.",
        )
    },
    default_args={
        "owner": "data-team",
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "execution_timeout": timedelta(minutes=15),
    },
)
def match_patients():
    @task(multiple_outputs=False)
    def rematch(params: dict | None = None) -> dict:
        from ident_hooks.db import connect
        from ident_hooks.patients.rematch import rematch as rematch_changed_cards

        with connect() as conn:
            summary = rematch_changed_cards(
                conn,
                now=datetime.now().astimezone(),
                full=bool((params or {}).get("full_rematch")),
            )
        print(
            f"{'full' if summary.full else 'incremental'} re-match: {summary.cards} cards"
            f" changed, {summary.phones_indexed} phones indexed, {summary.leads} leads,"
            f" {summary.matches} matches, {summary.seconds} s"
        )
        return summary.as_dict()

    rematch()


match_patients()
