"""НаПоправку RTA API: bookings from ``GET appointments``, acknowledged one by one.

Where each fact comes from (``napopravku/rta-api-service-client`` is the vendor's own PHP
client; "Corrections" is /work/shared/reference/integrations.md, section "Corrections,
December 2026 → НаПоправку"):

* Base ``https://rta-api.napopravku.ru/api/v1/``, ``Authorization: Bearer <token>``,
  ``Accept: application/json``; GET parameters go in the query string, POST bodies are
  JSON; every success is ``{"result": ...}``; 401/404/422 carry ``{"message","errors"}``
  — ``src/Remote/HttpClient.php``.
* The polling algorithm: ``GET appointments`` with ``is_received`` false, then
  ``appointments/set-received`` for each booking; poll about every 2 minutes; a booking
  not acknowledged within 10 minutes of creation is cancelled — ``README.md`` («Правила
  работы с сервисом», «Алгоритм»).
* ``is_received=0``, never ``false``: the client passes PHP booleans through Guzzle's
  ``query`` option (``http_build_query`` turns ``false`` into ``0``) —
  ``src/DTOs/Appointment/Request/AppointmentListDTO.php`` (``?bool $isReceived``),
  ``src/Remote/HttpClient.php`` (``RequestOptions::QUERY``); the service's ``422`` is
  Laravel's, whose ``boolean`` rule refuses the strings ``true``/``false`` (Corrections).
* Filters ``mis_clinic_id, uuids, from, to, is_received, is_cancelled`` (``from``/``to``
  plain strings since the client's fix of issue 2), paging ``paging[page]``,
  ``paging[per_page]`` (default 10, at most 100), sorting ``sorting[sort_by]``,
  ``sorting[sort_dir]`` — ``AppointmentListDTO.php``, ``src/DTOs/Common/PagingDTO.php``,
  ``src/DTOs/Common/SortingDTO.php``. Reply ``{"items": [...], "meta": {"total",
  "per_page", "page", "from", "to", "last_page"}}`` — ``src/DTOs/Common/ListMetaDTO.php``,
  ``src/DTOs/Appointment/Result/AppointmentListResultDTO.php``.
* **The API works in UTC** («наше API работает в UTC», ``README.md``, «Алгоритм»):
  ``from`` is sent as a UTC wall-clock ``YYYY-MM-DD HH:MM:SS``, and ``created_at``,
  ``start_time`` and ``end_time`` without an offset are read as UTC. For ``created_at``
  Corrections says so too; for ``start_time``/``end_time`` the README's sentence about
  the API as a whole is the only statement there is (they are plain strings in
  ``src/DTOs/Appointment/Result/AppointmentResultDTO.php``), so it is followed, and an
  explicit offset in a value still wins.
* Item fields ``uuid, clinic{mis_clinic_id}, doctor{mis_doctor_id}, start_time, end_time,
  patient_*, comment, created_at`` — ``AppointmentResultDTO.php``.

Only ``from`` of the period is sent, and only as a bound: the algorithm needs nothing but
``is_received``, and ``from`` (00:00 of the last lead's day, or two hours before the
cursor) keeps bookings the service cancelled long ago out of every poll. Whether
``from``/``to`` filter the creation or the visit time is not documented; ``from`` in the
past is safe under either reading, while a ``to`` of "now" on the visit time would hide
every future booking.

Pages are walked by the shared ``PageNumberPaginator`` (``ident_hooks.leads.paging``) until
``meta.last_page``, else until ``meta.total`` bookings came, else until an empty page — a
page shorter than ``per_page`` is not taken for the last. A server that ignores
``paging[page]`` would answer the same bookings on every page: a page that brings no
booking not already seen stops the walk with a warning, and the bookings fetched so far
are stored and acknowledged as usual, before the service's 10-minute cancellation.

The DAG calls ``acknowledge`` for each booking right after the lead is committed; whether
the reply to ``set-received`` carries ``result`` is not shown (``receiveAppointment``
returns nothing in ``src/RemoteRtaApiClient.php``), so it is not required.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from ident_hooks.leads.normalise import (
    DoctorMatcher,
    Lead,
    RejectedRecord,
    clean_text,
    make_lead,
    parse_time,
    record_id,
)
from ident_hooks.leads.paging import Page, PageNumberPaginator, field_key, walk
from ident_hooks.leads.sources import SourceRefused, SourceSettings, read_json

APPOINTMENTS = "appointments"
SET_RECEIVED = "appointments/set-received"
MAX_PAGE_SIZE = 100
WIRE_TIME = "%Y-%m-%d %H:%M:%S"  # UTC wall clock, no offset


def wire_time(moment: datetime) -> str:
    """An aware time as the service reads it: UTC wall clock ``YYYY-MM-DD HH:MM:SS``."""
    return moment.astimezone(UTC).strftime(WIRE_TIME)


def _body(response: Any) -> Any:
    body = read_json(response, "napopravku")
    if not isinstance(body, dict):
        raise SourceRefused("napopravku", f"reply is not an object: {str(body)[:200]!r}")
    return body


def _result(response: Any) -> Any:
    body = _body(response)
    if "result" not in body:
        raise SourceRefused("napopravku", f"reply without result: {str(body)[:200]!r}")
    return body["result"]


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _page(client: Any, params: dict[str, Any]) -> Page:
    """The page's bookings with ``meta.total`` and ``meta.last_page`` (when given)."""
    result = _result(client.request("GET", APPOINTMENTS, params=params))
    if not isinstance(result, dict) or not isinstance(result.get("items"), list):
        raise SourceRefused("napopravku", f"result without items: {str(result)[:200]!r}")
    meta = result.get("meta")
    meta = meta if isinstance(meta, dict) else {}
    return Page(
        result["items"],
        total=_count(meta.get("total")),
        last_page=_count(meta.get("last_page")),
    )


