"""The intake service's ASGI app: one ``POST`` route per push kind of the registry,
``GET /GetTickets`` (IDENT) and ``GET /health``.

Each push kind's connector class (``PushSource`` in ``ident_hooks.leads.sources``) declares
its route: ``POST /tilda/{source}/{secret}``, ``POST /uis/{source}/{secret}`` (UIS event
notifications) — services that can be given only an address, so the secret is its last
segment — and ``POST /webhook/{source}`` with ``Authorization: Bearer <secret>``.

Order of checks for a push: the source must be configured for that kind (else 404), the
secret must match (compared in constant time; else 401/403, nothing kept), the source's
token bucket must have a token (else 429 with ``Retry-After``), then the body is read up to
the size limit and handed to ``receive`` in the database. The answer is sent only after
the commit, and within ``deadline_seconds`` (Tilda waits 5 s): a database that is away or
slow is 503, so the sender retries and the retry is deduplicated by the lead's id.

Logs name the source, the kind, the answer and the outcome — never a body field, a secret
or a URL path (Tilda's and UIS's hold the secret; run uvicorn without its access log).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from ident_hooks.intake import tickets
from ident_hooks.intake.guard import (
    BodyTooLarge,
    TokenBucket,
    bearer_token,
    read_body,
    secret_matches,
)
from ident_hooks.intake.pool import DatabaseAway, clinic_pool, in_transaction
from ident_hooks.intake.receive import (
    Answer,
    DoctorCache,
    IntakeSource,
    Received,
    receive,
)
from ident_hooks.leads import sources
from ident_hooks.registry import LEAD_SOURCE_KINDS

log = logging.getLogger("ident_hooks.intake")
TICKETS_KEY_HEADER = "IDENT-Integration-Key"


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class IntakeSettings:
    """What the app needs; ``ident_hooks.intake.settings`` builds it from Airflow."""

    sources: Mapping[str, IntakeSource]
    connect: Callable[[], psycopg.Connection]
    timezone: tzinfo
    tickets_key: str | None = field(default=None, repr=False)  # None: no GetTickets
    max_body_bytes: int = 64 * 1024
    rate_per_second: float = 5.0
    burst: int = 60
    deadline_seconds: float = 4.0
    pool_size: int = 8  # connections to the clinic database at most
    clock: Callable[[], datetime] = _utc_now


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


def create_app(settings: IntakeSettings) -> FastAPI:
    pool = clinic_pool(settings.connect, settings.pool_size)
    doctors = DoctorCache()
    buckets = {
        name: TokenBucket(settings.rate_per_second, settings.burst) for name in settings.sources
    }
    tickets_bucket = TokenBucket(settings.rate_per_second, settings.burst)
    app = FastAPI(title="Приём заявок", docs_url=None, redoc_url=None, openapi_url=None)
    app.router.add_event_handler("startup", pool.open)
    app.router.add_event_handler("shutdown", pool.close)

    async def in_database(work: Callable[[psycopg.Connection], object]) -> object:
        # Past the deadline the sender hears 503 and retries; should the work still commit
        # meanwhile, the retry finds the lead already stored.
        return await asyncio.wait_for(
            run_in_threadpool(in_transaction, pool, work), timeout=settings.deadline_seconds
        )

    async def push(request: Request, source: IntakeSource) -> Response:
        wait = buckets[source.name].take()
        if wait:
            return _error(429, "too many requests", **{"Retry-After": str(max(1, round(wait)))})
        received_at = settings.clock()
        too_large, at_least = None, False
        try:
            body = await read_body(request, settings.max_body_bytes)
            size = len(body)
        except BodyTooLarge as over:
            body, size, too_large = over.head, over.size, settings.max_body_bytes
            at_least = not over.declared  # sent without a length: what was read
        req = Received(
            source=source,
            content_type=request.headers.get("content-type"),
            body=body,
            body_bytes=size,
            received_at=received_at,
            too_large_limit=too_large,
            body_bytes_at_least=at_least,
        )
        try:
            answer: Answer = await in_database(
                lambda conn: receive(conn, req, timezone=settings.timezone, doctors=doctors)
            )
        except (DatabaseAway, TimeoutError):
            log.warning("%s (%s): 503, not stored: database away", source.name, source.kind)
            return _error(503, "cannot store the request now; retry later", **{"Retry-After": "30"})
        log.info("%s (%s): %s %s", source.name, source.kind, answer.status, answer.outcome)
        ok_text = source.connector.ok_text
        if ok_text is not None and answer.status == 200:
            return PlainTextResponse(ok_text)
        return JSONResponse(answer.body, status_code=answer.status)

    def configured(name: str, kind: str) -> IntakeSource | None:
        source = settings.sources.get(name)
        return source if source is not None and source.kind == kind else None

    def mount(kind: str, connector: type[sources.PushSource]) -> None:
        """The route of one push kind, as its connector declares it."""

        async def secret_in_path(name: str, secret: str, request: Request) -> Response:
            source = configured(name, kind)
            if source is None:
                return _error(404, f"no such {connector.called} source")
            if not secret_matches(secret, source.secret):
                log.warning("%s (%s): 403, wrong secret", name, kind)
                return _error(403, f"wrong secret in the {connector.address} address")
            return await push(request, source)

        async def secret_as_bearer(name: str, request: Request) -> Response:
            source = configured(name, kind)
            if source is None:
                return _error(404, f"no such {connector.called} source")
            given = bearer_token(request.headers.get("authorization"))
            if given is None:
                return _error(401, "Authorization: Bearer <secret> is required")
            if not secret_matches(given, source.secret):
                log.warning("%s (%s): 403, wrong secret", name, kind)
                return _error(403, "wrong secret")
            return await push(request, source)

        if connector.secret_in == sources.SECRET_IN_BEARER:
            app.add_api_route(f"{connector.route}/{{name}}", secret_as_bearer, methods=["POST"])
        else:
            app.add_api_route(
                f"{connector.route}/{{name}}/{{secret}}", secret_in_path, methods=["POST"]
            )

    for kind in LEAD_SOURCE_KINDS.values():
        if kind.push:
            mount(kind.name, kind.connector_class())

    @app.get("/GetTickets")
    async def get_tickets(request: Request) -> Response:
        if settings.tickets_key is None:
            return PlainTextResponse("GetTickets is not configured", status_code=404)
        given = request.headers.get(TICKETS_KEY_HEADER)
        if given is None:
            return PlainTextResponse(f"{TICKETS_KEY_HEADER} header is required", 401)
        if not secret_matches(given, settings.tickets_key):
            return PlainTextResponse(f"Invalid {TICKETS_KEY_HEADER}", 403)
        wait = tickets_bucket.take()
        if wait:
            return PlainTextResponse("too many requests", 429, {"Retry-After": "1"})
        try:
            query = tickets.parse_query(dict(request.query_params), settings.timezone)
        except tickets.BadQuery as bad:
            return PlainTextResponse(f"Bad request: {bad}", 400)
        names = sorted(settings.sources)
        try:
            found = await in_database(
                lambda conn: tickets.tickets(conn, names, query, settings.timezone)
            )
        except (DatabaseAway, TimeoutError):
            return PlainTextResponse("the clinic database is away; retry later", 503)
        return JSONResponse(found)

    @app.get("/health")
    async def health() -> Response:
        try:
            await in_database(lambda conn: conn.execute("select 1"))
        except (DatabaseAway, TimeoutError):
            return JSONResponse({"database": "away"}, status_code=503)
        return JSONResponse({"database": "ok", "sources": sorted(settings.sources)})

    return app
