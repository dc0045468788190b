"""Which failures a task retries and which it reports at once."""

from __future__ import annotations

from collections.abc import Generator
from contextlib import contextmanager


@contextmanager
def fail_without_retry_on(*permanent: type[BaseException]) -> Generator[None]:
    """Turn errors no retry can fix (a wrong key, a refused payload, bad settings) into
    an immediate task failure instead of a round of Airflow retries.

    An error that says of itself ``retryable = True`` (a source's rate limit, say) is
    left for Airflow to retry even when its class is listed.
    """
    from airflow.sdk.exceptions import AirflowFailException

    try:
        yield
    except permanent as error:
        if getattr(error, "retryable", False):
            raise
        raise AirflowFailException(f"{type(error).__name__}: {error}") from error
