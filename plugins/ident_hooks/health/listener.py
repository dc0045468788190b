"""An Airflow listener (registered by ``ident_hooks.airflow_plugins``) that records every
DAG run of this deployment in ``integration.dag_runs``, so the status page and the alerts
read Airflow's own verdicts from the clinic database — tasks cannot query Airflow's
metadata database in Airflow 3, and a pull that found no new leads leaves no other trace.

* ``on_dag_run_success`` / ``on_dag_run_failed`` are called where a run ends: in the
  scheduler (``DagRun.update_state``), in the api-server when a user marks a run, and in
  ``dag.test()``;
* ``on_task_instance_failed`` is called in the task's own process (also for a failure
  Airflow will retry) with the exception: the run's ``error``, secrets redacted, and its
  ``diagnosis`` — what the error, or the error it was raised from, says about the service
  (``ident_hooks.http_client.ServiceSwitchedOff.diagnosis``).

A listener must never break what called it: every failure here is logged and dropped, and
the work runs in a thread of its own (:func:`_apart_from_callers_session`).
Importing this module is cheap (every Airflow component imports the plugin).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from airflow.listeners import hookimpl

log = logging.getLogger(__name__)

_UPSERT = """
insert into integration.dag_runs
       (dag_id, run_id, state, started_at, finished_at, failed_task, error, error_at, diagnosis)
values (%(dag_id)s, %(run_id)s, %(state)s, %(started_at)s, %(finished_at)s,
        %(failed_task)s, %(error)s, case when %(error)s::text is not null then %(now)s end,
        %(diagnosis)s)
on conflict (dag_id, run_id) do update
   set state = case when excluded.state = 'running' then dag_runs.state else excluded.state end,
       started_at = coalesce(dag_runs.started_at, excluded.started_at),
       finished_at = coalesce(excluded.finished_at, dag_runs.finished_at),
       failed_task = coalesce(excluded.failed_task, dag_runs.failed_task),
       -- A task's error (the newest attempt's) wins over the run's summary of it.
       error = case when excluded.state = 'running'
                    then coalesce(excluded.error, dag_runs.error)
                    else coalesce(dag_runs.error, excluded.error) end,
       error_at = case when excluded.state = 'running'
                       then coalesce(excluded.error_at, dag_runs.error_at)
                       else coalesce(dag_runs.error_at, excluded.error_at) end,
       -- Goes with the task's error it came with.
       diagnosis = case when excluded.state = 'running' and excluded.error is not null
                        then excluded.diagnosis else dag_runs.diagnosis end,
       recorded_at = now()
"""


def record_run(
    *,
    dag_id: str,
    run_id: str,
    state: str,
    started_at: Any = None,
    finished_at: Any = None,
    failed_task: str | None = None,
    error: str | None = None,
    diagnosis: str | None = None,
) -> None:
    """Upsert one run's row; a task's error never overwrites the run's final state."""
    from ident_hooks.db import connect

    with connect() as conn:
        conn.execute(
            _UPSERT,
            {
                "dag_id": dag_id,
                "run_id": run_id,
                "state": state,
                "started_at": started_at,
                "finished_at": finished_at,
                "failed_task": failed_task,
                "error": error,
                "diagnosis": diagnosis,
                "now": datetime.now(UTC),
            },
        )
        conn.commit()


def _apart_from_callers_session(work: Callable[[], None]) -> None:
    """Run ``work`` in a thread of its own and wait for it.

    Airflow's ORM session is scoped to the thread, and the scheduler calls listeners inside
    its own: looking ``ident_db`` up in the metadata database there would commit and close
    the scheduler's session under it (its objects detached, DetachedInstanceError later).
    """
    worker = threading.Thread(target=work, name="ident-hooks-listener")
    worker.start()
    worker.join()


def _record_dag_run(dag_run: Any, state: str, msg: str | None) -> None:
    # Read in the caller's thread, where the run's attributes are loaded.
    fields = {
        "dag_id": dag_run.dag_id,
        "run_id": dag_run.run_id,
        "started_at": dag_run.start_date,
        "finished_at": dag_run.end_date,
    }
    _apart_from_callers_session(lambda: _record_run_logged(fields, state, msg))


def _record_run_logged(fields: dict[str, Any], state: str, msg: str | None) -> None:
    try:
        record_run(
            **fields,
            state=state,
            # Kept only when no task said why (a run that timed out, say): see _UPSERT.
            error=f"DAG run failed: {msg}" if state == "failed" else None,
        )
    except Exception:
        log.exception("could not record the end of %s %s", fields["dag_id"], fields["run_id"])


@hookimpl
def on_dag_run_success(dag_run: Any, msg: str) -> None:
    _record_dag_run(dag_run, "success", msg)


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    _record_dag_run(dag_run, "failed", msg)


def diagnosis_of(error: Any) -> str | None:
    """The first ``diagnosis`` along the error and the errors it was raised from."""
    seen: set[int] = set()
    while isinstance(error, BaseException) and id(error) not in seen:
        seen.add(id(error))
        diagnosis = getattr(error, "diagnosis", None)
        if isinstance(diagnosis, str):
            return diagnosis
        error = error.__cause__ or error.__context__
    return None


@hookimpl
def on_task_instance_failed(previous_state: Any, task_instance: Any, error: Any) -> None:
    _apart_from_callers_session(lambda: _record_task_failure(task_instance, error))


def _record_task_failure(task_instance: Any, error: Any) -> None:
    try:
        from ident_hooks.health.redact import redact

        if isinstance(error, BaseException):
            text = f"{type(error).__name__}: {error}"
        else:
            text = str(error or "the task failed")
        record_run(
            dag_id=task_instance.dag_id,
            run_id=task_instance.run_id,
            state="running",
            failed_task=task_instance.task_id,
            error=redact(text),
            diagnosis=diagnosis_of(error),
        )
    except Exception:
        log.exception("could not record the failure of a task")