def fetch(
    client: Any, period_from: datetime, period_to: datetime, *, settings: SourceSettings
) -> Iterator[dict[str, Any]]:
    """Every unacknowledged booking since ``period_from`` (see the module notes)."""
    query: dict[str, Any] = {
        "is_received": 0,
        "from": wire_time(period_from),
        "sorting[sort_by]": "created_at",
        "sorting[sort_dir]": "asc",
    }
    paginator = PageNumberPaginator(
        settings.source,
        per_page=min(settings.page_size or MAX_PAGE_SIZE, MAX_PAGE_SIZE),
        key=field_key("uuid"),
        page_param="paging[page]",
        per_page_param="paging[per_page]",
    )
    return walk(paginator, lambda paging: _page(client, {**query, **paging}))


def acknowledge(client: Any, external_id: str, *, success: bool = True, message: str = "") -> Any:
    """Tell the service the booking is stored (or, with ``success=False``, why it is not)."""
    body = _body(
        client.request(
            "POST",
            SET_RECEIVED,
            json={"appointment_uuid": external_id, "success": success, "message": message},
        )
    )
    return body.get("result")


def _nested_id(raw: dict[str, Any], key: str, id_key: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise RejectedRecord(f"{key}: expected an object, got {type(value).__name__}")
    return clean_text(value.get(id_key), f"{key}.{id_key}")


def parse(raw: Any, *, settings: SourceSettings, matcher: DoctorMatcher) -> Lead:
    """One booking; its times without an offset are UTC (the module notes say why)."""
    if not isinstance(raw, dict):
        raise RejectedRecord(f"record is not an object: {type(raw).__name__}")
    name_parts = [
        clean_text(raw.get(key), key)
        for key in ("patient_surname", "patient_firstname", "patient_father_name")
    ]
    mis_doctor_id = _nested_id(raw, "doctor", "mis_doctor_id")
    return make_lead(
        source=settings.source,
        external_id=record_id(raw.get("uuid"), "uuid"),
        created_at=parse_time(raw.get("created_at"), UTC, "created_at"),
        raw=raw,
        name=" ".join(part for part in name_parts if part) or None,
        phone=clean_text(raw.get("patient_phone"), "patient_phone"),
        email=clean_text(raw.get("patient_email"), "patient_email"),
        comment=clean_text(raw.get("comment"), "comment"),
        doctor_id=matcher.match(mis_doctor_id),
        doctor_name_raw=mis_doctor_id,
        requested_start=parse_time(raw.get("start_time"), UTC, "start_time", required=False),
        requested_end=parse_time(raw.get("end_time"), UTC, "end_time", required=False),
        branch_id=_nested_id(raw, "clinic", "mis_clinic_id"),
    )
