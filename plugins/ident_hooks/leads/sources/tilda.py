"""Tilda form webhooks: one form submission as Tilda posts it, turned into a lead.

Tilda cannot be pulled (its API lists no leads), so the intake service
(``ident_hooks.intake``) receives each submission at ``/tilda/<source>/<secret>`` (a webhook
is only an address, so the secret is its last segment) and calls
:meth:`TildaSource.parse` with the form's fields.
Where each fact comes from:

* **The request** (integrations.md, "Tilda — why it cannot be pulled"):
  ``application/x-www-form-urlencoded`` with the form's fields — ``Name``, ``Phone``,
  ``Email`` by default, any custom fields the designer added — plus ``tranid`` (the
  submission's id, ``"<projectid>:<number>"`` in public receivers' tests) and ``formid``;
  on connecting a webhook Tilda posts ``test=test`` and wants a 200 (we answer ``ok``, as to
  every stored submission); it waits 5 s and retries twice a minute apart, so ``tranid`` is
  the lead's id and a retry is the same lead.
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
* **Metrica's ClientID**: the ``_ym_uid`` cookie inside ``COOKIES`` (marketing-apis.md D:
  the first-party cookie a Metrica tag sets holds the ClientID). ``COOKIES`` is sent only when
  the clinic switched on the webhook's "send cookies" option (help-ru.tilda.cc/forms/webhook;
  integrations.md "Tilda": optional), and ``_ym_uid`` is in it only where a Metrica tag runs
  on the page; otherwise the lead has no ClientID. The pairs are split on ``;`` and the first
  ``=``, as public receivers do: the standard library's ``http.cookies.SimpleCookie`` returns
  nothing at all for a string holding one value outside RFC 6265's characters (a space,
  Cyrillic), which a page's other cookies may well hold.
* ``yclid``/``gclid``: Tilda names no such field; a form's hidden fields of those names are
  read, else they stay empty (Tilda posts no landing URL to read them from).
* Tilda sends no creation time: the lead was created when it arrived.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import tzinfo
from typing import Any
from urllib.parse import unquote, unquote_plus

from ident_hooks.leads.normalise import CLICK_ID_KEYS, UTM_KEYS
from ident_hooks.leads.sources import (
    FORM_BODY,
    SECRET_IN_PATH,
    PushSource,
    first,
    lines,
    text,
)

CONNECTION_TEST = {"test": "test"}
NAME_FIELDS = ("name", "fio", "имя")
PHONE_FIELDS = ("phone", "tel", "телефон")
EMAIL_FIELDS = ("email", "e-mail", "mail")
COMMENT_FIELDS = ("comment", "comments", "message", "textarea", "комментарий")
# Tilda's own fields: never the clinic's questions.
SERVICE_FIELDS = frozenset(
    ("tranid", "formid", "formname", "cookies", "test", *UTM_KEYS, *CLICK_ID_KEYS)
    + NAME_FIELDS
    + PHONE_FIELDS
    + EMAIL_FIELDS
    + COMMENT_FIELDS
)


class Submission(dict):
    """A submission's fields by lower-cased name (the first of two spellings wins), with the
    fields as sent in ``sent``."""

    def __init__(self, sent: Mapping[str, str]) -> None:
        super().__init__()
        self.sent = sent
        for key, value in sent.items():
            self.setdefault(key.lower(), value)


def cookie(cookies: str | None, name: str) -> str | None:
    """The value of cookie ``name`` in Tilda's ``COOKIES`` field (``name=value; …``)."""
    if not cookies:
        return None
    for part in cookies.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def cookie_utm(cookies: str | None) -> dict[str, str]:
    """The UTM tags of the ``TILDAUTM`` cookie in Tilda's ``COOKIES`` field."""
    value = cookie(cookies, "TILDAUTM")
    if value is None:
        return {}
    tags: dict[str, str] = {}
    for pair in unquote(value).split("|||"):
        key, _, tag = pair.partition("=")
        key = key.strip().lower()
        tag = unquote_plus(tag).strip()
        if key in UTM_KEYS and tag and key not in tags:
            tags[key] = tag
    return tags


def _metrica_client_id(submission: Submission, zone: tzinfo) -> str | None:
    """The ``_ym_uid`` cookie, when Tilda sent the page's cookies."""
    return cookie(submission.get("cookies"), "_ym_uid")


def _utm_tag(key: str):
    """The form's own hidden field, else the ``TILDAUTM`` cookie's tag."""
    direct = text(key)
    return first(direct, lambda submission, zone: cookie_utm(submission.get("cookies")).get(key))


def _questions(submission: Submission, zone: tzinfo) -> str | None:
    """The clinic's own questions, as ``field: value`` lines for the front desk."""
    found = [
        f"{key}: {value}"
        for key, value in submission.sent.items()
        if key.lower() not in SERVICE_FIELDS and value.strip()
    ]
    return "\n".join(found) or None


class TildaSource(PushSource):
    """One Tilda form submission (module notes)."""

    kind = "tilda"
    route = "/tilda"
    secret_in = SECRET_IN_PATH
    called = "Tilda"
    address = "webhook"
    body_format = FORM_BODY
    content_type_refusal = "Tilda posts application/x-www-form-urlencoded"
    ok_text = "ok"
    record_key = "tranid"
    fields = {
        "name": text(*NAME_FIELDS, label="Name"),
        "phone": text(*PHONE_FIELDS, label="Phone"),
        "email": text(*EMAIL_FIELDS, label="Email"),
        "comment": lines(text(*COMMENT_FIELDS, label="comment"), _questions),
        "form_name": text("formname", "formid", label="formid"),
        **{key: _utm_tag(key) for key in UTM_KEYS},
        "ym_client_id": _metrica_client_id,
        **{key: text(key) for key in CLICK_ID_KEYS},
    }

    @classmethod
    def record(cls, raw: Any) -> Submission:
        return Submission(raw)

    @classmethod
    def is_connection_test(cls, body: Any) -> bool:
        """Tilda's check when a webhook is connected: a body of exactly ``test=test``."""
        return body == CONNECTION_TEST
