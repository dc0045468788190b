"""The watcher of the ``leads`` Asset: NewLeadsTrigger on the session's clinic database.

The trigger's ``run()`` is driven directly on an asyncio loop, as the triggerer drives it,
against the real PostgreSQL with migration 0012's notifications. Leads are written the way
the intake service writes them (``leads.store.store_leads``, then commit).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from ident_hooks.leads.normalise import Lead
from ident_hooks.leads.store import mark_acknowledged, store_leads
from ident_hooks.triggers import (
    APPLICATION_NAME,
    CURSOR_KEY,
    ClinicScheduleTrigger,
    NewLeadsTrigger,
)

DAGS_FOLDER = Path(__file__).resolve().parents[1] / "dags"
SOURCE = "site_push"
DOCTOR = "doc-1"
ASKED_FOR = datetime(2026, 12, 10, 9, 0, tzinfo=UTC)
QUIET = 1.5  # seconds in which nothing may fire
# How long a trigger may take to connect and look once: a deadline, not a measurement.
STARTED_WITHIN = 30.0


@pytest.fixture
def db(clinic_conn: psycopg.Connection, clinic_db_url: str, point_ident_db) -> psycopg.Connection:
    """The clinic database with one doctor and no leads; ``ident_db`` points at it."""
    point_ident_db(clinic_db_url)
    clinic_conn.execute("truncate integration.leads cascade")
    clinic_conn.execute(
        "insert into clinic.doctors (doctor_id, full_name) values (%s, %s)",
        (DOCTOR, "Петров Геннадий Андреевич"),
    )
    clinic_conn.commit()
    return clinic_conn


def lead(external_id: str, *, holds_time: bool = True) -> Lead:
    return Lead(
        source=SOURCE,
        external_id=external_id,
        created_at=ASKED_FOR - timedelta(days=1),
        name="Анна",
        phone_raw="+7 916 123-45-67",
        doctor_id=DOCTOR if holds_time else None,
        requested_start=ASKED_FOR if holds_time else None,
        raw={"id": external_id},
    )


def lead_id(conn: psycopg.Connection, external_id: str) -> int:
    row = conn.execute(
        "select lead_id from integration.leads where source = %s and external_id = %s",
        (SOURCE, external_id),
    ).fetchone()
    return row[0]


def store(conn: psycopg.Connection, *leads: Lead, ack_required: bool = False) -> None:
    store_leads(conn, leads, ack_required=ack_required)
    conn.commit()


def store_without_notification(conn: psycopg.Connection, *leads: Lead) -> None:
    """Commit leads with 0012's insert trigger off: a notification that never comes."""
    conn.execute("alter table integration.leads disable trigger leads_notify_insert")
    store_leads(conn, leads)
    conn.execute("alter table integration.leads enable trigger leads_notify_insert")
    conn.commit()


class MemoryState:
    """Stands in for the Asset state store the triggerer gives a watcher (aget/aset)."""

    def __init__(self) -> None:
        self.values: dict[str, object] = {}

    async def aget(self, key: str, default=None):
        return self.values.get(key, default)

    async def aset(self, key: str, value) -> None:
        self.values[key] = value


class Watching:
    """Runs a trigger on the current loop and queues the events it yields."""

    def __init__(self, trigger: NewLeadsTrigger) -> None:
        self.trigger = trigger
        self.events: asyncio.Queue = asyncio.Queue()

    async def __aenter__(self) -> Watching:
        self.task = asyncio.create_task(self._pump())
        return self

    async def _pump(self) -> None:
        async for event in self.trigger.run():
            await self.events.put(event.payload)

    async def next_event(self, within: float) -> dict:
        return await asyncio.wait_for(self.events.get(), within)

    async def assert_quiet(self, seconds: float = QUIET) -> None:
        with pytest.raises(TimeoutError):
            await self.next_event(seconds)

    async def __aexit__(self, *exc) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def waiting(
    conn: psycopg.Connection,
    watchers: int = 1,
    *,
    application_name: str = APPLICATION_NAME,
    last_query: str = "as late",
    or_fired: Watching | None = None,
) -> None:
    """Until ``watchers`` triggers have LISTENed, looked once (their connection is idle
    after a query containing ``last_query``) and sit waiting, or until ``or_fired`` has
    an event queued (a trigger that fires at once is busy with it instead of idle).

    The trigger runs on this loop, so this waits with ``asyncio.sleep``, not
    ``airflow_stack.wait_for``."""
    deadline = time.monotonic() + STARTED_WITHIN
    while time.monotonic() < deadline:
        (count,) = conn.execute(
            "select count(*) from pg_stat_activity where application_name = %s"
            " and state = 'idle' and query like %s",
            (application_name, f"%{last_query}%"),
        ).fetchone()
        conn.rollback()
        if count >= watchers or (or_fired is not None and not or_fired.events.empty()):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the trigger never started waiting for notifications")


