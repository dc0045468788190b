"""The inbox web app, mounted by the plugin at ``/inbox``: the page, its JSON API, the actions.

Routes (relative to the mount point):

* ``GET /`` — the page (anonymous visitors are sent to Airflow's login page); an admin of
  one branch's front desk (``include/alerts.yaml``) gets that branch selected;
* ``GET /api/leads?branch=&source=&q=`` — open conversations, the one with the newest lead
  first (shape below);
* ``GET /api/events`` — server-sent events: ``leads`` whenever the open leads, their
  matched cards, the front desk's choice or their freed slots change (see ``push``; the
  event carries no personal data), so the page fetches the list at once instead of waiting
  for its poll;
* ``POST /api/leads/{id}/take`` | ``/close`` | ``/spam`` — the front desk's actions on the
  whole conversation of lead ``id``, JSON bodies (``{"comment": "..."}`` for close and
  spam); ``POST /api/leads/{id}/patient`` with ``{"patient_id": "p-1"}`` (or ``null``: a
  new patient) confirms the card for every lead of the conversation; all checked against
  cross-site forgery (see ``security``);
* ``GET /static/...`` — the page's script, styles and icon (no data in them).

A conversation is the open leads of one person — the same E.164 phone, or the same card
(the one the front desk chose, else a single certain match) — each within
``[ident_inbox] conversation_window_hours`` (default 24) of the person's previous lead.
Each item of ``leads`` in the list is one conversation: the columns of
``integration.open_leads`` for its first lead (``lead_id`` names the conversation,
``waiting_seconds`` counts from its first lead; ``status`` is ``in_progress`` once anyone
took it, with ``taken_by``/``taken_at``; ``escalated_at``/``escalated_desk`` the earliest
escalation), plus::

    "lead_ids": [11, 12, 13],            # oldest first
    "newest_lead_id": 13,
    "sources": [{"lead_id", "status", "source", "source_label", "created_at", "taken_by",
                 "name", "comment", "form_name", "doctor_name", "requested_start",
                 "requested_end", "campaign", "call": CALL | null}, ...],
    "call": CALL | null,                 # the conversation's newest call, if it has one
    "call_seconds": 12 | null,           # since that call reached us (the server's clock)
    "patient": {
        "state": "chosen" | "new_patient" | "certain" | "probable" | "possible" | "none",
        "chosen_by": "anna" | null, "chosen_at": "..." | null,
        "card": CARD | null,             # the one card the row is about, if there is one
        "candidates": [CARD, ...],       # every matched card, best grade first
        "visitor": "new" | "returning" | null,   # null: several cards, each says
        "last_visit": {"starts_at", "doctor_name"} | null,
        "next_appointment": {"starts_at", "doctor_name", "branch_name"} | null,
        "family": [{"patient_id", "full_name"}, ...]   # cards sharing the phone, if > 1
    },
    "freed_slot": {"doctor_name", "branch_name", "starts_at", "ends_at"} | null

where ``CARD`` is ``{"patient_id", "full_name", "birth_date", "grade", "returning",
"last_visit", "next_appointment"}`` and ``CALL`` (a UIS call notification; what a call is,
``reports.channels.is_call_sql``) is ``{"dialled_number": "+74951200001", "label":
"ПроДокторов: профиль клиники", "channel": "aggregator", "channel_label": "Агрегаторы"}``
— the number dialled in E.164 (as received when it is no phone, null when the notification
has none) and, when the clinic's numbers map (``numbers:`` of the marketing channel rules,
``reports.channels.dialled_number``) has it, where it stands; else the three are null.
The page shows a call as «Звонит сейчас» for ``CALL_RINGING_SECONDS`` after it came.

Actions answer the lead's state with ``lead_ids``, the leads they covered; a refusal
(``409``) names the admin who got there first.

Everything but the static files needs an authenticated Airflow user, exactly as the
Airflow UI does: the ``_token`` cookie of its login, or ``Authorization: Bearer <jwt>``.
The clinic database is reached through the ``ident_db`` connection, one short-lived
connection per request (a few milliseconds; the page polls every few seconds), plus one
connection per api-server process that LISTENs for changes while any page is open.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import psycopg
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.tokens import get_signing_key
from airflow.configuration import conf
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from ident_hooks import db
from ident_hooks.config import load_config
from ident_hooks.health.settings import load_alerts_config
from ident_hooks.inbox import push, store
from ident_hooks.inbox.security import csrf_problem, csrf_token
from ident_hooks.web.pages import page_app, render_page
from ident_hooks.web.security import CurrentUser

HERE = Path(__file__).resolve().parent
CONFIG_SECTION = store.CONFIG_SECTION
DEFAULT_REFRESH_SECONDS = 10  # what IDENT's admin notifications use
MIN_REFRESH_SECONDS = 2  # each open page queries the database this often at most
RESPONSE_TARGET_SECONDS = 5 * 60  # every lead answered within 5 minutes
# A call is shown as ringing («Звонит сейчас») this long after its notification came: a
# call is answered or given up within about a minute (an unanswered call is usually dropped
# or sent to voicemail after 30-60 s; our estimate, UIS publishes no figure), and a row that
# says "ringing" after that misleads.
CALL_RINGING_SECONDS = 60
SEARCH_MAX_CHARS = 100


def refresh_seconds() -> int:
    """How often the page asks for new leads: ``[ident_inbox] refresh_seconds``."""
    configured = conf.getint(CONFIG_SECTION, "refresh_seconds", fallback=DEFAULT_REFRESH_SECONDS)
    return max(MIN_REFRESH_SECONDS, configured)


def push_enabled() -> bool:
    """Whether pages get pushed changes: ``[ident_inbox] push`` (off: they only poll)."""
    return conf.getboolean(CONFIG_SECTION, "push", fallback=True)


def _secret_key() -> str:
    # The api-server's own key; with [api] secret_key set, all api-servers share it.
    return get_signing_key("api", "secret_key")


def _trusted_hosts(request: Request) -> list[str]:
    forwarded = request.headers.get("x-forwarded-host", "")
    base_url_host = urlsplit(conf.get("api", "base_url", fallback="") or "").netloc
    return [
        request.headers.get("host", ""),
        *(host.strip() for host in forwarded.split(",")),
        base_url_host,
    ]


async def acting_user(request: Request, user: CurrentUser) -> BaseUser:
    """The user behind an action, once it is known not to be a forged cross-site request."""
    if request.headers.get("authorization", "").lower().startswith("bearer "):
        # A token in a header is never sent by a browser on its own: no forgery possible.
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        if content_type.lower() != "application/json":
            raise HTTPException(415, "actions accept only application/json")
        return user
    problem = csrf_problem(
        secret_key=_secret_key(),
        username=user.get_name(),
        headers={name.lower(): value for name, value in request.headers.items()},
        trusted_hosts=_trusted_hosts(request),
    )
    if problem:
        raise HTTPException(403, f"Запрос отклонён: {problem}")
    return user


ActingUser = Annotated[BaseUser, Depends(acting_user)]


class CloseBody(BaseModel):
    comment: str | None = Field(default=None, max_length=store.COMMENT_MAX_CHARS)


class PatientChoiceBody(BaseModel):
    patient_id: str | None = Field(max_length=200)  # required; null means a new patient


router = APIRouter()


@router.get("/", response_class=HTMLResponse)
def inbox_page(
    request: Request,
    user: CurrentUser,
    branch: str | None = None,
    source: str | None = None,
    q: Annotated[str | None, Query(max_length=SEARCH_MAX_CHARS)] = None,
) -> HTMLResponse:
    alerts_config = load_alerts_config()
    # Each branch's admins are a group (include/alerts.yaml, front_desks.<branch>.admins):
    # an admin of one branch opens the inbox on that branch; "Все филиалы" shows them all.
    my_branches = alerts_config.desks_of(user.get_name())
    if branch is None and len(my_branches) == 1:
        branch = my_branches[0]
    with db.connect() as conn:
        branches = store.branch_options(conn)
        sources = store.source_options(conn, (s.name for s in load_config().lead_sources))
    return render_page(
        request,
        user,
        "inbox.html",
        csrf_token=csrf_token(_secret_key(), user.get_name()),
        refresh_seconds=refresh_seconds(),
        push_enabled=push_enabled(),
        heartbeat_seconds=push.HEARTBEAT_SECONDS,
        target_seconds=RESPONSE_TARGET_SECONDS,
        call_ringing_seconds=CALL_RINGING_SECONDS,
        escalation_seconds=int(alerts_config.limits.lead_escalation.total_seconds()),
        my_branches=",".join(my_branches),
        list_limit=store.LIST_LIMIT,
        branches=branches,
        sources=sources,
        selected=store.LeadFilter(branch, source, q),
    )


@router.get("/api/leads")
def open_leads(
    user: CurrentUser,
    branch: str | None = None,
    source: str | None = None,
    q: Annotated[str | None, Query(max_length=SEARCH_MAX_CHARS)] = None,
) -> JSONResponse:
    with db.connect() as conn:
        leads, total = store.list_open_leads(
            conn, store.LeadFilter(branch, source, q), window=store.configured_conversation_window()
        )
    body = {
        "user": user.get_name(),
        # Renewed with every list: a restarted api-server without a configured
        # [api] secret_key signs with a new key, and the open page keeps working.
        "csrf_token": csrf_token(_secret_key(), user.get_name()),
        "refresh_seconds": refresh_seconds(),
        "total": total,
        "leads": leads,
    }
    return JSONResponse(jsonable_encoder(body))


@router.get("/api/events")
async def lead_events(request: Request, user: CurrentUser) -> StreamingResponse:
    """The page's push channel; ``503`` when the clinic database cannot LISTEN (the page polls)."""
    if not push_enabled():
        raise HTTPException(404, "Мгновенные обновления выключены")
    feed: push.LeadsFeed = request.app.state.leads_feed
    try:
        subscription = await feed.subscribe()
    except push.FeedUnavailable as problem:
        raise HTTPException(503, f"Мгновенные обновления недоступны: {problem}") from None
    return StreamingResponse(
        push.event_stream(feed, subscription),
        media_type="text/event-stream",
        # nginx buffers responses unless told not to; an event must not wait in a buffer.
        headers={"X-Accel-Buffering": "no"},
    )


