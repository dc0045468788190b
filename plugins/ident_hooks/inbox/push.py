"""Pushing "the leads changed" to open inbox pages: one LISTEN per process, many streams.

Migration 0012 makes every statement that changes the open leads send a NOTIFY on
:data:`CHANNEL` (``{"op": "insert", "lead_id": 123}``: no personal data). :class:`LeadsFeed`
keeps one clinic-database connection per api-server process that LISTENs on it, in a
thread of its own (``psycopg.Connection.notifies``), and hands each notification to every
open page's server-sent-event stream (:func:`event_stream`). The connection is opened when
the first page subscribes and closed when the last one leaves.

Should the connection fail, every stream ends: the pages' ``EventSource`` reports an error,
the pages poll as before, and the next stream opens a new connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable
from types import FrameType

import psycopg

log = logging.getLogger(__name__)

CHANNEL = "integration_leads"
HEARTBEAT_SECONDS = 15  # an event this often keeps proxies from closing an idle stream
STREAM_MAX_SECONDS = 5 * 60  # then the browser reconnects, and the login is checked again
RETRY_MILLISECONDS = 2000  # how soon the browser reconnects after a stream ends
READY_TIMEOUT_SECONDS = 10  # a page waits this long at most for the LISTEN to be in place
_POLL_STOP_SECONDS = 1.0  # how often the listening thread looks whether it should stop


class FeedUnavailable(RuntimeError):
    """The LISTEN connection could not be opened in time."""


class Subscription:
    """One open page's mailbox: the latest payload not sent yet, or that the feed ended."""

    def __init__(self) -> None:
        self.wake = asyncio.Event()
        self.payload: str | None = None
        self.closed = False

    def deliver(self, payload: str) -> None:
        self.payload = payload  # a page that lags behind needs only one refresh
        self.wake.set()

    def close(self) -> None:
        self.closed = True
        self.wake.set()


class _Listener(threading.Thread):
    """LISTENs on one connection until told to stop or the connection fails."""

    def __init__(self, feed: LeadsFeed, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(name="ident-inbox-listen", daemon=True)
        self.feed = feed
        self.loop = loop
        self.ready = asyncio.Event()  # set on the loop once LISTEN is in place
        self.stopping = threading.Event()

    def _on_loop(self, callback: Callable[..., None], *args: object) -> None:
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(callback, *args)

    def run(self) -> None:
        try:
            with self.feed.connect() as conn:
                conn.autocommit = True
                conn.execute(f"listen {CHANNEL}")
                self._on_loop(self.ready.set)
                while not self.stopping.is_set():
                    for notify in conn.notifies(timeout=_POLL_STOP_SECONDS):
                        self._on_loop(self.feed.publish, notify.payload)
        except (psycopg.Error, OSError) as error:
            if not self.stopping.is_set():
                log.warning("inbox push: the LISTEN connection failed: %s", error)
        finally:
            self._on_loop(self.feed.listener_ended, self)


class LeadsFeed:
    """Fans out the clinic database's lead notifications to the open pages of this process.

    All methods but the listening thread's run on the event loop, so no locks are needed.
    ``connect`` opens a clinic-database connection (``ident_hooks.db.connect``).
    """

    def __init__(self, connect: Callable[[], psycopg.Connection]) -> None:
        self.connect = connect
        self._subscriptions: set[Subscription] = set()
        self._listener: _Listener | None = None
        self._shutdown_hook_installed = False

    @property
    def listening(self) -> bool:
        return self._listener is not None and self._listener.ready.is_set()

    async def subscribe(self) -> Subscription:
        """A mailbox for one page, once the LISTEN is in place (so nothing after it is lost)."""
        loop = asyncio.get_running_loop()
        self._install_shutdown_hook(loop)
        if self._listener is None:
            self._listener = _Listener(self, loop)
            self._listener.start()
        listener = self._listener
        subscription = Subscription()
        self._subscriptions.add(subscription)
        try:
            await asyncio.wait_for(listener.ready.wait(), READY_TIMEOUT_SECONDS)
        except TimeoutError:
            self.unsubscribe(subscription)
            raise FeedUnavailable("the clinic database did not accept LISTEN in time") from None
        if subscription.closed:  # the connection failed while this page waited
            self.unsubscribe(subscription)
            raise FeedUnavailable("the LISTEN connection failed")
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)
        if not self._subscriptions and self._listener is not None:
            self._listener.stopping.set()  # the thread closes the connection within a second
            self._listener = None

    def publish(self, payload: str) -> None:
        for subscription in self._subscriptions:
            subscription.deliver(payload)

    def listener_ended(self, listener: _Listener) -> None:
        """The listening thread is gone: if it was the current one, end every stream."""
        listener.ready.set()  # wakes pages still waiting for it; they find their mailbox closed
        if listener is not self._listener:
            return  # an old listener, stopped on purpose
        self._listener = None
        self.close_all()

    def close_all(self) -> None:
        """End every stream (the pages reconnect or poll) and stop listening."""
        for subscription in list(self._subscriptions):
            subscription.close()
        self._subscriptions.clear()
        if self._listener is not None:
            self._listener.stopping.set()
            self._listener = None

    def _install_shutdown_hook(self, loop: asyncio.AbstractEventLoop) -> None:
        """End the streams when the api-server is told to stop.

        A server shutting down gracefully waits for open responses to finish, and an event
        stream never does by itself. Starlette runs no lifespan events for a mounted app, so
        the streams learn of the shutdown from the signal itself: our handler ends them and
        then calls the server's own handler.
        """
        if (
            self._shutdown_hook_installed
            or threading.current_thread() is not threading.main_thread()
        ):
            return
        self._shutdown_hook_installed = True
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(signum)

            def on_signal(
                received: int, frame: FrameType | None, previous: object = previous
            ) -> None:
                if not loop.is_closed():
                    loop.call_soon_threadsafe(self.close_all)
                if callable(previous):
                    previous(received, frame)
                elif previous == signal.SIG_DFL:  # no server handler: do what it would
                    signal.signal(received, signal.SIG_DFL)
                    signal.raise_signal(received)

            signal.signal(signum, on_signal)


def _event(name: str, data: dict[str, object] | str) -> str:
    text = data if isinstance(data, str) else json.dumps(data)
    return f"event: {name}\ndata: {text}\n\n"


async def event_stream(feed: LeadsFeed, subscription: Subscription) -> AsyncIterator[str]:
    """The text/event-stream body for one page.

    ``ready`` first (the page then fetches the list once: it may have missed changes while
    it was not connected), ``leads`` with the notification's payload whenever the open leads
    change, ``heartbeat`` every :data:`HEARTBEAT_SECONDS`, and the end after
    :data:`STREAM_MAX_SECONDS` or when the feed closes.
    """
    try:
        yield f"retry: {RETRY_MILLISECONDS}\n" + _event("ready", {"channel": CHANNEL})
        ends_at = time.monotonic() + STREAM_MAX_SECONDS
        while True:
            remaining = ends_at - time.monotonic()
            if remaining <= 0:
                return
            try:
                await asyncio.wait_for(subscription.wake.wait(), min(HEARTBEAT_SECONDS, remaining))
            except TimeoutError:
                # An event, not a comment: the page sees it and knows the stream is alive.
                yield _event("heartbeat", {})
                continue
            subscription.wake.clear()
            if subscription.closed:
                return
            payload, subscription.payload = subscription.payload, None
            if payload is not None:
                yield _event("leads", payload.replace("\n", " "))
    finally:
        feed.unsubscribe(subscription)