def test_a_committed_lead_fires_within_two_seconds(db):
    async def scenario():
        # No poll within the test: only the notification can explain the event.
        async with Watching(NewLeadsTrigger(poll_seconds=3600)) as watching:
            await waiting(db)
            store(db, lead("a-1"))
            assert await watching.next_event(2.0) == {"op": "insert", "lead_id": lead_id(db, "a-1")}
            store(db, lead("a-2"), lead("a-3"))  # one statement, one event
            assert await watching.next_event(2.0) == {"op": "insert", "lead_id": lead_id(db, "a-3")}
            await watching.assert_quiet()

    asyncio.run(scenario())


def test_leads_that_hold_no_time_and_updates_fire_nothing(db):
    async def scenario():
        async with Watching(NewLeadsTrigger(poll_seconds=3600)) as watching:
            await waiting(db)
            store(db, lead("b-1"), ack_required=True)
            assert (await watching.next_event(2.0))["lead_id"] == lead_id(db, "b-1")

            store(db, lead("b-2", holds_time=False))  # open, but asks for no doctor's time
            mark_acknowledged(db, SOURCE, "b-1")  # bookkeeping only: no notification
            db.commit()
            db.execute(  # taken by the front desk: an update, not a new lead
                "update integration.leads set status = 'in_progress', taken_by = 'admin',"
                " taken_at = now() where external_id = 'b-1'"
            )
            db.commit()
            db.execute(  # a closed lead: not open, holds nothing
                "insert into integration.leads (source, external_id, created_at, doctor_id,"
                " requested_start, raw, status) values (%s, 'b-3', %s, %s, %s, '{}', 'done')",
                (SOURCE, ASKED_FOR, DOCTOR, ASKED_FOR),
            )
            db.commit()
            await watching.assert_quiet()

            store(db, lead("b-4"))  # the trigger is alive and its cursor is right
            assert (await watching.next_event(2.0))["lead_id"] == lead_id(db, "b-4")

    asyncio.run(scenario())


def test_the_poll_finds_a_lead_whose_notification_was_lost(db):
    async def scenario():
        async with (
            Watching(NewLeadsTrigger(poll_seconds=1.0)) as polling,
            Watching(NewLeadsTrigger(poll_seconds=3600)) as deaf,
        ):
            await waiting(db, watchers=2)
            store_without_notification(db, lead("c-1"))
            assert await polling.next_event(3.0) == {"op": "insert", "lead_id": lead_id(db, "c-1")}
            assert deaf.events.empty()  # no notification came: only the poll saw it

    asyncio.run(scenario())


def test_leads_committed_while_the_trigger_was_down_fire_at_its_start(db):
    state = MemoryState()

    async def run_once(expect: str | None) -> None:
        trigger = NewLeadsTrigger(poll_seconds=3600)
        trigger.asset_state_store = state
        async with Watching(trigger) as watching:
            if expect is None:
                await waiting(db)
                await watching.assert_quiet()
            else:
                event = await watching.next_event(STARTED_WITHIN)
                assert event["lead_id"] == lead_id(db, expect)

    store(db, lead("d-1"), lead("d-2", holds_time=False))
    asyncio.run(run_once("d-1"))  # no cursor yet: open leads count as new
    assert state.values == {CURSOR_KEY: lead_id(db, "d-1")}
    store(db, lead("d-3"))  # nobody listening
    asyncio.run(run_once("d-3"))
    assert state.values == {CURSOR_KEY: lead_id(db, "d-3")}
    asyncio.run(run_once(None))  # nothing new since: the cursor was kept


