"""The one place that maps an integration failure to an Airflow retry or a failure."""

from __future__ import annotations

from collections.abc import Generator
from contextlib import contextmanager

from ident_hooks.errors import PermanentFailure


@contextmanager
def airflow_error_policy() -> Generator[None]:
    """Fail the task at once on a :class:`~ident_hooks.errors.PermanentFailure` (a wrong
    key, a refused payload, bad settings) instead of a round of Airflow retries; every other
    error, :class:`~ident_hooks.errors.TransientFailure` included, is left for Airflow's
    retries.
    """
    from airflow.sdk.exceptions import AirflowFailException

    try:
        yield
    except PermanentFailure as error:
        raise AirflowFailException(f"{type(error).__name__}: {error}") from error
