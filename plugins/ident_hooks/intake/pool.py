"""A few reusable clinic-database connections, and one rule: any database trouble is 503.

A connection found broken (the server restarted, the backend was terminated) is dropped and
the work is tried once more on a new one; the work is idempotent (leads are keyed by source
and id), so a retry after a commit whose answer was lost stores nothing twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

import psycopg

log = logging.getLogger(__name__)
T = TypeVar("T")
# Everything a request does in the database must fit well inside Tilda's 5 seconds.
STATEMENT_TIMEOUT_MS = 3000


class DatabaseAway(RuntimeError):
    """The clinic database cannot take the request now; the sender should retry."""


class _Stale(Exception):
    """A pooled connection turned out to be dead."""


class ConnectionPool:
    def __init__(self, connect: Callable[[], psycopg.Connection], size: int = 8) -> None:
        self._connect = connect
        self._size = size
        self._idle: list[psycopg.Connection] = []
        self._lock = threading.Lock()

    def run(self, work: Callable[[psycopg.Connection], T]) -> T:
        """``work(conn)`` in a transaction that is committed when it returns."""
        conn, reused = self._take()
        try:
            return self._run_on(conn, work, stale_is_away=not reused)
        except _Stale:
            return self._run_on(self._new(), work, stale_is_away=True)

    def _take(self) -> tuple[psycopg.Connection, bool]:
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed:
                    return conn, True
        return self._new(), False

    def _new(self) -> psycopg.Connection:
        try:
            conn = self._connect()
            conn.autocommit = False
            conn.execute(f"set statement_timeout = {STATEMENT_TIMEOUT_MS}")
            conn.execute(f"set lock_timeout = {STATEMENT_TIMEOUT_MS}")
            conn.commit()
        except psycopg.Error as error:
            log.warning("clinic database unreachable: %s", type(error).__name__)
            raise DatabaseAway("the clinic database is unreachable") from None
        return conn

    def _run_on(
        self,
        conn: psycopg.Connection,
        work: Callable[[psycopg.Connection], T],
        *,
        stale_is_away: bool,
    ) -> T:
        try:
            result = work(conn)
            conn.commit()
        except psycopg.Error as error:
            conn.close()
            if not stale_is_away and isinstance(error, psycopg.OperationalError):
                raise _Stale from None  # died while idle: once more on a new connection
            log.warning("clinic database error: %s", type(error).__name__)
            raise DatabaseAway("the clinic database failed the request") from None
        except BaseException:
            conn.close()
            raise
        with self._lock:
            if len(self._idle) < self._size:
                self._idle.append(conn)
                return result
        conn.close()
        return result

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
