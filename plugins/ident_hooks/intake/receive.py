"""One pushed request in the database: its raw body, and the lead or the reject it became.

Everything for one request happens in one transaction that the caller commits before
answering (``ConnectionPool.run``): the request row, the lead through the same normaliser
and store as pulled leads (``leads.store.store_leads``; unique per source and id, so a
resent request stays one lead), or a reject with its reason (``store_rejects``). Two copies
of one lead arriving at once (Tilda's retry racing the first attempt) are serialised by a
transaction lock on the lead's key, so the second sees the first's row.

What a request becomes is its kind's connector's to say (``PushSource`` in
``ident_hooks.leads.sources``): the Content-Type it takes, whether its body is a form or
JSON, its connection test and its field map. Every JSON body is read through
``json_body.read_json``, so what PostgreSQL could not keep is refused with a reason before
anything is stored. Should the database
still refuse a lead (a rule of the clinic's database that the normaliser does not know),
the lead's savepoint is rolled back and the request is kept as a 422 reject: a 503 would
make the sender resend what is refused every time.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from functools import cached_property
from typing import Any
from urllib.parse import parse_qsl

import psycopg

from ident_hooks.intake.json_body import UnreadableJson, read_json
from ident_hooks.leads import sources
from ident_hooks.leads.normalise import DoctorMatcher, Lead, Reject, RejectedRecord
from ident_hooks.leads.sources import FORM_BODY, SourceSettings
from ident_hooks.leads.store import store_leads, store_rejects
from ident_hooks.registry import LEAD_SOURCE_KINDS

_SHOWN_BODY_CHARS = 4000  # how much of an unreadable body a reject row keeps
_DOCTORS_TTL_SECONDS = 60.0
_RACES = (psycopg.errors.UniqueViolation, psycopg.errors.ExclusionViolation)


@dataclass(frozen=True)
class IntakeSource:
    """A configured push source with its secret (from its Airflow connection)."""

    name: str
    kind: str
    title: str
    secret: str = field(repr=False)

    @cached_property
    def connector(self) -> type[sources.PushSource]:
        """The class of its kind (``ident_hooks.registry``), which says how it is received."""
        return LEAD_SOURCE_KINDS[self.kind].connector_class()


@dataclass(frozen=True)
class Received:
    source: IntakeSource
    content_type: str | None
    body: bytes  # at most the size limit
    body_bytes: int  # what the sender sent (or declared)
    received_at: datetime
    too_large_limit: int | None = None  # set when the body was over this limit
    body_bytes_at_least: bool = False  # sent without a length: body_bytes is what was read


@dataclass(frozen=True)
class Answer:
    status: int
    outcome: str  # stored, repeated, test, rejected
    body: dict[str, Any]


class DoctorCache:
    """The clinic's doctors for matching, re-read at most once a minute."""

    def __init__(self) -> None:
        self._matcher: DoctorMatcher | None = None
        self._loaded = 0.0
        self._lock = threading.Lock()

    def matcher(self, conn: psycopg.Connection) -> DoctorMatcher:
        with self._lock:
            if self._matcher is None or time.monotonic() - self._loaded > _DOCTORS_TTL_SECONDS:
                rows = conn.execute("select doctor_id, full_name from clinic.doctors").fetchall()
                self._matcher = DoctorMatcher(rows)
                self._loaded = time.monotonic()
            return self._matcher


class _Refused(Exception):
    def __init__(self, status: int, reason: str, raw: Any) -> None:
        super().__init__(reason)
        self.status, self.reason, self.raw = status, reason, raw


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def _shown_body(body: bytes) -> dict[str, Any]:
    return {"body": body.decode("utf-8", "replace").replace("\x00", "")[:_SHOWN_BODY_CHARS]}


