"""UIS (CoMagic) HTTP event notifications: a call or a site request as UIS pushes it.

The Data API pull (``ident_hooks.leads.sources.uis``) reads site requests only; calls —
a lost call to ring back, above all — reach us when the clinic sets up an HTTP
notification in UIS that posts to the intake service (``ident_hooks.intake``), which calls
:func:`parse` with the body. Where each fact comes from:

* **How a notification is set up** (UIS help centre, ``uiscom.ru/academiya/spravochnyj-centr/
  uvedomleniya/uvedomleniya-o-sobytiyakh``): «Уведомления» → «Добавить»; HTTP notifications
  need the option «API Базовый»; when the chosen event happens UIS sends the event's data to
  the configured address. The settings are an event type, a method (``POST``), a URL and a
  body template — as the public setup guides show them (Planfix's CallGear/CoMagic guide;
  ``Call to visit``'s UIS guide; a Novofon — UIS's white label — pilot runbook).
* **The body template**: JSON whose values are bare ``{{variable}}`` placeholders, e.g.
  ``"contact_phone_number": {{contact_phone_number}}`` (every public template writes them
  without quotes, so UIS puts each value in as a JSON value). Variable names of call events
  (those guides and an ``mgdemo.ru`` UIS wiki page): ``notification_mnemonic``,
  ``notification_name``, ``notification_time``, ``notification_timestamp``,
  ``call_session_id``, ``communication_id``, ``contact_phone_number``,
  ``contact_full_name``, ``contact_id``, ``virtual_phone_number``, ``scenario_name``; a
  request event («Заявка …») offers ``visitor_phone_number`` (``Call to visit``'s guide).
* **Our contract** is the template in docs/integrations.md ("UIS event notifications"): its
  keys are those variable names, so a field means what UIS says it means. The lead's id is
  ``call_session_id`` (every call event has it, so the lost-call and the call-end
  notification of one call are one lead), else ``communication_id``.
* **Assumed, not published**: the exact value formats (``notification_time`` is read like
  the Data API's ``YYYY-MM-DD hh:mm:ss`` in the account's local time, ``settings.timezone``;
  ``notification_timestamp`` as Unix seconds wins when present), the request event's other
  variable names (``visitor_name``, ``visitor_email``, ``text`` and the ``utm_*`` tags are
  read under the Data API's names when the template has them), the Content-Type UIS sends
  (the body is read as JSON whatever it says) and UIS's retry policy.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ident_hooks.leads.normalise import (
    UTM_KEYS,
    Lead,
    RejectedRecord,
    clean_text,
    make_lead,
    parse_time,
    parse_unix_time,
    record_id,
)
from ident_hooks.leads.sources import SourceSettings

# UIS variable names, in the order they are looked up.
NAME_FIELDS = ("contact_full_name", "visitor_name")
PHONE_FIELDS = ("contact_phone_number", "visitor_phone_number")
# How each id becomes the lead's id: a call session and a communication are numbered apart.
ID_FIELDS = (("call_session_id", "call"), ("communication_id", "communication"))


def _text(raw: dict[str, Any], field: str) -> str | None:
    return clean_text(raw.get(field), field)


def _first(raw: dict[str, Any], fields: tuple[str, ...]) -> str | None:
    for field in fields:
        value = _text(raw, field)
        if value is not None:
            return value
    return None


def _external_id(raw: dict[str, Any]) -> str:
    for field, prefix in ID_FIELDS:
        if raw.get(field) not in (None, ""):
            return f"{prefix}:{record_id(raw[field], field)}"
    raise RejectedRecord("call_session_id or communication_id is required")


def _created_at(raw: dict[str, Any], settings: SourceSettings, received_at: datetime) -> datetime:
    if raw.get("notification_timestamp") not in (None, ""):
        return parse_unix_time(raw["notification_timestamp"], "notification_timestamp")
    moment = parse_time(
        raw.get("notification_time"), settings.timezone, "notification_time", required=False
    )
    return moment or received_at


def _comment(raw: dict[str, Any]) -> str | None:
    lines = []
    text = _text(raw, "text")
    if text is not None:
        lines.append(text)
    for field, label in (
        ("scenario_name", "Сценарий"),
        ("virtual_phone_number", "Номер, на который звонили"),
    ):
        value = _text(raw, field)
        if value is not None:
            lines.append(f"{label}: {value}")
    return "\n".join(lines) or None


def parse(raw: Any, *, settings: SourceSettings, received_at: datetime) -> Lead:
    """One notification as a lead; one without a call session or communication id is rejected."""
    if not isinstance(raw, dict):
        raise RejectedRecord(f"body must be a JSON object, got {type(raw).__name__}")
    return make_lead(
        source=settings.source,
        external_id=_external_id(raw),
        created_at=_created_at(raw, settings, received_at),
        raw=raw,
        name=_first(raw, NAME_FIELDS),
        phone=_first(raw, PHONE_FIELDS),
        email=_text(raw, "visitor_email"),
        comment=_comment(raw),
        form_name=_text(raw, "notification_name"),
        utm={key: _text(raw, key) for key in UTM_KEYS},
    )
