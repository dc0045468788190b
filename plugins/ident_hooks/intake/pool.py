"""The intake's clinic-database connections (a ``psycopg_pool`` pool), and one rule: any
database trouble is 503.

A connection found broken (the server restarted, the backend was terminated) is replaced,
the pool's other idle connections are checked at once (they most likely died with it), and
the work is tried once more; the work is idempotent (leads are keyed by source and id), so
a retry after a commit whose answer was lost stores nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from psycopg_pool import ConnectionPool

log = logging.getLogger(__name__)
T = TypeVar("T")
# Everything a request does in the database must fit well inside Tilda's 5 seconds: a wait
# for a free connection, then its statements.
CONNECTION_WAIT_SECONDS = 1.0
STATEMENT_TIMEOUT_MS = 3000
# How long the pool keeps reconnecting by itself, with growing pauses. Shorter than a
# request's wait: once it gives up, the next request connects at once, so a database that
# is back is not left waiting for the end of a pause.
RECONNECT_SECONDS = CONNECTION_WAIT_SECONDS / 2


class DatabaseAway(RuntimeError):
    """The clinic database cannot take the request now; the sender should retry."""


class _Broken(Exception):
    """The connection died under the work."""


def clinic_pool(connect: Callable[[], psycopg.Connection], size: int) -> ConnectionPool:
    """A closed pool of at most ``size`` connections, each made by ``connect()`` (e.g. from
    the Airflow connection ``ident_db``); ``open()`` it when the app starts."""

    class Connection(psycopg.Connection):
        # The pool opens connections with ``connection_class.connect``.
        @classmethod
        def connect(cls, conninfo: str = "", **kwargs: Any) -> psycopg.Connection:
            return connect()

    return ConnectionPool(
        connection_class=Connection,
        min_size=1,
        max_size=size,
        open=False,
        configure=_configure,
        name="intake",
        timeout=CONNECTION_WAIT_SECONDS,
        reconnect_timeout=RECONNECT_SECONDS,
    )


def _configure(conn: psycopg.Connection) -> None:
    conn.autocommit = False
    conn.execute(f"set statement_timeout = {STATEMENT_TIMEOUT_MS}")
    conn.execute(f"set lock_timeout = {STATEMENT_TIMEOUT_MS}")
    conn.commit()


def in_transaction(pool: ConnectionPool, work: Callable[[psycopg.Connection], T]) -> T:
    """``work(conn)`` in a transaction that is committed when it returns."""
    try:
        return _attempt(pool, work)
    except _Broken:
        pool.check()
    try:
        return _attempt(pool, work)
    except _Broken:
        log.warning("clinic database error: connection lost twice")
        raise DatabaseAway("the clinic database failed the request") from None


def _attempt(pool: ConnectionPool, work: Callable[[psycopg.Connection], T]) -> T:
    conn = None
    try:
        with pool.connection() as conn:
            return work(conn)
    except psycopg.Error as error:
        if conn is not None and conn.broken:
            raise _Broken from None
        log.warning("clinic database error: %s", type(error).__name__)
        raise DatabaseAway("the clinic database failed the request") from None
