"""The one place for the rules that turn a source's record into a stored lead.

Pure functions, no I/O: phone numbers to E.164, UTM tags and the ad click ids ``yclid`` and
``gclid`` (the source's own fields, else the landing URL's query string), Metrica's ClientID
(kept only when it is a plausible id), the referrer's host, doctor matching, the lead's state at its
source (active, cancelled or deleted there) and the checks that reject a malformed record
with a reason. Text is kept verbatim — odd Unicode, huge values and SQL-looking strings
included — except NUL characters, which are removed because PostgreSQL ``text`` and
``jsonb`` cannot hold ``\\x00``.

Per-record work is kept to about ten microseconds (a regex fast path for Russian phones,
caches for repeated phones, URLs and doctor names): 100 000 leads take 1–2 s on one core.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, tzinfo
from functools import cache, lru_cache
from operator import attrgetter
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import phonenumbers

UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
# Ad click ids that Yandex Direct (yclid) and Google Ads (gclid) add to the landing URL's query
# string when auto-tagging is on (marketing-apis.md D).
CLICK_ID_KEYS = ("yclid", "gclid")
# What a landing URL's query string may fill in when the source's own field is empty.
URL_TAG_KEYS = UTM_KEYS + CLICK_ID_KEYS
# The lead's click ids as columns of integration.leads (migration 0019).
CLICK_ID_FIELDS = ("ym_client_id", *CLICK_ID_KEYS)
# Metrica's ClientID (the ``_ym_uid`` cookie, ``getClientID``) is a UInt64 written in digits:
# the first visit's Unix seconds (10 digits) and a random number, 19–20 digits in practice.
# Accepted: 10 to 20 ASCII digits, not starting with 0, at most 2**64 - 1; anything else is
# not an id Metrica could match, so the lead keeps no ClientID (the lead itself is fine).
_CLIENT_ID = re.compile(r"[1-9][0-9]{9,19}")
_UINT64_MAX = 2**64 - 1
# A lead's state at its source (column integration.leads.source_state, migration 0009):
# None = active there; these two take it out of the inbox. Never the admins' status.
SOURCE_CANCELLED, SOURCE_DELETED = "cancelled", "deleted"
SOURCE_STATES = (SOURCE_CANCELLED, SOURCE_DELETED)
_REASON_VALUE_CHARS = 80  # enough to recognise a bad value; huge fields stay out of reasons
# Far longer than any source's ids; a much longer one (up to 4 bytes a character) would not
# fit an entry of the leads' unique index (2704 bytes), and the whole batch would fail.
MAX_RECORD_ID_CHARS = 500


class RejectedRecord(ValueError):
    """A record that cannot become a lead; ``reason`` says why, for the rejects table."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class Reject:
    """A rejected record as it is stored: where it came from, what it was, why, and its id
    at the source when it has one (for staff looking it up there)."""

    source: str
    raw: Any
    reason: str
    external_id: str | None = None


@dataclass(slots=True)
class Lead:
    """One lead with exactly the fields the leads table keeps; times are timezone-aware."""

    source: str
    external_id: str
    created_at: datetime
    name: str | None = None
    phone_raw: str | None = None
    phone_e164: str | None = None
    email: str | None = None
    comment: str | None = None
    form_name: str | None = None
    doctor_id: str | None = None
    doctor_name_raw: str | None = None
    requested_start: datetime | None = None
    requested_end: datetime | None = None
    branch_id: str | None = None
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    utm_term: str | None = None
    utm_content: str | None = None
    referrer: str | None = None
    referrer_host: str | None = None
    landing_url: str | None = None
    source_state: str | None = None
    ym_client_id: str | None = None
    yclid: str | None = None
    gclid: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    def row(self) -> tuple[Any, ...]:
        """Field values in ``LEAD_COLUMNS`` order (``raw`` stays a dict for the store)."""
        return _lead_values(self)


LEAD_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Lead))
_lead_values = attrgetter(*LEAD_COLUMNS)  # one C call per lead: the store reads 100k at once


