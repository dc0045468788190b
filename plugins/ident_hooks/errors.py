"""The two classes every integration failure belongs to, fixed where the failure is judged.

A connector that reads a service's reply decides there, with the reply in hand, whether
another attempt could help: it raises a subclass of :class:`PermanentFailure` (a refused
request, a wrong key, bad settings, a partner that switched the integration off) or of
:class:`TransientFailure` (a rate limit, a proxy's error page, a service that is down).
Nothing reclassifies an error after it was raised;
:func:`ident_hooks.task_errors.airflow_error_policy` is the one place that turns the class
into Airflow's retry or an immediate failure.
"""

from __future__ import annotations


class PermanentFailure(Exception):
    """No retry can fix it: the task fails at once, and someone must act."""

    retryable = False


class TransientFailure(Exception):
    """Another attempt later may succeed: Airflow retries the task."""

    retryable = True