def test_a_lead_committed_after_a_newer_one_still_fires(db, clinic_db_url):
    async def scenario():
        async with Watching(NewLeadsTrigger(poll_seconds=3600)) as watching:
            await waiting(db)
            with psycopg.connect(clinic_db_url) as slow:
                store_leads(slow, [lead("e-1")])  # takes the lower id, commits last
                store(db, lead("e-2"))
                assert (await watching.next_event(2.0))["lead_id"] == lead_id(db, "e-2")
                slow.commit()
            assert (await watching.next_event(2.0))["lead_id"] == lead_id(db, "e-1")
            await watching.assert_quiet()

    asyncio.run(scenario())


def test_it_reconnects_after_losing_the_database_connection(db):
    async def scenario():
        async with Watching(NewLeadsTrigger(poll_seconds=2.0)) as watching:
            await waiting(db)
            db.execute(
                "select pg_terminate_backend(pid) from pg_stat_activity"
                " where application_name = %s",
                (APPLICATION_NAME,),
            )
            db.commit()
            store(db, lead("f-1"))
            assert (await watching.next_event(5.0))["lead_id"] == lead_id(db, "f-1")

    asyncio.run(scenario())


def test_serialize_round_trips():
    from airflow.serialization.encoders import encode_trigger
    from airflow.triggers.base import BaseEventTrigger

    trigger = NewLeadsTrigger(conn_id="clinic_db", poll_seconds=5.0)
    classpath, kwargs = trigger.serialize()
    assert classpath == "ident_hooks.triggers.NewLeadsTrigger"
    assert kwargs == {"conn_id": "clinic_db", "poll_seconds": 5.0}
    module, name = classpath.rsplit(".", 1)
    again = getattr(importlib.import_module(module), name)(**kwargs)
    assert again.serialize() == (classpath, kwargs)
    assert BaseEventTrigger.hash(classpath, kwargs) == BaseEventTrigger.hash(*again.serialize())
    assert encode_trigger(trigger)["classpath"] == classpath
    with pytest.raises(ValueError, match="poll_seconds"):
        NewLeadsTrigger(poll_seconds=0)


def test_dags_parse_and_publishing_watches_the_leads_and_the_schedule_assets():
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization

    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    assert bag.import_errors == {}
    publish = [d for d in bag.dags.values() if d.dag_id.startswith("publish_schedule_")]
    pulls = [d for d in bag.dags.values() if d.dag_id.startswith("pull_leads_")]
    assert publish and pulls
    for dag in publish:
        # Any one of them starts a run (AssetAny), beside the timer.
        condition = dag.timetable.asset_condition
        assert type(condition).__name__ == "AssetAny"
        schedule, leads = condition.objects
        assert (leads.name, leads.uri) == ("leads", "ident://integration/leads")
        assert (schedule.name, schedule.uri) == ("clinic_schedule", "ident://clinic/schedule")
        (watcher,) = leads.watchers
        assert watcher.trigger.serialize() == NewLeadsTrigger().serialize()
        (watcher,) = schedule.watchers
        assert watcher.trigger.serialize() == ClinicScheduleTrigger().serialize()
        # What the dag-processor stores and the scheduler hands to the triggerer.
        stored = DagSerialization.to_dict(dag)["dag"]["timetable"]
        assert "ident_hooks.triggers.NewLeadsTrigger" in str(stored)
        assert "ident_hooks.triggers.ClinicScheduleTrigger" in str(stored)
    for dag in pulls:
        outlets = [o for t in dag.tasks for o in t.outlets]
        assert [(o.name, len(o.watchers)) for o in outlets] == [("leads", 1)]
