"""Event triggers the triggerer runs for the Assets of ``ident_hooks.assets``.

``NewLeadsTrigger`` watches the clinic database for leads that could hold a doctor's time
(open, still active at their source, matched to a doctor, with a requested start; the
same rows ``schedule.reader.BUSY_SQL`` takes off the free time) and fires a
``TriggerEvent`` for each new batch of them, so that the ``leads`` Asset is updated when a
lead is pushed to the intake service as well as when a pull DAG stores one.

How it finds them, cheaply:

- It LISTENs on channel ``integration_leads``, where migration 0012 sends
  ``{"op": "insert", "lead_id": N}`` after every statement that adds open leads. A
  notification only wakes it up; one indexed query then decides (only ``insert`` ops do:
  updates and deletes do not ask for new time, and acknowledgements send nothing).
- Every ``poll_seconds`` it runs the same query anyway, so a lost notification (the
  trigger was reconnecting, or a writer ran with triggers disabled) only delays the event.
- The cursor is the newest lead id it has fired for, kept in the Asset's state store
  (AIP-103, Airflow 3.3), so leads committed while the triggerer was down are found when
  it starts again. With no cursor stored yet (the first start) every qualifying open lead
  counts as new: one extra publish instead of a missed one.
- Lead ids are taken at insert and committed in any order: a lead committed after a
  newer one has been seen is still found through its own notification, whose id it
  queries explicitly (a pushed lead is one statement, hence one notification).

Transient database errors never end the trigger: it reconnects with a back-off up to
``poll_seconds`` and looks again from its cursor.

Airflow facts, from the installed apache-airflow 3.3 (``.venv/lib/python3.11/site-packages``):
``airflow/sdk/definitions/asset/__init__.py`` (``AssetWatcher`` takes any
``BaseEventTrigger``); ``airflow/jobs/triggerer_job_runner.py`` (a watcher's trigger gets
``asset_state_store`` for its watched assets before ``run()``, and keeps running after each
event it yields); ``airflow/models/trigger.py`` ``submit_event`` (each event becomes an
event of every watched asset, with ``extra={"from_trigger": True, "payload": ...}``);
``airflow/sdk/bases/hook.py`` ``aget_connection``. psycopg 3: ``AsyncConnection.notifies``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

CHANNEL = "integration_leads"
APPLICATION_NAME = "airflow leads watcher"
SCHEDULE_APPLICATION_NAME = "airflow schedule watcher"
CURSOR_KEY = "watcher_lead_id"  # in the watched Asset's state store
_FIRST_RETRY_SECONDS = 1.0

# ``top``: the newest lead id at all (a cursor above it means the table was recreated).
# ``newest``: the newest qualifying lead past the cursor. ``late``: a notified qualifying
# lead at or below the cursor, committed after a newer one was seen. The primary key
# bounds the scan to the leads past the cursor plus the notified ones.
_CHECK_SQL = """
select (select max(lead_id) from integration.leads) as top,
       max(lead_id) filter (where lead_id > %(after)s) as newest,
       max(lead_id) filter (where lead_id <= %(after)s) as late
  from integration.leads
 where (lead_id > %(after)s or lead_id = any(%(notified)s))
   and status in ('new', 'in_progress') and source_state is null
   and doctor_id is not null and requested_start is not null
