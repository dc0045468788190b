"""Tilda form webhooks: one form submission as Tilda posts it, turned into a lead.

Tilda cannot be pulled (its API lists no leads), so the intake service
(``ident_hooks.intake``) receives each submission and calls :func:`parse` with the body.
Where each fact comes from:

* **The request** (integrations.md, "Tilda — why it cannot be pulled"):
  ``application/x-www-form-urlencoded`` with the form's fields — ``Name``, ``Phone``,
  ``Email`` by default, any custom fields the designer added — plus ``tranid`` (the
  submission's id, ``"<projectid>:<number>"`` in public receivers' tests) and ``formid``;
  on connecting a webhook Tilda posts ``test=test`` and wants a 200; it waits 5 s and
  retries twice a minute apart, so ``tranid`` is the lead's id and a retry is the same lead.
* **Field names are the designer's**: public receivers read both ``Name`` and ``name``
  (``Escape198/Tilda-AmoCRM``; Tilda's own help calls the variable names free), so the
  known fields are looked up case-insensitively. Fields we do not know are the clinic's own
  questions; they go into the comment as ``field: value`` lines for the front desk and stay
  in the raw record.
* **UTM tags**: hidden ``utm_*`` fields when the form has them, else the ``TILDAUTM``
  cookie inside ``COOKIES`` (a ``Cookie``-header-like ``name=value; …`` string). Tilda's
  forms script sets it as ``encodeURIComponent("utm_source=…|||utm_medium=…|||")`` from the
  page's lower-cased query string (the ``tilda-forms`` script as served to public sites);
  public receivers split the decoded value on ``|||`` and ``=``. The pairs keep the query
  string's own percent-encoding, so each value is decoded once more.
* Tilda sends no creation time: the lead was created when it arrived.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, unquote, unquote_plus

from ident_hooks.leads.normalise import (
    UTM_KEYS,
    Lead,
    RejectedRecord,
    clean_text,
    make_lead,
    record_id,
)
from ident_hooks.leads.sources import SourceSettings

CONNECTION_TEST = {"test": "test"}
NAME_FIELDS = ("name", "fio", "имя")
PHONE_FIELDS = ("phone", "tel", "телефон")
EMAIL_FIELDS = ("email", "e-mail", "mail")
COMMENT_FIELDS = ("comment", "comments", "message", "textarea", "комментарий")
# Tilda's own fields: never the clinic's questions.
SERVICE_FIELDS = frozenset(
    ("tranid", "formid", "formname", "cookies", "test", *UTM_KEYS)
    + NAME_FIELDS
    + PHONE_FIELDS
    + EMAIL_FIELDS
    + COMMENT_FIELDS
)


def read_form(body: bytes) -> dict[str, str]:
    """The form's fields from a urlencoded body; a repeated field's values joined by ``, ``."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RejectedRecord("body is not UTF-8 text") from None
    fields: dict[str, str] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        key = key.replace("\x00", "")
        value = value.replace("\x00", "")
        fields[key] = f"{fields[key]}, {value}" if key in fields else value
    return fields


def is_connection_test(fields: dict[str, str]) -> bool:
    """Tilda's check when a webhook is connected: a body of exactly ``test=test``."""
    return fields == CONNECTION_TEST


def cookie_utm(cookies: str | None) -> dict[str, str]:
    """The UTM tags of the ``TILDAUTM`` cookie in Tilda's ``COOKIES`` field."""
    if not cookies:
        return {}
    for part in cookies.split(";"):
        name, _, value = part.strip().partition("=")
        if name != "TILDAUTM":
            continue
        tags: dict[str, str] = {}
        for pair in unquote(value).split("|||"):
            key, _, tag = pair.partition("=")
            key = key.strip().lower()
            tag = unquote_plus(tag).strip()
            if key in UTM_KEYS and tag and key not in tags:
                tags[key] = tag
        return tags
    return {}


def _first(by_name: dict[str, str], names: tuple[str, ...], label: str) -> str | None:
    for name in names:
        value = clean_text(by_name.get(name), label)
        if value is not None:
            return value
    return None


def _comment(fields: dict[str, str], by_name: dict[str, str]) -> str | None:
    lines = []
    own = _first(by_name, COMMENT_FIELDS, "comment")
    if own is not None:
        lines.append(own)
    for key, value in fields.items():
        if key.lower() not in SERVICE_FIELDS and value.strip():
            lines.append(f"{key}: {value}")
    return "\n".join(lines) or None


def parse(
    fields: dict[str, str],
    *,
    settings: SourceSettings,
    received_at: datetime,
) -> Lead:
    """One submission as a lead; a submission without ``tranid`` is rejected."""
    by_name: dict[str, str] = {}
    for key, value in fields.items():
        by_name.setdefault(key.lower(), value)
    tags = cookie_utm(by_name.get("cookies"))
    for key in UTM_KEYS:  # the form's own hidden fields win over the cookie
        direct = clean_text(by_name.get(key), key)
        if direct is not None:
            tags[key] = direct
    raw: dict[str, Any] = dict(fields)
    return make_lead(
        source=settings.source,
        external_id=record_id(by_name.get("tranid"), "tranid"),
        created_at=received_at,
        raw=raw,
        name=_first(by_name, NAME_FIELDS, "Name"),
        phone=_first(by_name, PHONE_FIELDS, "Phone"),
        email=_first(by_name, EMAIL_FIELDS, "Email"),
        comment=_comment(fields, by_name),
        form_name=clean_text(by_name.get("formname") or by_name.get("formid"), "formid"),
        utm=tags,
    )