# -- text, ids and times --------------------------------------------------------------------
def _shown(value: Any) -> str:
    text = repr(value)
    if len(text) > _REASON_VALUE_CHARS:
        return text[:_REASON_VALUE_CHARS] + "…"
    return text


def clean_text(value: Any, field_name: str) -> str | None:
    """Text as received without NUL characters; empty → None; numbers become text."""
    if type(value) is str:  # the common case first: this runs a dozen times per record
        if "\x00" in value:
            value = value.replace("\x00", "")
        return value if value and not value.isspace() else None
    if value is None:
        return None
    if isinstance(value, str):
        return clean_text(str(value), field_name)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise RejectedRecord(f"{field_name}: expected text, got {type(value).__name__}")


def record_id(value: Any, field_name: str = "id") -> str:
    """The source's id of a record as text; missing, non-scalar or overlong ids reject it."""
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, str):
        text = value.replace("\x00", "").strip()
    else:
        text = ""
    if len(text) > MAX_RECORD_ID_CHARS:
        limit = MAX_RECORD_ID_CHARS
        raise RejectedRecord(f"{field_name}: record id longer than {limit} characters")
    if text:
        return text
    if value is None or value == "":
        raise RejectedRecord(f"{field_name}: missing record id")
    raise RejectedRecord(f"{field_name}: record id must be text or integer, got {_shown(value)}")


_DOTTED_FORMATS = ("%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%d.%m.%Y")


def parse_time(
    value: Any, tz: tzinfo, field_name: str, *, required: bool = True
) -> datetime | None:
    """ISO 8601 (or ``YYYY-MM-DD hh:mm:ss``, ``DD.MM.YYYY hh:mm``); naive times are in ``tz``."""
    if value is None or value == "":
        if required:
            raise RejectedRecord(f"{field_name}: missing time")
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        text = value.strip()
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            moment = _parse_dotted(text)
            if moment is None:
                raise RejectedRecord(f"{field_name}: unparseable time {_shown(value)}") from None
    else:
        raise RejectedRecord(f"{field_name}: time must be text, got {type(value).__name__}")
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)


def _parse_dotted(text: str) -> datetime | None:
    for pattern in _DOTTED_FORMATS:
        try:
            return datetime.strptime(text, pattern)
        except ValueError:
            continue
    return None


def parse_unix_time(value: Any, field_name: str) -> datetime:
    """Unix seconds (number or numeric text) as an aware UTC time."""
    if isinstance(value, bool) or value is None or value == "":
        raise RejectedRecord(f"{field_name}: missing or invalid Unix time {_shown(value)}")
    try:
        seconds = float(value)
        return datetime.fromtimestamp(seconds, UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        raise RejectedRecord(f"{field_name}: invalid Unix time {_shown(value)}") from None


def without_nul(value: Any) -> Any:
    """A JSON-like value with NUL characters removed from every string and key."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_nul(item) for item in value]
    return value


# -- phones ---------------------------------------------------------------------------------
_NON_DIGITS = re.compile(r"\D+")


@cache
def _russian_number_pattern() -> re.Pattern[str]:
    """Every valid Russian national number, taken from phonenumbers' own metadata."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region("RU")
    kinds = (
        "fixed_line",
        "mobile",
        "toll_free",
        "premium_rate",
        "shared_cost",
        "personal_number",
        "voip",
        "pager",
        "uan",
        "voicemail",
    )
    patterns = [
        desc.national_number_pattern
        for desc in (getattr(metadata, kind, None) for kind in kinds)
        if desc is not None and desc.national_number_pattern
    ]
    return re.compile("(?:" + "|".join(patterns) + ")")


@lru_cache(maxsize=1 << 16)
def _phone_by_library(text: str) -> str | None:
    try:
        number = phonenumbers.parse(text, "RU")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=1 << 16)