def _state_json(state: store.LeadState) -> dict[str, Any]:
    return jsonable_encoder(asdict(state))


def _act(action: Callable[[psycopg.Connection], store.LeadState]) -> JSONResponse:
    """Run one action in its own connection; refusals become 404 or 409 with a reason."""
    try:
        with db.connect() as conn:
            state = action(conn)
    except store.LeadNotFound:
        return JSONResponse({"detail": "Заявка не найдена"}, status_code=404)
    except store.UnknownPatient:
        return JSONResponse({"detail": "Карта пациента не найдена"}, status_code=404)
    except store.LeadUnavailable as refused:
        state = refused.state
        if state.status == "in_progress":
            message = f"Заявка уже в работе у {state.taken_by}"
        elif state.status == "spam":
            message = f"Заявка уже отмечена как спам или дубль ({state.closed_by})"
        else:
            message = f"Заявка уже обработана ({state.closed_by})"
        return JSONResponse({"detail": message, "lead": _state_json(state)}, status_code=409)
    return JSONResponse(_state_json(state))


@router.post("/api/leads/{lead_id}/take")
def take_lead(lead_id: int, user: ActingUser) -> JSONResponse:
    return _act(
        lambda conn: store.take_lead(
            conn, lead_id, user.get_name(), store.configured_conversation_window()
        )
    )


@router.post("/api/leads/{lead_id}/close")
def close_lead(lead_id: int, user: ActingUser, body: CloseBody | None = None) -> JSONResponse:
    comment = body.comment if body else None
    return _act(
        lambda conn: store.close_lead(
            conn, lead_id, user.get_name(), "done", comment, store.configured_conversation_window()
        )
    )


@router.post("/api/leads/{lead_id}/spam")
def mark_spam(lead_id: int, user: ActingUser, body: CloseBody | None = None) -> JSONResponse:
    comment = body.comment if body else None
    return _act(
        lambda conn: store.close_lead(
            conn, lead_id, user.get_name(), "spam", comment, store.configured_conversation_window()
        )
    )


@router.post("/api/leads/{lead_id}/patient")
def choose_patient(lead_id: int, body: PatientChoiceBody, user: ActingUser) -> JSONResponse:
    return _act(
        lambda conn: store.choose_patient(
            conn, lead_id, body.patient_id, user.get_name(), store.configured_conversation_window()
        )
    )


def create_app() -> FastAPI:
    app = page_app("Заявки", router, HERE, pages=[inbox_page])
    app.state.leads_feed = push.LeadsFeed(db.connect)
    return app
