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
time without an offset is the clinic's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ident_hooks.leads.normalise import (
    UTM_KEYS,
    DoctorMatcher,
    Lead,
    RejectedRecord,
    clean_text,
    make_lead,
    parse_time,
    record_id,
)
from ident_hooks.leads.sources import SourceSettings

# our name -> its IDENT ticket name
FIELDS = {
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


def _get(raw: dict[str, Any], field: str) -> Any:
    value = raw.get(field)
    return raw.get(FIELDS[field]) if value is None or value == "" else value


def _text(raw: dict[str, Any], field: str) -> str | None:
    return clean_text(_get(raw, field), field)


def _name(raw: dict[str, Any]) -> str | None:
    name = _text(raw, "name")
    if name is not None:
        return name
    parts = [clean_text(raw.get(part), part) for part in NAME_PARTS]
    return " ".join(part.strip() for part in parts if part) or None


def parse(
    raw: Any, *, settings: SourceSettings, matcher: DoctorMatcher, received_at: datetime
) -> Lead:
    """One posted lead; a body that is not an object or has no ``id`` is rejected."""
    if not isinstance(raw, dict):
        raise RejectedRecord(f"body must be a JSON object, got {type(raw).__name__}")
    tz = settings.timezone
    doctor_name = _text(raw, "doctor")
    created_at = parse_time(_get(raw, "created_at"), tz, "created_at", required=False)
    plan_start = parse_time(_get(raw, "plan_start"), tz, "plan_start", required=False)
    plan_end = parse_time(_get(raw, "plan_end"), tz, "plan_end", required=False)
    if plan_start is not None and plan_end is not None and plan_end <= plan_start:
        raise RejectedRecord("plan_end must be later than plan_start")
    return make_lead(
        source=settings.source,
        external_id=record_id(_get(raw, "id"), "id"),
        created_at=created_at or received_at,
        raw=raw,
        name=_name(raw),
        phone=_text(raw, "phone"),
        email=_text(raw, "email"),
        comment=_text(raw, "comment"),
        form_name=_text(raw, "form"),
        doctor_id=matcher.match(_text(raw, "doctor_id"), doctor_name),
        doctor_name_raw=doctor_name,
        requested_start=plan_start,
        requested_end=plan_end,
        branch_id=_text(raw, "branch_id"),
        utm={key: _text(raw, key) for key in UTM_KEYS},
        referrer=_text(raw, "referrer"),
        landing_url=_text(raw, "landing_url"),
    )
