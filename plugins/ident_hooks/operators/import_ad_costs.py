"""The operator that imports one cost source's daily campaign costs into
``report.ad_costs``.

Nothing heavy is imported at module level: DAG files import this module at parse time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from ident_hooks.config import load_config

if TYPE_CHECKING:
    from airflow.sdk import Context


class ImportAdCostsOperator(BaseOperator):
    """Import the costs of the cost source configured as ``cost_source``: its
    ``days_back`` days up to yesterday in the clinic's time zone, or the days the run's
    params ``date_from`` and ``date_to`` (YYYY-MM-DD) name. Each day's rows are replaced
    as a whole, so a re-run is harmless. Returns the period and the rows stored.

    A permanent failure (a wrong token, a refused request, a report that cannot be read)
    fails the task at once; a report the platform is still building after this task's
    waits fails it retryably, and the retry asks for the same report again.
    """

    template_fields: Sequence[str] = ("cost_source",)

    def __init__(self, *, cost_source: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cost_source = cost_source

    def execute(self, context: Context) -> dict:
        from ident_hooks.costs import period_to_import
        from ident_hooks.costs.store import replace_days
        from ident_hooks.db import connect
        from ident_hooks.hooks import HOOKS
        from ident_hooks.task_errors import airflow_error_policy

        config = load_config()
        source = config.cost_source(self.cost_source)
        connector = source.spec.connector_class()
        client = connector.client(source.connection, hook_class=HOOKS[source.spec.connection.name])
        params = context.get("params") or {}
        with airflow_error_policy():
            if params.get("date_from") or params.get("date_to"):
                date_from, date_to = _asked_period(params)
            else:
                date_from, date_to = period_to_import(
                    datetime.now().astimezone(), config.clinic_timezone, source.days_back
                )
            rows = connector.fetch(client, date_from, date_to, include_vat=source.include_vat)
            with connect() as conn:
                stored = replace_days(
                    conn, source.name, date_from, date_to, rows, vat_included=source.include_vat
                )
        return {"date_from": date_from.isoformat(), "date_to": date_to.isoformat(), "rows": stored}


def _asked_period(params: Any) -> tuple[date, date]:
    from ident_hooks.costs import CostReportRefused

    try:
        date_from = date.fromisoformat(str(params.get("date_from")))
        date_to = date.fromisoformat(str(params.get("date_to")))
    except ValueError as error:
        raise CostReportRefused(
            f"date_from and date_to must both be dates, YYYY-MM-DD: {error}"
        ) from None
    if date_from > date_to:
        raise CostReportRefused(f"date_from {date_from} is after date_to {date_to}")
    return date_from, date_to