def _phone_e164(text: str) -> str | None:
    # Fast path for the usual Russian shapes (8…, +7…, 7…, bare 10 digits); it uses the same
    # metadata as phonenumbers, and anything else (other countries, extensions) goes there.
    digits = _NON_DIGITS.sub("", text)
    international = text.lstrip().startswith("+")
    national = None
    if len(digits) == 11 and (digits[0] == "7" or (digits[0] == "8" and not international)):
        national = digits[1:]
    elif len(digits) == 10 and not international:
        national = digits
    if national is not None and _russian_number_pattern().fullmatch(national):
        return "+7" + national
    return _phone_by_library(text)


def normalise_phone(raw: str | int | None) -> str | None:
    """E.164 (``+79161234567``) for any common Russian or international format, else None."""
    if raw is None or isinstance(raw, bool):
        return None
    text = raw if isinstance(raw, str) else str(raw)
    if not text or len(text) > 100:  # nothing a person typed as one phone number
        return None
    return _phone_e164(text)


# -- URLs -----------------------------------------------------------------------------------
@lru_cache(maxsize=1 << 14)
def _url_tag_pairs(url: str) -> tuple[tuple[str, str], ...]:
    try:
        parts = urlsplit(url)
    except ValueError:
        return ()
    found: dict[str, str] = {}
    # Some sites carry the tags after '#'; the query string wins when both have them.
    for query in (parts.fragment, parts.query):
        for key, value in parse_qsl(query):
            key = key.lower()
            if key in URL_TAG_KEYS and value.strip():
                found[key] = value.replace("\x00", "")
    return tuple(found.items())


def tags_from_url(url: str | None) -> dict[str, str]:
    """The non-empty ``utm_*`` tags and click ids (``yclid``, ``gclid``) of a URL's query
    string (or fragment), keyed by name."""
    if not url:
        return {}
    lowered = url.lower()
    if "utm_" not in lowered and "clid=" not in lowered:
        return {}
    return dict(_url_tag_pairs(url))


def utm_from_url(url: str | None) -> dict[str, str]:
    """The non-empty ``utm_*`` tags of a URL's query string (or fragment), keyed by tag."""
    return {key: value for key, value in tags_from_url(url).items() if key in UTM_KEYS}


def metrica_client_id(value: str | None) -> str | None:
    """A Metrica ClientID as its digits, or None when ``value`` is not a plausible one
    (the rule is at ``_CLIENT_ID``)."""
    if value is None:
        return None
    text = value.strip()
    if not _CLIENT_ID.fullmatch(text) or int(text) > _UINT64_MAX:
        return None
    return text


@lru_cache(maxsize=1 << 14)
def _host(url: str) -> str | None:
    text = url.strip()
    if "://" not in text and not text.startswith("//"):
        text = "//" + text  # a bare "yandex.ru/search?…" still names its host
    try:
        host = urlsplit(text).hostname
    except ValueError:
        return None
    if not host:
        return None
    host = host.rstrip(".")
    if host.startswith("www."):
        host = host[4:]
    return host or None


def referrer_host(url: str | None) -> str | None:
    """The lowercase host of a referrer URL without ``www.``; None when there is none."""
    if not url:
        return None
    return _host(url)


# -- doctors --------------------------------------------------------------------------------
_WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")


def _words(name: str) -> list[str]:
    return _WORD.findall(name.lower().replace("ё", "е"))