"""


class _ClinicDatabaseTrigger(BaseEventTrigger):
    """What both watchers share: the clinic database's connection and a polling period.

    :param conn_id: the Airflow connection of the clinic database (``postgres``; its host
        may be a Unix-socket directory).
    :param poll_seconds: how often to look even without a notification.
    """

    application_name = APPLICATION_NAME  # how its connection shows in pg_stat_activity

    def __init__(self, conn_id: str = "ident_db", poll_seconds: float = 30.0) -> None:
        super().__init__()
        if poll_seconds <= 0:
            raise ValueError("poll_seconds must be positive")
        self.conn_id = conn_id
        self.poll_seconds = poll_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"conn_id": self.conn_id, "poll_seconds": self.poll_seconds},
        )

    async def _conninfo(self) -> str:
        from airflow.sdk import BaseHook
        from psycopg import pq
        from psycopg.conninfo import make_conninfo

        conn = await BaseHook.aget_connection(self.conn_id)
        keywords = {d.keyword.decode() for d in pq.Conninfo.get_defaults()}
        params: dict[str, Any] = {
            key: value for key, value in conn.extra_dejson.items() if key in keywords
        }
        params.update(
            host=conn.host,
            port=conn.port,
            user=conn.login,
            password=conn.password,
            dbname=conn.schema,
        )
        params.setdefault("application_name", self.application_name)
        return make_conninfo(**{k: v for k, v in params.items() if v not in (None, "")})


class NewLeadsTrigger(_ClinicDatabaseTrigger):
    """Fire when leads that could hold a doctor's time arrive in the clinic database."""

    async def run(self) -> AsyncIterator[TriggerEvent]:
        import psycopg

        after = await self._load_cursor()
        retry = _FIRST_RETRY_SECONDS
        while True:
            try:
                conninfo = await self._conninfo()
                async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                    await conn.execute(f"listen {CHANNEL}")
                    retry = _FIRST_RETRY_SECONDS
                    notified: list[int] = []  # on connect: whatever came while away
                    while True:
                        top, newest, late = await (
                            await conn.execute(_CHECK_SQL, {"after": after, "notified": notified})
                        ).fetchone()
                        if after > (top or 0):
                            self.log.info("lead ids restart below cursor %s: rescanning", after)
                            after = 0
                            await self._save_cursor(after)
                            continue
                        if newest is not None or late is not None:
                            lead_id = newest if newest is not None else late
                            self.log.info("new lead %s can hold a doctor's time", lead_id)
                            yield TriggerEvent({"op": "insert", "lead_id": lead_id})
                            if newest is not None:
                                after = newest
                                await self._save_cursor(after)
                        notified = await self._wait_for_inserts(conn)
            except (psycopg.Error, OSError) as error:
                self.log.warning("clinic database unavailable (%s); retry in %s s", error, retry)
                await asyncio.sleep(retry)
                retry = min(retry * 2, self.poll_seconds)

    async def _wait_for_inserts(self, conn) -> list[int]:
        """Lead ids of insert notifications, waiting up to one poll period ([] on time-out).

        After the first one, the notifications already received are taken too, so that a
        burst costs one query. Each stream is closed before the connection is used again:
        an open one holds the connection's lock.
        """
        notified: list[int] = []
        async with aclosing(conn.notifies(timeout=self.poll_seconds)) as stream:
            async for notify in stream:
                if (lead_id := _inserted_lead(notify.payload)) is not None:
                    notified.append(lead_id)
                    break
        if notified:
            async with aclosing(conn.notifies(timeout=0)) as stream:
                async for notify in stream:
                    if (lead_id := _inserted_lead(notify.payload)) is not None:
                        notified.append(lead_id)
        return notified

    async def _load_cursor(self) -> int:
        if self.asset_state_store is None:
            return 0
        value = await self.asset_state_store.aget(CURSOR_KEY, default=0)
        return int(value or 0)

    async def _save_cursor(self, lead_id: int) -> None:
        if self.asset_state_store is not None:
            await self.asset_state_store.aset(CURSOR_KEY, lead_id)


def _inserted_lead(payload: str) -> int | None:
    """The lead id of an ``insert`` notification of migration 0012, else None."""
    try:
        message = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(message, dict) or message.get("op") != "insert":
        return None
    lead_id = message.get("lead_id")
    return lead_id if isinstance(lead_id, int) else None


