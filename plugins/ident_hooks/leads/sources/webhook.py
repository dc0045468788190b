"""The generic JSON webhook: a clinic's own site or any form service pushes one lead.

Our own contract (docs/integrations.md, "Push sources: Tilda and site webhooks"), with the
fields of an IDENT ticket (integrations.md, "The IDENT HTTP integration protocol":
``Id, DateAndTime, ClientFullName, ClientPhone, ClientEmail, FormName, Comment, Utm*,
HttpReferer, PlanStart, PlanEnd, DoctorId, DoctorName``) plus the landing page. Each field
is accepted under our snake_case name or under its IDENT name, so a site that already
builds IDENT tickets can post them as they are; the name may also come in IDENT's three
parts (``ClientSurname``, ``ClientName``, ``ClientPatronymic``; integrations.md,
Corrections). ``id`` is the sender's own id of the lead and the key that makes a resent
request the same lead. Without ``created_at`` the lead was created when it arrived; a
time without an offset is the clinic's. The site posts ``application/json`` to
``/webhook/<source>`` with ``Authorization: Bearer <secret>``.

Click ids are optional fields of our own, with no IDENT name (an IDENT ticket has none):
``ym_client_id`` (Metrica's ClientID, what the site's Metrica tag returns from
``getClientID`` or holds in the ``_ym_uid`` cookie; marketing-apis.md D), ``yclid`` and
``gclid``; the last two are also read from ``landing_url``'s query when absent.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, tzinfo
from typing import Any

from ident_hooks.leads.normalise import (
    CLICK_ID_FIELDS,
    UTM_KEYS,
    RejectedRecord,
    clean_text,
    parse_time,
    record_id,
)
from ident_hooks.leads.sources import (
    JSON_BODY,
    SECRET_IN_BEARER,
    PushSource,
    Reader,
    first,
    joined,
    text,
)

# our name -> its IDENT ticket name
IDENT_NAMES = {
    "id": "Id",
    "created_at": "DateAndTime",
    "name": "ClientFullName",
    "phone": "ClientPhone",
    "email": "ClientEmail",
    "form": "FormName",
    "comment": "Comment",
    "utm_source": "UtmSource",
    "utm_medium": "UtmMedium",
    "utm_campaign": "UtmCampaign",
    "utm_term": "UtmTerm",
    "utm_content": "UtmContent",
    "referrer": "HttpReferer",
    "landing_url": "LandingUrl",
    "plan_start": "PlanStart",
    "plan_end": "PlanEnd",
    "doctor_id": "DoctorId",
    "doctor": "DoctorName",
    "branch_id": "BranchId",
}
NAME_PARTS = ("ClientSurname", "ClientName", "ClientPatronymic")


def _get(raw: Mapping[str, Any], field: str) -> Any:
    value = raw.get(field)
    return raw.get(IDENT_NAMES[field]) if value is None or value == "" else value


# Readers of our field, else its IDENT name; a reason names our field.
def _text(field: str) -> Reader:
    return lambda raw, zone: clean_text(_get(raw, field), field)


def _time(field: str) -> Reader:
    return lambda raw, zone: parse_time(_get(raw, field), zone, field, required=False)


def _plan_end(raw: Mapping[str, Any], zone: tzinfo) -> datetime | None:
    end = _time("plan_end")(raw, zone)
    start = _time("plan_start")(raw, zone)
    if start is not None and end is not None and end <= start:
        raise RejectedRecord("plan_end must be later than plan_start")
    return end


class WebhookSource(PushSource):
    """One lead a site posts as JSON (module notes)."""

    kind = "webhook"
    route = "/webhook"
    secret_in = SECRET_IN_BEARER
    called = "webhook"
    body_format = JSON_BODY
    content_type_refusal = "the webhook takes application/json"
    record_key = "id"
    fields = {
        "external_id": lambda raw, zone: record_id(_get(raw, "id"), "id"),
        "created_at": _time("created_at"),
        "name": first(_text("name"), joined(*NAME_PARTS)),
        "phone": _text("phone"),
        "email": _text("email"),
        "comment": _text("comment"),
        "form_name": _text("form"),
        "doctor_id": _text("doctor_id"),
        "doctor_name_raw": _text("doctor"),
        "requested_start": _time("plan_start"),
        "requested_end": _plan_end,
        "branch_id": _text("branch_id"),
        **{key: _text(key) for key in UTM_KEYS},
        "referrer": _text("referrer"),
        "landing_url": _text("landing_url"),
        **{key: text(key) for key in CLICK_ID_FIELDS},
    }