def _read_form(body: bytes) -> dict[str, str]:
    """The fields of a urlencoded body; a repeated field's values joined by ``, ``."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _Refused(400, "body is not UTF-8 text", _shown_body(body)) from None
    fields: dict[str, str] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        key = key.replace("\x00", "")
        value = value.replace("\x00", "")
        fields[key] = f"{fields[key]}, {value}" if key in fields else value
    return fields


def _read_json(body: bytes) -> Any:
    try:
        return read_json(body)
    except UnreadableJson as error:
        raise _Refused(400, f"body is not JSON: {error}", _shown_body(body)) from None


def _lead(req: Received, settings: SourceSettings, matcher: DoctorMatcher | None) -> Lead | None:
    """The lead a request holds as its kind reads it; None for the service's connection test."""
    connector = req.source.connector
    refusal = connector.content_type_refusal
    if refusal is not None and _media_type(req.content_type) != connector.body_format:
        raise _Refused(415, refusal, _shown_body(req.body))
    body = _read_form(req.body) if connector.body_format == FORM_BODY else _read_json(req.body)
    if connector.is_connection_test(body):
        return None
    try:
        return connector.parse(
            body, settings=settings, matcher=matcher, received_at=req.received_at
        )
    except RejectedRecord as rejected:
        raise _Refused(422, rejected.reason, body) from None


def _record(
    conn: psycopg.Connection,
    req: Received,
    outcome: str,
    status: int,
    *,
    external_id: str | None = None,
    reason: str | None = None,
    lead_id: int | None = None,
) -> None:
    conn.execute(
        "insert into integration.intake_requests (source, kind, received_at, content_type,"
        " body, body_bytes, external_id, outcome, http_status, reason, lead_id)"
        " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            req.source.name,
            req.source.kind,
            req.received_at,
            req.content_type,
            req.body,
            req.body_bytes,
            external_id,
            outcome,
            status,
            reason,
            lead_id,
        ),
    )


def receive(
    conn: psycopg.Connection, req: Received, *, timezone: tzinfo, doctors: DoctorCache
) -> Answer:
    """Keep the request and what it became, in the caller's transaction."""
    settings = SourceSettings(source=req.source.name, timezone=timezone)
    try:
        if req.too_large_limit is not None:
            raw = {"body_bytes": req.body_bytes, **_shown_body(req.body)}
            raise _Refused(413, _too_large(req), raw)
        matcher = doctors.matcher(conn) if req.source.connector.matches_doctors else None
        lead = _lead(req, settings, matcher)
        if lead is None:
            _record(conn, req, "test", 200)
            return Answer(200, "test", {"status": "ok"})
        return _store(conn, req, lead)
    except _Refused as refused:
        external_id = req.source.connector.key_of(refused.raw)
        store_rejects(conn, [Reject(req.source.name, refused.raw, refused.reason, external_id)])
        _record(conn, req, "rejected", refused.status, reason=refused.reason)
        return Answer(refused.status, "rejected", {"error": refused.reason})


def _too_large(req: Received) -> str:
    size = f"at least {req.body_bytes}" if req.body_bytes_at_least else str(req.body_bytes)
    return f"body of {size} bytes is over the limit of {req.too_large_limit}"


def _store(conn: psycopg.Connection, req: Received, lead: Lead) -> Answer:
    # Serialise copies of one lead (a retry racing its first attempt) until commit.
    conn.execute(
        "select pg_advisory_xact_lock(hashtextextended(%s, 0))",
        (f"intake\x1f{lead.source}\x1f{lead.external_id}",),
    )
    try:
        with conn.transaction():  # a savepoint: a refused lead leaves the request to record
            result = store_leads(conn, [lead])
    except psycopg.Error as error:
        if not _refused_by_database(error):
            raise
        reason = f"the database refused the lead: {error.diag.message_primary or error}"
        raise _Refused(422, reason, lead.raw) from None
    outcome = "stored" if result.inserted else "repeated"
    (lead_id,) = conn.execute(
        "select lead_id from integration.leads where source = %s and external_id = %s",
        (lead.source, lead.external_id),
    ).fetchone()
    _record(conn, req, outcome, 200, external_id=lead.external_id, lead_id=lead_id)
    return Answer(200, outcome, {"status": outcome, "id": lead.external_id})


def _refused_by_database(error: psycopg.Error) -> bool:
    """The database refused what the lead holds, and would refuse it again (a 4xx), as
    opposed to being away, busy or in a race that a retry gets past (503)."""
    if isinstance(error, psycopg.IntegrityError):
        return not isinstance(error, _RACES)
    # Class 22 (data exception; also what psycopg refuses to send) and 54 (a limit, such
    # as the size of an index entry).
    return isinstance(error, psycopg.DataError) or (error.sqlstate or "").startswith("54")