SCHEDULE_CHANNEL = "clinic_schedule"
SCHEDULE_CURSOR_KEY = "watcher_snapshot"  # in the watched Asset's state store
# Changes the cursor snapshot could not see, and the snapshot to move the cursor to: the
# same exact test the publishing runs use (ident_hooks.schedule.changes).
_SCHEDULE_CHECK_SQL = """
select exists (select 1 from integration.schedule_changes
                where xid >= pg_snapshot_xmin(%(after)s::pg_snapshot)
                  and not pg_visible_in_snapshot(xid, %(after)s::pg_snapshot)),
       pg_current_snapshot()::text
"""


class ClinicScheduleTrigger(_ClinicDatabaseTrigger):
    """Fire when the clinic's schedule changed (the change log of migration 0013).

    LISTENs on ``clinic_schedule``, where each changing statement's trigger sends a
    NOTIFY at commit; checks the log on every notification and every ``poll_seconds``
    anyway, so a missed notification only delays. The cursor is a PostgreSQL snapshot, kept
    in the Asset's state store: a change committed late with a lower id, or while the
    triggerer was down, is still after it. The very first start only takes the cursor.
    After the first notification it waits
    ``settle_seconds`` for the rest of a burst (a sync writing a hundred appointments is a
    hundred statements), so a burst is one event, not a hundred.

    :param settle_seconds: how long to gather a burst before firing.
    """

    application_name = SCHEDULE_APPLICATION_NAME

    def __init__(
        self, conn_id: str = "ident_db", poll_seconds: float = 30.0, settle_seconds: float = 0.5
    ) -> None:
        super().__init__(conn_id, poll_seconds)
        if settle_seconds < 0:
            raise ValueError("settle_seconds must not be negative")
        self.settle_seconds = settle_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        path, kwargs = super().serialize()
        return path, {**kwargs, "settle_seconds": self.settle_seconds}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        import psycopg

        after = await self._load_snapshot()
        retry = _FIRST_RETRY_SECONDS
        while True:
            try:
                conninfo = await self._conninfo()
                async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                    await conn.execute(f"listen {SCHEDULE_CHANNEL}")
                    retry = _FIRST_RETRY_SECONDS
                    if after is None:
                        # The first start ever: what came before is the timer's to publish
                        # (a first run reads everything); from here on nothing is missed.
                        after = await self._snapshot(conn)
                        await self._save_snapshot(after)
                    while True:
                        changed, snapshot = await (
                            await conn.execute(_SCHEDULE_CHECK_SQL, {"after": after})
                        ).fetchone()
                        if changed:
                            await self._drain(conn, self.settle_seconds)
                            # Everything committed by now is covered by the coming run.
                            after = await self._snapshot(conn)
                            await self._save_snapshot(after)
                            self.log.info("clinic schedule changed")
                            yield TriggerEvent({"changed": "clinic_schedule"})
                        elif snapshot != after:
                            after = snapshot  # keeps the checked range short
                        await self._wait(conn)
            except (psycopg.Error, OSError) as error:
                self.log.warning("clinic database unavailable (%s); retry in %s s", error, retry)
                await asyncio.sleep(retry)
                retry = min(retry * 2, self.poll_seconds)

    async def _snapshot(self, conn) -> str:
        return (await (await conn.execute("select pg_current_snapshot()::text")).fetchone())[0]

    async def _wait(self, conn) -> None:
        """Until a notification or one poll period; then take whatever else is queued."""
        async with aclosing(conn.notifies(timeout=self.poll_seconds, stop_after=1)) as stream:
            async for _ in stream:
                pass
        await self._drain(conn, 0)

    async def _drain(self, conn, seconds: float) -> None:
        async with aclosing(conn.notifies(timeout=seconds)) as stream:
            async for _ in stream:
                pass

    async def _load_snapshot(self) -> str | None:
        if self.asset_state_store is None:
            return None
        return await self.asset_state_store.aget(SCHEDULE_CURSOR_KEY, default=None)

    async def _save_snapshot(self, snapshot: str) -> None:
        if self.asset_state_store is not None:
            await self.asset_state_store.aset(SCHEDULE_CURSOR_KEY, snapshot)
