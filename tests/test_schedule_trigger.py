"""The watcher of the ``clinic_schedule`` Asset: ClinicScheduleTrigger on the real database.

Driven on an asyncio loop as the triggerer drives it; changes are written with plain SQL,
as a practice-management system writes them.
"""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest

from ident_hooks.triggers import (
    SCHEDULE_APPLICATION_NAME,
    SCHEDULE_CURSOR_KEY,
    ClinicScheduleTrigger,
)
from tests.test_triggers import QUIET, MemoryState, Watching, waiting


@pytest.fixture
def db(clinic_conn: psycopg.Connection, clinic_db_url: str, point_ident_db) -> psycopg.Connection:
    point_ident_db(clinic_db_url)
    clinic_conn.execute(
        "insert into clinic.branches (branch_id, name) values ('msk', 'Москва');"
        "insert into clinic.doctors (doctor_id, full_name) values ('d1', 'Иванов')"
    )
    clinic_conn.commit()
    return clinic_conn


def book(conn: psycopg.Connection, appointment_id: str, hour: int = 9) -> None:
    conn.execute(
        "insert into clinic.appointments (appointment_id, doctor_id, branch_id, starts_at, ends_at)"
        " values (%s, 'd1', 'msk', %s::timestamptz, %s::timestamptz)",
        (appointment_id, f"2026-12-10 {hour:02d}:00Z", f"2026-12-10 {hour:02d}:30Z"),
    )
    conn.commit()


def waiting_to_hear(conn: psycopg.Connection, or_fired: Watching | None = None):
    """Until the trigger has LISTENed, looked once and sits waiting for a notification."""
    return waiting(
        conn,
        application_name=SCHEDULE_APPLICATION_NAME,
        last_query="select exists",
        or_fired=or_fired,
    )


def cursor_now(conn: psycopg.Connection) -> MemoryState:
    """A state store whose cursor is the database's current snapshot."""
    state = MemoryState()
    (state.values[SCHEDULE_CURSOR_KEY],) = conn.execute(
        "select pg_current_snapshot()::text"
    ).fetchone()
    conn.commit()
    return state


def watcher(state: MemoryState, **options) -> ClinicScheduleTrigger:
    trigger = ClinicScheduleTrigger(**{"poll_seconds": 3600, "settle_seconds": 0.3, **options})
    trigger.asset_state_store = state
    return trigger


def test_a_committed_appointment_fires_and_an_unchanged_rewrite_does_not(db):
    state = cursor_now(db)

    async def scenario():
        async with Watching(watcher(state)) as watching:
            await waiting_to_hear(db)
            started = time.monotonic()
            book(db, "a1")
            assert await watching.next_event(2.0) == {"changed": "clinic_schedule"}
            assert time.monotonic() - started < 2.0
            db.execute("update clinic.appointments set starts_at = starts_at")  # nothing changed
            db.commit()
            await watching.assert_quiet()

    asyncio.run(scenario())


def test_a_burst_of_a_hundred_statements_is_one_event(db):
    state = cursor_now(db)

    async def scenario():
        async with Watching(watcher(state, settle_seconds=1.0)) as watching:
            await waiting_to_hear(db)
            for n in range(100):  # a hundred commits, as a sync writing one by one
                db.execute(
                    "insert into clinic.appointments"
                    " (appointment_id, doctor_id, branch_id, starts_at, ends_at)"
                    " values (%s, 'd1', 'msk', %s, %s)",
                    (f"b{n}", "2026-12-11 00:00Z", "2026-12-11 00:05Z"),
                )
                db.commit()
            assert await watching.next_event(3.0) == {"changed": "clinic_schedule"}
            await watching.assert_quiet()

    asyncio.run(scenario())


def test_a_change_while_the_triggerer_was_down_fires_on_start_and_nothing_else_does(db):
    state = MemoryState()

    async def run_once() -> list:
        async with Watching(watcher(state)) as watching:
            # Started (cursor taken, the log checked once) or fired, however long the
            # connection took; then whatever it fires until QUIET seconds pass without an event.
            await waiting_to_hear(db, or_fired=watching)
            events = []
            try:
                while True:
                    events.append(await watching.next_event(QUIET))
            except TimeoutError:
                return events

    assert asyncio.run(run_once()) == []  # the first start ever: the cursor taken
    assert SCHEDULE_CURSOR_KEY in state.values
    assert asyncio.run(run_once()) == []  # restarted, nothing changed meanwhile
    book(db, "down-1")  # while no triggerer runs
    assert asyncio.run(run_once()) == [{"changed": "clinic_schedule"}]


def test_a_missed_notification_is_found_by_the_poll(db):
    state = cursor_now(db)

    async def scenario():
        async with Watching(watcher(state, poll_seconds=1.0)) as watching:
            await waiting_to_hear(db)
            # A row in the log without its NOTIFY (as if sent while reconnecting).
            db.execute(
                "insert into integration.schedule_changes (source_table, doctor_id)"
                " values ('appointments', 'd1')"
            )
            db.commit()
            assert await watching.next_event(3.0) == {"changed": "clinic_schedule"}

    asyncio.run(scenario())
