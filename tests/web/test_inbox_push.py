"""Pushed changes: the trigger's NOTIFY (migration 0012) and the inbox's event stream, over
real HTTP to a real api-server, with leads committed through ``store_leads``."""

from __future__ import annotations

import json
import queue
import threading
import time
from dataclasses import dataclass

import psycopg
import pytest
import requests

from ident_dev.airflow_stack import wait_for

EVENTS = "/inbox/api/events"
CHANNEL = "integration_leads"
MARKER_CHANNEL = "test_inbox_push_marker"  # the test's own: nothing else listens there
LISTEN_CHANGE_SECONDS = 30


@dataclass(frozen=True)
class Event:
    name: str
    data: str
    at: float  # time.time() when the client read it


class EventReader:
    """An event-stream client in a thread: parses events into a queue as they arrive."""

    def __init__(self, response: requests.Response) -> None:
        self.response = response
        self.events: queue.Queue[Event | None] = queue.Queue()
        self.retry: int | None = None
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        name, data = "message", []
        try:
            for line in self.response.iter_lines(chunk_size=None, decode_unicode=True):
                if line == "":
                    if data:
                        self.events.put(Event(name, "\n".join(data), time.time()))
                    name, data = "message", []
                elif line.startswith("event: "):
                    name = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    data.append(line.removeprefix("data: "))
                elif line.startswith("retry: "):
                    self.retry = int(line.removeprefix("retry: "))
        except Exception:  # noqa: BLE001 - close() pulls the connection from under the read
            pass
        finally:
            self.events.put(None)  # the stream ended

    def next(self, name: str, timeout: float) -> Event:
        """The next event called ``name`` (others are skipped) within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {name!r} event within {timeout} s"
            try:
                event = self.events.get(timeout=remaining)
            except queue.Empty:
                continue
            assert event is not None, f"the stream ended before a {name!r} event"
            if event.name == name:
                return event

    def close(self) -> None:
        self.response.close()
        self._thread.join(timeout=5)


def _open_stream(session: requests.Session, server) -> EventReader:
    response = session.get(server.url(EVENTS), stream=True, timeout=(10, 60))
    assert response.status_code == 200, response.text
    return EventReader(response)


def _listening_backends(clinic_db_url: str) -> int:
    """Connections of the api-server that sit in LISTEN on the channel."""
    # A connection of its own: a transaction sees pg_stat_activity as of its first look.
    with psycopg.connect(clinic_db_url, autocommit=True) as conn:
        return conn.execute(
            "select count(*) from pg_stat_activity"
            " where datname = current_database() and query = %s",
            (f"listen {CHANNEL}",),
        ).fetchone()[0]


def _wait_for_listening(clinic_db_url: str, count: int) -> None:
    wait_for(
        f"{count} connection(s) listening on {CHANNEL}",
        lambda: _listening_backends(clinic_db_url) == count,
        deadline=time.monotonic() + LISTEN_CHANGE_SECONDS,
        poll=0.2,
    )


def _notified_until_now(listener: psycopg.Connection, clinic_db_url: str) -> list[dict]:
    """The payloads notified on CHANNEL to ``listener`` by everything committed until now.

    A marker is then notified on a channel of the test's own; PostgreSQL delivers the
    notifications of different transactions in the order they committed, so what comes
    before the marker is all there is, however late a busy machine delivers it.
    """
    with psycopg.connect(clinic_db_url, autocommit=True) as sender:
        sender.execute("select pg_notify(%s, '')", (MARKER_CHANNEL,))
    payloads: list[dict] = []

    def marker_arrived() -> bool:
        for notify in listener.notifies(timeout=0.2, stop_after=1):
            if notify.channel == MARKER_CHANNEL:
                return True
            payloads.append(json.loads(notify.payload))
        return False

    wait_for("the marker notification", marker_arrived, deadline=time.monotonic() + 30, poll=0)
    return payloads


def test_storing_and_handling_leads_notifies_without_personal_data(
    clinic_db_url, inbox_conn, commit_lead
):
    with psycopg.connect(clinic_db_url, autocommit=True) as listener:
        listener.execute(f"listen {CHANNEL}")
        listener.execute(f"listen {MARKER_CHANNEL}")

        def received() -> list[dict]:
            return _notified_until_now(listener, clinic_db_url)

        lead_id, _ = commit_lead("Новикова Дарья", "8 (926) 700-00-01")
        assert received() == [{"op": "insert", "lead_id": lead_id}]

        inbox_conn.execute(
            "update integration.leads set acknowledged_at = now() where lead_id = %s", (lead_id,)
        )
        inbox_conn.commit()
        assert received() == []  # the source's bookkeeping is not something the inbox shows

        inbox_conn.execute(
            "update integration.leads set status = 'in_progress', taken_by = 'anna',"
            " taken_at = now() where lead_id = %s",
            (lead_id,),
        )
        inbox_conn.rollback()
        assert received() == []  # nothing happened

        inbox_conn.execute(
            "update integration.leads set status = 'done', taken_by = 'anna', taken_at = now(),"
            " closed_by = 'anna', closed_at = now() where lead_id = %s",
            (lead_id,),
        )
        inbox_conn.commit()
        assert received() == [{"op": "update", "lead_id": lead_id}]  # it leaves the list
        inbox_conn.execute(
            "update integration.leads set comment = 'x' where lead_id = %s", (lead_id,)
        )
        inbox_conn.commit()
        assert received() == []  # a closed lead is not shown either way


def test_a_committed_lead_reaches_an_open_stream_within_a_second_or_two(
    airflow_web, inbox_conn, commit_lead
):
    reader = _open_stream(airflow_web.bearer_session("anna"), airflow_web)
    try:
        assert reader.response.headers["content-type"].startswith("text/event-stream")
        assert reader.response.headers["x-accel-buffering"] == "no"
        assert reader.response.headers["cache-control"] == "no-store"
        reader.next("ready", timeout=10)  # the server LISTENs from here on
        assert reader.retry == 2000
        latencies = []
        for number in range(3):
            lead_id, committed_at = commit_lead("Секретная Пациентка", f"+7 916 000-11-2{number}")
            event = reader.next("leads", timeout=5)
            latencies.append(event.at - committed_at)
            assert json.loads(event.data) == {"op": "insert", "lead_id": lead_id}
            assert "Секретная" not in event.data and "916" not in event.data
        print(f"commit -> event: {', '.join(f'{s * 1000:.0f} ms' for s in latencies)}")
        assert max(latencies) <= 2
    finally:
        reader.close()


def test_pages_share_one_listen_connection_which_closes_after_the_last(
    airflow_web, clinic_db_url, inbox_conn, commit_lead
):
    _wait_for_listening(clinic_db_url, 0)  # streams of earlier tests are gone
    readers = [_open_stream(airflow_web.bearer_session(u), airflow_web) for u in ("admin", "anna")]
    readers.append(_open_stream(airflow_web.cookie_session("admin"), airflow_web))
    try:
        for reader in readers:
            reader.next("ready", timeout=10)
        assert _listening_backends(clinic_db_url) == 1
        lead_id, _ = commit_lead("Орлова Анна", "+7 903 111-22-33")
        for reader in readers:
            assert json.loads(reader.next("leads", timeout=5).data)["lead_id"] == lead_id
    finally:
        for reader in readers:
            reader.close()
    _wait_for_listening(clinic_db_url, 0)


@pytest.mark.parametrize("login", ["none", "forged"])
def test_the_stream_needs_a_login(airflow_web, login):
    session = requests.Session()
    if login == "forged":
        session.cookies.set("_token", "not-a-jwt", domain="127.0.0.1", path="/")
    response = session.get(airflow_web.url(EVENTS), timeout=30)
    assert response.status_code in (401, 403)
    assert not response.headers["content-type"].startswith("text/event-stream")
