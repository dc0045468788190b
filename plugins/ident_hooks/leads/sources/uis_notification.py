"""UIS (CoMagic) HTTP event notifications: a call or a site request as UIS pushes it.

The Data API pull (``ident_hooks.leads.sources.uis``) reads site requests only; calls —
a lost call to ring back, above all — reach us when the clinic sets up an HTTP
notification in UIS that posts to the intake service (``ident_hooks.intake``) at
``/uis/<source>/<secret>`` (the settings are a method, a URL and a body: the secret is in
the URL), which calls :meth:`UisNotificationSource.parse` with the body. Where each fact comes from:

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

from collections.abc import Mapping
from datetime import tzinfo
from typing import Any

from ident_hooks.leads.normalise import RejectedRecord, record_id
from ident_hooks.leads.sources import (
    JSON_BODY,
    SECRET_IN_PATH,
    PushSource,
    first,
    labelled,
    lines,
    text,
    time,
    unix_time,
    utm_tags,
)

# How each id becomes the lead's id: a call session and a communication are numbered apart.
ID_FIELDS = (("call_session_id", "call"), ("communication_id", "communication"))


def external_id(raw: Mapping[str, Any], zone: tzinfo) -> str:
    for field, prefix in ID_FIELDS:
        if raw.get(field) not in (None, ""):
            return f"{prefix}:{record_id(raw[field], field)}"
    raise RejectedRecord("call_session_id or communication_id is required")


class UisNotificationSource(PushSource):
    """One UIS event notification: a call or a site request (module notes)."""

    kind = "uis_notification"
    route = "/uis"
    secret_in = SECRET_IN_PATH
    called = "UIS notification"
    address = "notification"
    # The Content-Type UIS sends is not published: the body is read as JSON whatever it says.
    body_format = JSON_BODY
    record_key = "call_session_id"
    fields = {
        "external_id": external_id,
        "created_at": first(
            unix_time("notification_timestamp", required=False),
            time("notification_time", required=False),
        ),
        "name": text("contact_full_name", "visitor_name"),
        "phone": text("contact_phone_number", "visitor_phone_number"),
        "email": text("visitor_email"),
        "comment": lines(
            text("text"),
            labelled("Сценарий", "scenario_name"),
            labelled("Номер, на который звонили", "virtual_phone_number"),
        ),
        "form_name": text("notification_name"),
        **utm_tags(text),
    }