class DoctorMatcher:
    """Finds the clinic's doctor for a lead by the source's doctor id or by a unique surname.

    Built from ``(doctor_id, full_name)`` pairs with full names as "Surname Name Patronymic".
    A name matches when its words equal one doctor's full name, or its surname (the first
    word, else any later word) belongs to exactly one doctor; two namesakes are told apart by
    the first letters of the given name ("Иванова М."). Case and ё/е do not matter.
    """

    def __init__(self, doctors: Iterable[tuple[Any, str]]) -> None:
        self._by_id: dict[str, str] = {}
        self._by_full_name: dict[str, set[str]] = {}
        self._by_surname: dict[str, set[str]] = {}
        self._given_name: dict[str, str] = {}
        for doctor_id, full_name in doctors:
            key = str(doctor_id)
            self._by_id[key] = key
            words = _words(full_name or "")
            if not words:
                continue
            self._by_full_name.setdefault(" ".join(words), set()).add(key)
            self._by_surname.setdefault(words[0], set()).add(key)
            self._given_name[key] = words[1] if len(words) > 1 else ""
        self._name_cache: dict[str, str | None] = {}

    def match(self, doctor_id: Any = None, name: str | None = None) -> str | None:
        """The clinic's doctor id, or None when the id is unknown and the name is ambiguous."""
        if doctor_id is not None and doctor_id != "" and not isinstance(doctor_id, bool):
            known = self._by_id.get(str(doctor_id).strip())
            if known is not None:
                return known
        if not name or not isinstance(name, str):
            return None
        if name not in self._name_cache:
            self._name_cache[name] = self._match_name(name)
        return self._name_cache[name]

    def _match_name(self, name: str) -> str | None:
        words = _words(name)
        if not words:
            return None
        exact = self._by_full_name.get(" ".join(words), set())
        if len(exact) == 1:
            return next(iter(exact))
        candidates = self._by_surname.get(words[0], set())
        if not candidates:
            later = [w for w in words[1:] if len(w) > 1]
            candidates = set().union(*(self._by_surname.get(w, set()) for w in later))
        if len(candidates) == 1:
            return next(iter(candidates))
        if len(candidates) > 1 and len(words) > 1:
            narrowed = {c for c in candidates if self._given_name[c].startswith(words[1])}
            if len(narrowed) == 1:
                return next(iter(narrowed))
        return None


# -- assembling a lead ----------------------------------------------------------------------
def make_lead(
    *,
    source: str,
    external_id: str,
    created_at: datetime,
    raw: dict[str, Any],
    name: str | None = None,
    phone: str | None = None,
    email: str | None = None,
    comment: str | None = None,
    form_name: str | None = None,
    doctor_id: str | None = None,
    doctor_name_raw: str | None = None,
    requested_start: datetime | None = None,
    requested_end: datetime | None = None,
    branch_id: str | None = None,
    utm: Mapping[str, str | None] | None = None,
    referrer: str | None = None,
    landing_url: str | None = None,
    source_state: str | None = None,
    ym_client_id: str | None = None,
    yclid: str | None = None,
    gclid: str | None = None,
) -> Lead:
    """A lead from cleaned source fields; derives E.164, referrer host, missing UTM tags and
    click ids (from the landing URL) and drops a ClientID that is not a plausible one.

    ``source_state`` is None for a lead active at its source, else one of ``SOURCE_STATES``.
    """
    if source_state is not None and source_state not in SOURCE_STATES:
        raise ValueError(f"source_state must be None or one of {SOURCE_STATES}")
    tags = dict.fromkeys(UTM_KEYS) if utm is None else {key: utm.get(key) for key in UTM_KEYS}
    tags.update(yclid=yclid, gclid=gclid)
    if landing_url and not all(tags.values()):
        for key, value in tags_from_url(landing_url).items():
            if not tags[key]:
                tags[key] = value
    return Lead(
        source=source,
        external_id=external_id,
        created_at=created_at,
        name=name,
        phone_raw=phone,
        phone_e164=normalise_phone(phone),
        email=email,
        comment=comment,
        form_name=form_name,
        doctor_id=doctor_id,
        doctor_name_raw=doctor_name_raw,
        requested_start=requested_start,
        requested_end=requested_end,
        branch_id=branch_id,
        utm_source=tags["utm_source"],
        utm_medium=tags["utm_medium"],
        utm_campaign=tags["utm_campaign"],
        utm_term=tags["utm_term"],
        utm_content=tags["utm_content"],
        referrer=referrer,
        referrer_host=referrer_host(referrer),
        landing_url=landing_url,
        source_state=source_state,
        ym_client_id=metrica_client_id(ym_client_id),
        yclid=tags["yclid"],
        gclid=tags["gclid"],
        raw=raw,
    )
