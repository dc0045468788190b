"""Lead sources: the connector classes and what they share.

A connector is a class that declares what its service is — endpoint, auth, paging, record
key, field map — and overrides only what that service does differently (in the manner of
a Singer SDK ``RESTStream``: ``meltano/sdk`` ``singer_sdk/streams/rest.py``). It knows one
service's wire and record shape and nothing about retries, the database or Airflow.

* :class:`PullSource` — we call the service: ``client(conn_id)`` is its HTTP client (auth
  and the partners' switched-off rule), ``fetch(client, period_from, period_to,
  settings=…)`` yields raw records of ``[period_from, period_to)`` (aware datetimes), each
  key at most once.
* :class:`PushSource` — the service calls the intake service (``ident_hooks.intake``): the
  class declares its route, where the secret travels, how the body is read, the service's
  connection test and the reply it wants.
* :class:`Acknowledging` — a capability: the service must be told, only after the commit,
  that a lead was stored (НаПоправку cancels unacknowledged bookings).

Every connector's ``parse(raw, settings=…, matcher=…)`` turns a record into a ``Lead`` by
its declared field map (Lead field -> reader: which raw field, which cleaner) or raises
``RejectedRecord`` with a reason. Which class serves which kind is
``ident_hooks.registry.LEAD_SOURCE_KINDS`` (``kind.connector_class()``); a configured source
names its kind in integrations.yaml, so any number of sources may share one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any, ClassVar
from zoneinfo import ZoneInfo

from ident_hooks.auth import AuthStyle
from ident_hooks.errors import PermanentFailure, TransientFailure
from ident_hooks.http_client import ServiceClient, ServiceError
from ident_hooks.leads.normalise import (
    CLICK_ID_FIELDS,
    UTM_KEYS,
    DoctorMatcher,
    Lead,
    Reject,
    RejectedRecord,
    clean_text,
    make_lead,
    parse_time,
    parse_unix_time,
    record_id,
    without_nul,
)
from ident_hooks.leads.paging import Page, Paging, RecordKey, field_key, walk

if TYPE_CHECKING:
    import requests

MOSCOW = ZoneInfo("Europe/Moscow")
log = logging.getLogger(__name__)


class SourceError(RuntimeError):
    """A source answered 2xx but its body reports an error or cannot be read.

    Raised as :class:`SourceRefused` or :class:`SourceTemporarilyFailed`, chosen where the
    reply is read, through the connector's :meth:`PullSource.failure`, which keeps the
    client's secret out of the message.
    """

    def __init__(self, source_kind: str, message: str, *, code: Any = None) -> None:
        super().__init__(f"{source_kind}: {message}")
        self.source_kind = source_kind
        self.code = code


class SourceRefused(SourceError, PermanentFailure):
    """The source refused the request or answered something no retry will change."""


class SourceTemporarilyFailed(SourceError, TransientFailure):
    """A failure another attempt later may not meet (a proxy's error page, a moving offset)."""


class SourceLimitReached(SourceTemporarilyFailed):
    """The source's request limit is used up; retry after ``retry_after_seconds``."""

    def __init__(
        self, source_kind: str, message: str, *, code: Any = None, retry_after_seconds: float = 60
    ) -> None:
        super().__init__(source_kind, message, code=code)
        self.retry_after_seconds = retry_after_seconds


@dataclass(frozen=True)
class SourceSettings:
    """What a connector needs to know about one configured source.

    ``timezone`` reads naive times (UIS account time, IDENT tickets);
    ``page_size`` 0 means the connector's default.
    """

    source: str
    timezone: tzinfo = MOSCOW
    page_size: int = 0


# -- the field map ----------------------------------------------------------------------------
# A reader takes a record (a dict) and the zone of its naive times and returns one cleaned
# value, or raises RejectedRecord with the reason. Keys may be dotted ("client.name"): a
# section that is missing, null, "" or [] (PHP's empty object) reads as empty, any other
# non-object rejects the record. A reason names the key read unless a label is given.
Reader = Callable[[Mapping[str, Any], tzinfo], Any]


def section(record: Mapping[str, Any], name: str, *, where: str | None = None) -> Mapping[str, Any]:
    """The object under ``name``: empty when it is missing, null, "" or [] (PHP's empty
    object); any other non-object rejects the record."""
    value = record.get(name)
    if value is None or value == "" or value == []:
        return {}
    if not isinstance(value, dict):
        raise RejectedRecord(f"{where or name}: expected an object, got {type(value).__name__}")
    return value


def _path_reader(key: str) -> Callable[[Mapping[str, Any]], Any]:
    *sections, name = key.split(".")
    if not sections:
        return lambda record: record.get(name)
    wheres = [".".join(sections[:depth]) for depth in range(1, len(sections) + 1)]

    def read(record: Mapping[str, Any]) -> Any:
        for section_name, where in zip(sections, wheres, strict=True):
            record = section(record, section_name, where=where)
        return record.get(name)

    return read


def text(*keys: str, label: str | None = None) -> Reader:
    """The first of ``keys`` that holds text (NUL removed; empty or blank reads as none)."""
    if len(keys) > 1:
        return first(*(text(key, label=label) for key in keys))
    key, shown = keys[0], label or keys[0]
    if "." not in key:  # the common case, read a dozen times per record
        return lambda record, zone: clean_text(record.get(key), shown)
    get = _path_reader(key)
    return lambda record, zone: clean_text(get(record), shown)


def joined(*keys: str) -> Reader:
    """The texts of ``keys`` joined by spaces («Фамилия Имя Отчество» from its parts)."""

    def read(record: Mapping[str, Any], zone: tzinfo) -> str | None:
        parts = [clean_text(record.get(key), key) for key in keys]
        return " ".join(part.strip() for part in parts if part) or None

    return read


def first(*readers: Reader) -> Reader:
    """What the first reader that finds a value gives."""

    def read(record: Mapping[str, Any], zone: tzinfo) -> Any:
        for reader in readers:
            value = reader(record, zone)
            if value is not None:
                return value
        return None

    return read


def lines(*readers: Reader) -> Reader:
    """The readers' values one per line (a comment for the front desk)."""

    def read(record: Mapping[str, Any], zone: tzinfo) -> str | None:
        found = [value for value in (reader(record, zone) for reader in readers) if value]
        return "\n".join(found) or None

    return read


def labelled(label: str, key: str) -> Reader:
    """``"label: value"`` for a text field, for a comment line."""
    get = text(key)

    def read(record: Mapping[str, Any], zone: tzinfo) -> str | None:
        value = get(record, zone)
        return None if value is None else f"{label}: {value}"

    return read


def time(key: str, *, required: bool = True) -> Reader:
    """A time (ISO 8601 and the usual Russian shapes); naive times are in the record's zone."""
    get = _path_reader(key)
    return lambda record, zone: parse_time(get(record), zone, key, required=required)


def unix_time(key: str, *, required: bool = True) -> Reader:
    """Unix seconds (number or numeric text) as an aware UTC time."""

    def read(record: Mapping[str, Any], zone: tzinfo) -> datetime | None:
        value = record.get(key)
        if not required and (value is None or value == ""):
            return None
        return parse_unix_time(value, key)

    return read


def identifier(key: str) -> Reader:
    """The record's id as text; a missing, non-scalar or overlong one rejects it."""
    get = _path_reader(key)
    return lambda record, zone: record_id(get(record), key)


def utm_tags(reader: Callable[[str], Reader]) -> dict[str, Reader]:
    """A reader for each UTM tag (``reader("utm_source")`` …), for a field map."""
    return {key: reader(key) for key in UTM_KEYS}


def click_ids(reader: Callable[[str], Reader]) -> dict[str, Reader]:
    """A reader for Metrica's ClientID and each ad click id, for a field map whose record
    names them ``ym_client_id``, ``yclid`` and ``gclid``. ``make_lead`` drops a ClientID
    that is not a plausible one and fills an empty click id from the landing URL."""
    return {key: reader(key) for key in CLICK_ID_FIELDS}


# -- connectors -------------------------------------------------------------------------------
class LeadConnector:
    """What every lead source declares: its kind, record key and field map.

    ``fields`` maps a :class:`~ident_hooks.leads.normalise.Lead` field (as
    ``make_lead`` names it; ``utm_source`` … for the tags) to its reader. ``external_id``
    defaults to the record key. ``doctor_id`` and ``doctor_name_raw`` are what the record
    says; :meth:`match_doctor` turns them into the clinic's doctor. ``times_in`` is the zone
    of naive times when the service fixes one (None: the source's ``timezone``).
    """

    kind: ClassVar[str]
    record_key: ClassVar[str]
    fields: ClassVar[Mapping[str, Reader]] = {}
    times_in: ClassVar[tzinfo | None] = None
    not_an_object: ClassVar[str] = "record is not an object: {}"
    # Compiled from the declarations for each class.
    identity: ClassVar[RecordKey]
    matches_doctors: ClassVar[bool] = False
    _readers: ClassVar[tuple[tuple[str, Reader], ...]] = ()
    _utm_readers: ClassVar[tuple[tuple[str, Reader], ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "record_key" in cls.__dict__:
            cls.identity = field_key(cls.record_key)
        if "fields" in cls.__dict__ or "record_key" in cls.__dict__:
            readers = {"external_id": identifier(cls.record_key), **cls.fields}
            cls._readers = tuple(item for item in readers.items() if item[0] not in UTM_KEYS)
            cls._utm_readers = tuple(item for item in readers.items() if item[0] in UTM_KEYS)
            cls.matches_doctors = bool({"doctor_id", "doctor_name_raw"} & set(readers))

    @classmethod
    def record(cls, raw: Any) -> Mapping[str, Any]:
        """What the field map reads; rejects what is not an object."""
        if not isinstance(raw, dict):
            raise RejectedRecord(cls.not_an_object.format(type(raw).__name__))
        return raw

    @classmethod
    def key_of(cls, raw: Any) -> str | None:
        """The record key of a raw record, as text, when it has one (for a rejected one)."""
        value = raw.get(cls.record_key) if isinstance(raw, dict) else None
        if not isinstance(value, int | str) or isinstance(value, bool):
            return None
        return str(value).strip() or None

    @classmethod
    def match_doctor(
        cls, matcher: DoctorMatcher, doctor_id: str | None, name: str | None
    ) -> str | None:
        return matcher.match(doctor_id, name)

    @classmethod
    def parse(
        cls,
        raw: Any,
        *,
        settings: SourceSettings,
        matcher: DoctorMatcher | None = None,
        received_at: datetime | None = None,
    ) -> Lead:
        """One record as a lead; a pushed one without a time of its own was created when it
        arrived (``received_at``)."""
        record = cls.record(raw)
        zone = cls.times_in or settings.timezone
        values = {name: read(record, zone) for name, read in cls._readers}
        utm = {key: read(record, zone) for key, read in cls._utm_readers}
        if cls.matches_doctors:
            values["doctor_id"] = cls.match_doctor(
                matcher, values.get("doctor_id"), values.get("doctor_name_raw")
            )
        if values.get("created_at") is None:
            values["created_at"] = received_at
        return make_lead(source=settings.source, raw=raw, utm=utm, **values)


class PullSource(LeadConnector):
    """A service we call for its leads.

    Declared: ``auth`` (where the secret goes), ``endpoint`` and ``method``, ``params_in``
    (``"params"``: the query string, ``"data"``: a form body), ``paging`` and, for partners
    that say so by a reply, ``switched_off``. :meth:`period_params` and :meth:`read_page`
    are the service's own; :meth:`fetch` and :meth:`page` are overridden where its protocol
    is not one request per page.
    """

    auth: ClassVar[AuthStyle]
    endpoint: ClassVar[str]
    method: ClassVar[str] = "GET"
    params_in: ClassVar[str] = "params"
    paging: ClassVar[Paging]
    switched_off: ClassVar[Callable[[requests.Response], bool] | None] = None

    @classmethod
    def client(cls, conn_id: str, **options: Any) -> ServiceClient:
        """The HTTP client for one source of this kind: its auth and its reading of replies."""
        return ServiceClient(conn_id, auth=cls.auth, switched_off=cls.switched_off, **options)

    @classmethod
    def fetch(
        cls,
        client: ServiceClient,
        period_from: datetime,
        period_to: datetime,
        *,
        settings: SourceSettings,
    ) -> Iterator[Any]:
        """Raw records of ``[period_from, period_to)``, every page walked, each key once."""
        query = cls.period_params(period_from, period_to, settings)
        paginator = cls.paging.start(
            settings.source, key=cls.identity, page_size=settings.page_size
        )
        return walk(paginator, lambda paging: cls.page(client, {**query, **paging}))

    @classmethod
    def period_params(
        cls, period_from: datetime, period_to: datetime, settings: SourceSettings
    ) -> dict[str, Any]:
        """The request parameters that ask for the period (and any other filter)."""
        raise NotImplementedError

    @classmethod
    def page(cls, client: ServiceClient, params: dict[str, Any]) -> Page:
        response = client.request(cls.method, cls.endpoint, **{cls.params_in: params})
        return cls.read_page(client, cls.read_json(client, response))

    @classmethod
    def read_page(cls, client: ServiceClient, body: Any) -> Page:
        """The records of one decoded reply, with its total or last page when it gives them."""
        raise NotImplementedError

    @classmethod
    def read_json(cls, client: ServiceClient, response: requests.Response) -> Any:
        """The decoded body of a 2xx reply, with NUL characters removed (PostgreSQL cannot
        store them); a body that is not JSON (a proxy's HTML page, a cut-off reply) is a
        retryable error."""
        try:
            body = response.json()
        except ValueError:
            raise cls.failure(
                client, SourceTemporarilyFailed, f"reply is not JSON: {response.text[:200]!r}"
            ) from None
        return without_nul(body) if "\\u0000" in response.text else body

    @classmethod
    def failure(
        cls, client: ServiceClient, error: type[SourceError], message: str, **details: Any
    ) -> SourceError:
        """An error of this kind; a message that quotes a reply (a proxy's error page may
        hold the URL with a key) keeps no spelling of the client's secret."""
        return error(cls.kind, client.redact(message), **details)


class Acknowledging:
    """The capability of a source that must be told, after the commit, what was stored.

    :meth:`acknowledge` is called for each committed lead; :meth:`refuse_rejected` answers
    the records that could not be stored, so the service knows the clinic did not get them.
    """

    @classmethod
    def acknowledge(
        cls, client: ServiceClient, external_id: str, *, success: bool = True, message: str = ""
    ) -> Any:
        raise NotImplementedError

    @classmethod
    def refuse_rejected(cls, source: str, rejects: list[Reject], client: ServiceClient) -> None:
        """Answer every rejected record that has a key with ``success=False`` and the reason.

        One that fails is fetched and answered again on the next run, since the service
        still lists it as not received.
        """
        for reject in rejects:
            external_id = reject.external_id
            if not external_id:
                continue
            log.error("%s: booking %s could not be stored: %s", source, external_id, reject.reason)
            try:
                cls.acknowledge(
                    client,
                    external_id,
                    success=False,
                    message=f"Клиника не смогла принять заявку: {reject.reason}"[:500],
                )
            except (ServiceError, SourceError) as failure:
                log.warning("%s: could not report booking %s: %s", source, external_id, failure)


# How a push source's sender proves itself.
SECRET_IN_PATH = "path"  # the address's last segment: for services given only a URL
SECRET_IN_BEARER = "bearer"  # Authorization: Bearer <secret>
FORM_BODY = "application/x-www-form-urlencoded"
JSON_BODY = "application/json"


class PushSource(LeadConnector):
    """A service that calls the intake service with one lead per request.

    Declared: ``route`` (the path prefix; the source's name follows, and with
    ``SECRET_IN_PATH`` the secret after it), ``secret_in``, ``called`` (how refusals name
    its sources: "no such {called} source") and ``address`` (what its sender calls the URL
    holding the secret), ``body_format`` (the media type the body is read as),
    ``content_type_refusal`` (the message for a request of another Content-Type; None reads
    the body whatever it says), ``ok_text`` (a 200 answered as this plain text instead of
    JSON) and :meth:`is_connection_test`. Pushed records have no time of their own unless
    the field map reads one.
    """

    route: ClassVar[str]
    secret_in: ClassVar[str] = SECRET_IN_PATH
    called: ClassVar[str]
    address: ClassVar[str] = ""
    body_format: ClassVar[str] = JSON_BODY
    content_type_refusal: ClassVar[str | None] = None
    ok_text: ClassVar[str | None] = None
    not_an_object = "body must be a JSON object, got {}"

    @classmethod
    def is_connection_test(cls, body: Any) -> bool:
        """The service's check of a newly connected address: answered 200, no lead made."""
        return False


@dataclass
class ParsedBatch:
    leads: list[Lead]
    rejects: list[Reject]


def parse_records(
    connector: type[LeadConnector],
    records: Iterable[Any],
    *,
    settings: SourceSettings,
    matcher: DoctorMatcher,
) -> ParsedBatch:
    """Parse every record; malformed ones become rejects, a repeated id keeps its last copy."""
    leads: dict[str, Lead] = {}
    rejects: list[Reject] = []
    for raw in records:
        try:
            lead = connector.parse(raw, settings=settings, matcher=matcher)
        except RejectedRecord as rejected:
            rejects.append(Reject(settings.source, raw, rejected.reason, connector.key_of(raw)))
            continue
        leads.pop(lead.external_id, None)
        leads[lead.external_id] = lead
    return ParsedBatch(list(leads.values()), rejects)


def unique_by(records: Iterable[Any], key: Callable[[Any], Any]) -> Iterator[Any]:
    """Records whose key was not seen before (pages may overlap while new leads arrive).

    Records without a usable key pass through so that ``parse`` can reject them.
    """
    seen: set[Any] = set()
    for record in records:
        try:
            identity = key(record)
            hash(identity)
        except (AttributeError, KeyError, TypeError):
            yield record
            continue
        if identity is None:
            yield record
        elif identity not in seen:
            seen.add(identity)
            yield record
