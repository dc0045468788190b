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

The class declares the :class:`~ident_hooks.leads.sources.Acknowledging` capability: the
DAG calls ``acknowledge`` for each booking right after the lead is committed, and a booking
that could not be stored is answered ``success=False`` with the reason (unanswered, the
service would cancel it silently after 10 minutes). Whether
the reply to ``set-received`` carries ``result`` is not shown (``receiveAppointment``
returns nothing in ``src/RemoteRtaApiClient.php``), so it is not required.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ident_hooks.http_client import ServiceClient
from ident_hooks.leads.normalise import DoctorMatcher
from ident_hooks.leads.paging import Page, PageNumberPaginator, Paging
from ident_hooks.leads.sources import (
    Acknowledging,
    PullSource,
    SourceRefused,
    SourceSettings,
    joined,
    text,
    time,
)
from ident_hooks.registry import NAPOPRAVKU_BEARER

WIRE_TIME = "%Y-%m-%d %H:%M:%S"  # UTC wall clock, no offset


def wire_time(moment: datetime) -> str:
    """An aware time as the service reads it: UTC wall clock ``YYYY-MM-DD HH:MM:SS``."""
    return moment.astimezone(UTC).strftime(WIRE_TIME)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class NapopravkuSource(PullSource, Acknowledging):
    """Unacknowledged bookings of ``GET appointments``, acknowledged one by one."""

    kind = "napopravku"
    auth = NAPOPRAVKU_BEARER
    endpoint = "appointments"
    set_received = "appointments/set-received"
    paging = Paging(
        PageNumberPaginator,
        default_size=100,
        max_size=100,
        param_names={"page_param": "paging[page]", "per_page_param": "paging[per_page]"},
    )
    record_key = "uuid"
    times_in = UTC  # the module notes say why
    fields = {
        "created_at": time("created_at"),
        "name": joined("patient_surname", "patient_firstname", "patient_father_name"),
        "phone": text("patient_phone"),
        "email": text("patient_email"),
        "comment": text("comment"),
        # The clinic's own id (the MIS id), shown to staff as what the service said.
        "doctor_id": text("doctor.mis_doctor_id"),
        "doctor_name_raw": text("doctor.mis_doctor_id"),
        "requested_start": time("start_time", required=False),
        "requested_end": time("end_time", required=False),
        "branch_id": text("clinic.mis_clinic_id"),
    }

    @classmethod
    def match_doctor(
        cls, matcher: DoctorMatcher, doctor_id: str | None, name: str | None
    ) -> str | None:
        return matcher.match(doctor_id)  # an id, never a name

    @classmethod
    def period_params(
        cls, period_from: datetime, period_to: datetime, settings: SourceSettings
    ) -> dict[str, Any]:
        """Every unacknowledged booking since ``period_from`` (see the module notes)."""
        return {
            "is_received": 0,
            "from": wire_time(period_from),
            "sorting[sort_by]": "created_at",
            "sorting[sort_dir]": "asc",
        }

    @classmethod
    def read_page(cls, client: ServiceClient, body: Any) -> Page:
        """The page's bookings with ``meta.total`` and ``meta.last_page`` (when given)."""
        result = cls._result(client, body)
        if not isinstance(result, dict) or not isinstance(result.get("items"), list):
            raise cls.failure(client, SourceRefused, f"result without items: {str(result)[:200]!r}")
        meta = result.get("meta")
        meta = meta if isinstance(meta, dict) else {}
        return Page(
            result["items"],
            total=_count(meta.get("total")),
            last_page=_count(meta.get("last_page")),
        )

    @classmethod
    def acknowledge(
        cls, client: ServiceClient, external_id: str, *, success: bool = True, message: str = ""
    ) -> Any:
        """Tell the service the booking is stored (or, with ``success=False``, why it is not)."""
        response = client.request(
            "POST",
            cls.set_received,
            json={"appointment_uuid": external_id, "success": success, "message": message},
        )
        return cls._object(client, cls.read_json(client, response)).get("result")

    @classmethod
    def _object(cls, client: ServiceClient, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise cls.failure(client, SourceRefused, f"reply is not an object: {str(body)[:200]!r}")
        return body

    @classmethod
    def _result(cls, client: ServiceClient, body: Any) -> Any:
        body = cls._object(client, body)
        if "result" not in body:
            raise cls.failure(client, SourceRefused, f"reply without result: {str(body)[:200]!r}")
        return body["result"]
