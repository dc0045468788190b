"""НаПоправку RTA API simulator: bookings and the schedule endpoints.

Public facts it follows (``napopravku/rta-api-service-client``, the vendor's PHP client;
"Corrections" = /work/shared/reference/integrations.md, "Corrections, December 2026 →
НаПоправку"):

* Base path ``/api/v1``; ``Authorization: Bearer <token>`` (else 401 ``{"message"}``);
  success is ``{"result": ...}``; 401/404/422 carry ``{"message","errors"}`` —
  ``src/Remote/HttpClient.php``. Invalid input is answered the way Laravel's validator
  does (Corrections): 422 ``{"message": <first error>[ (and N more errors)],
  "errors": {<dot.path>: ["The <attribute> field ..."]}}``; query arrays such as
  ``paging[per_page]`` are reported as ``paging.per_page``.
* ``GET appointments``: filters ``mis_clinic_id, uuids, from, to, is_received,
  is_cancelled``; paging ``paging[page]``, ``paging[per_page]`` (default 10, at most
  100); sorting ``sorting[sort_by]``, ``sorting[sort_dir]``; reply ``{"items", "meta":
  {"total","per_page","page","from","to","last_page"}}`` — ``src/DTOs/Appointment/
  Request/AppointmentListDTO.php``, ``src/DTOs/Common/PagingDTO.php``,
  ``src/DTOs/Common/ListMetaDTO.php``. Booleans follow Laravel's ``boolean`` rule: in a
  query string only ``0`` and ``1`` pass, ``true``/``false`` are a 422 (Corrections; the
  vendor's client sends ``0``/``1`` via Guzzle's ``query`` option).
* **UTC** («наше API работает в UTC», ``README.md``): ``from``/``to`` without an offset are
  UTC, and every time in a reply (``created_at``, ``updated_at``, ``start_time``,
  ``end_time``) is a UTC wall-clock ``YYYY-MM-DD HH:MM:SS``. ``from``/``to`` filter the
  creation time — an assumption, the vendor does not say.
* ``POST appointments/set-received`` ``{"appointment_uuid","success","message"}``
  (``src/DTOs/Appointment/Request/AppointmentReceiveDTO.php``). A booking not
  acknowledged within 10 minutes of creation is cancelled (``README.md``), measured by
  the injectable ``clock``; acknowledging it then is a 422.
* ``POST clinics`` → ``{"result": {"created", "updated"}}``
  (``src/DTOs/Clinic/Result/ClinicListUpdateResultDTO.php``); ``POST doctors`` →
  ``{"result": {"created", "updated", "matched", "not_matched"}}``
  (``src/DTOs/Doctor/Result/DoctorListUpdateResultDTO.php``, typed
  ``array<string, array<int, string>>``). What the keys of ``matched``/``not_matched``
  are is not written down; here each key is a ``mis_clinic_id`` and its list holds
  ``mis_doctor_id`` values of that clinic — an assumption. Which doctors the service
  cannot link to its own profiles is the test's to declare: ``unmatched_doctors``.
* ``POST slots`` validates the documented shape strictly (no unknown keys, known clinics
  and doctors, ``HH:MM`` ranges that do not overlap, dates from today to today + 32 in
  Moscow time; Corrections, ``src/DTOs/Slot/Request/*``) and answers ``{"result": true}``
  (``updateSlots`` reads no result, ``src/RemoteRtaApiClient.php``).

Accepted data is kept in ``clinics``, ``doctors``, ``slots`` and ``payloads``.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ident_dev.simulators.base import SimRequest, SimResponse
from ident_dev.simulators.fake_leads import FakeLead, LeadServingSimulator

ACKNOWLEDGE_WITHIN = timedelta(minutes=10)
HORIZON_DAYS = 32
DEFAULT_PER_PAGE = 10
MAX_PER_PAGE = 100
SERVICE_TZ = ZoneInfo("Europe/Moscow")  # the slots' dates and today's date
WIRE_TIME = "%Y-%m-%d %H:%M:%S"  # UTC wall clock
_HHMM = re.compile(r"([01]\d|2[0-3]):[0-5]\d")
_SORTABLE = ("created_at", "start_time", "updated_at")
# Laravel's boolean rule: a query string holds only text, so there only "0" and "1" pass;
# a JSON body may also hold true/false and the numbers 0/1.
_QUERY_BOOLEANS = {"0": False, "1": True}


def _json_boolean(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if type(value) is int and value in (0, 1):
        return bool(value)
    return _QUERY_BOOLEANS.get(value) if isinstance(value, str) else None


def utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(WIRE_TIME)


class _Invalid(Exception):
    """Laravel's ValidationException: the first message, and how many more there are."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        messages = [message for field_errors in errors.values() for message in field_errors]
        more = len(messages) - 1
        summary = messages[0] if messages else "The given data was invalid."
        if more > 0:
            summary += f" (and {more} more error{'s' if more > 1 else ''})"
        super().__init__(summary)
        self.errors = errors


def _attribute(path: str) -> str:
    return path.replace("_", " ")


class _Checker:
    """Collects Laravel-style validation errors keyed by the value's dot path."""

    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}

    def fail(self, path: str, rule: str) -> None:
        """``rule`` completes "The <attribute> field ..." (e.g. "must be true or false")."""
        self.errors.setdefault(path, []).append(f"The {_attribute(path)} field {rule}.")

    def done(self) -> None:
        if self.errors:
            raise _Invalid(self.errors)

    def record(self, value: Any, path: str, required: set[str], optional: set[str] = frozenset()):
        if not isinstance(value, dict):
            self.fail(path, "must be an object")
            return None
        for key in sorted(required - set(value)):
            self.fail(f"{path}.{key}".lstrip("."), "is required")
        for key in sorted(set(value) - required - optional):
            self.fail(f"{path}.{key}".lstrip("."), "is prohibited")
        return value

    def items(self, value: Any, path: str, *, allow_empty: bool = False) -> list[Any]:
        if not isinstance(value, list) or (not value and not allow_empty):
            self.fail(path, "must be a non-empty list" if not allow_empty else "must be a list")
            return []
        return value

    def ident(self, value: Any, path: str) -> str | None:
        if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
            self.fail(path, "must be a non-empty string or integer id")
            return None
        return str(value)

    def text(self, value: Any, path: str, *, nullable: bool = False) -> None:
        if value is None and nullable:
            return
        if not isinstance(value, str) or (not nullable and not value.strip()):
            self.fail(path, "must be a string" + ("" if nullable else " that is not empty"))


class NapopravkuSimulator(LeadServingSimulator):
    name = "napopravku"
    id_field = "uuid"
    time_field = "created_at"
    text_field = "patient_surname"

    def __init__(
        self,
        *,
        token: str = "napopravku-token",
        clinic_ids: tuple[str, ...] = ("msk-1",),
        unmatched_doctors: set[str] | frozenset[str] = frozenset(),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.token = token
        self.clinic_ids = clinic_ids
        # mis_doctor_ids the service cannot link to one of its own doctor profiles.
        self.unmatched_doctors: set[str] = set(unmatched_doctors)
        self.factory.doctor_share = 1.0  # a booking is always for a doctor and a time
        self.acknowledgements: list[dict[str, Any]] = []
        self.clinics: dict[str, dict[str, Any]] = {}
        self.doctors: dict[str, dict[str, Any]] = {}
        self.slots: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        self.payloads: dict[str, list[Any]] = {"clinics": [], "doctors": [], "slots": []}
        for method, path, handler in (
            ("GET", "appointments", self._appointments),
            ("POST", "appointments/set-received", self._set_received),
            ("POST", "clinics", self._post_clinics),
            ("POST", "doctors", self._post_doctors),
            ("POST", "slots", self._post_slots),
        ):
            self.route(method, f"/api/v1/{path}", handler)

    def authorize(self, request: SimRequest) -> SimResponse | None:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return SimResponse(401, {"message": "Unauthenticated."})
        return None

    def dispatch(self, request: SimRequest) -> SimResponse:
        try:
            return super().dispatch(request)
        except _Invalid as invalid:
            return SimResponse(422, {"message": str(invalid), "errors": invalid.errors})

    # -- bookings --------------------------------------------------------
    def render(self, lead: FakeLead, serial: int) -> dict[str, Any]:
        rng = self.factory.rng
        created = utc_text(lead.created_at)
        return {
            "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "clinic": {"mis_clinic_id": rng.choice(self.clinic_ids)},
            "doctor": {"mis_doctor_id": lead.doctor_id} if lead.doctor_id else None,
            "mis_service_id": None,
            "start_time": utc_text(lead.plan_start) if lead.plan_start else None,
            "end_time": utc_text(lead.plan_end) if lead.plan_end else None,
            "patient_surname": lead.surname,
            "patient_firstname": lead.first_name,
            "patient_father_name": lead.patronymic,
            "patient_gender": "female" if lead.female else "male",
            "patient_phone": lead.phone,
            "patient_email": lead.email,
            "patient_birthday": date(
                rng.randint(1950, 2015), rng.randint(1, 12), rng.randint(1, 28)
            ).isoformat(),
            "comment": lead.comment,
            "source": rng.choice(["napopravku", "widget", "app"]),
            "is_received": False,
            "is_cancelled": False,
            "created_at": created,
            "updated_at": created,
        }

    def booking(self, booking_uuid: str) -> dict[str, Any] | None:
        """The booking as the service holds it now (after any 10-minute cancellation)."""
        self._cancel_unacknowledged()
        for record in self.records:
            if isinstance(record, dict) and record.get("uuid") == booking_uuid:
                return record
        return None

    def _cancel_unacknowledged(self) -> None:
        now = self.clock()
        with self._data_lock:
            for created, _, record in self._records:
                if (
                    isinstance(record, dict)
                    and not record.get("is_received")
                    and not record.get("is_cancelled")
                    and now - created >= ACKNOWLEDGE_WITHIN
                ):
                    record["is_cancelled"] = True
                    record["updated_at"] = utc_text(created + ACKNOWLEDGE_WITHIN)

    def _appointments(self, request: SimRequest) -> SimResponse:
        self._cancel_unacknowledged()
        check = _Checker()
        flags = {}
        for name in ("is_received", "is_cancelled"):
            value = request.arg(name)
            if value is None:
                continue
            if value not in _QUERY_BOOLEANS:
                check.fail(name, "must be true or false")
            else:
                flags[name] = _QUERY_BOOLEANS[value]
        period = {name: self._moment(request.arg(name), name, check) for name in ("from", "to")}
        page = self._positive(request.arg("paging[page]", "1"), "paging.page", check)
        per_page = self._positive(
            request.arg("paging[per_page]", str(DEFAULT_PER_PAGE)), "paging.per_page", check
        )
        if per_page > MAX_PER_PAGE:
            check.fail("paging.per_page", f"must not be greater than {MAX_PER_PAGE}")
        sort_by = request.arg("sorting[sort_by]", "created_at")
        sort_dir = request.arg("sorting[sort_dir]", "asc")
        if sort_by not in _SORTABLE:
            check.fail("sorting.sort_by", "must be one of " + ", ".join(_SORTABLE))
        if sort_dir not in ("asc", "desc"):
            check.fail("sorting.sort_dir", "must be one of asc, desc")
        check.done()
        uuids = {
            value
            for name, values in request.query.items()
            if name == "uuids" or (name.startswith("uuids[") and name.endswith("]"))
            for joined in values
            for value in joined.split(",")
            if value
        }
        clinic = request.arg("mis_clinic_id")
        with self._data_lock:
            rows = [(at, record) for at, _, record in sorted(self._records, key=lambda r: r[:2])]
        items = [
            record
            for at, record in rows
            if isinstance(record, dict)
            and all(record.get(name) == wanted for name, wanted in flags.items())
            and (not uuids or record.get("uuid") in uuids)
            and (clinic is None or (record.get("clinic") or {}).get("mis_clinic_id") == clinic)
            and (period["from"] is None or at >= period["from"])
            and (period["to"] is None or at <= period["to"])
        ]
        items.sort(key=lambda record: str(record.get(sort_by) or ""), reverse=sort_dir == "desc")
        total = len(items)
        first = (page - 1) * per_page
        chunk = items[first : first + per_page]
        meta = {
            "total": total,
            "per_page": per_page,
            "page": page,
            "from": first + 1 if chunk else None,
            "to": first + len(chunk) if chunk else None,
            "last_page": max(1, -(-total // per_page)),
        }
        return SimResponse(200, {"result": {"items": chunk, "meta": meta}})

    def _set_received(self, request: SimRequest) -> SimResponse:
        check = _Checker()
        body = check.record(request.json(), "", {"appointment_uuid", "success"}, {"message"})
        check.done()
        check.text(body["appointment_uuid"], "appointment_uuid")
        success = _json_boolean(body["success"])
        if success is None:
            check.fail("success", "must be true or false")
        check.text(body.get("message"), "message", nullable=True)
        check.done()
        record = self.booking(body["appointment_uuid"])
        if record is None:
            return SimResponse(404, {"message": "Appointment not found."})
        with self._data_lock:
            if record["is_cancelled"]:
                check.fail(
                    "appointment_uuid",
                    "refers to a booking cancelled: not acknowledged within 10 minutes",
                )
                check.done()
            record["is_received"] = True
            self.acknowledgements.append(
                {**body, "success": success, "acknowledged_at": self.clock()}
            )
        return SimResponse(200, {"result": True})

    def _moment(self, value: str | None, name: str, check: _Checker) -> datetime | None:
        """A ``date`` parameter; without an offset it is UTC, as the whole API is."""
        if not value:
            return None
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            check.fail(name, "must be a valid date")
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    @staticmethod
    def _positive(value: str | None, name: str, check: _Checker) -> int:
        if value is None or not value.isdigit() or int(value) < 1:
            check.fail(name, "must be an integer of at least 1")
            return 1
        return int(value)

    # -- schedule ----------------------------------------------------------
    def _post_clinics(self, request: SimRequest) -> SimResponse:
        check = _Checker()
        body = check.record(request.json(), "", {"clinics"}) or {}
        accepted: dict[str, dict[str, Any]] = {}
        for i, item in enumerate(check.items(body.get("clinics"), "clinics")):
            path = f"clinics.{i}"
            if check.record(item, path, {"mis_clinic_id", "name"}, {"comment"}) is None:
                continue
            clinic_id = check.ident(item.get("mis_clinic_id"), f"{path}.mis_clinic_id")
            check.text(item.get("name"), f"{path}.name")
            check.text(item.get("comment"), f"{path}.comment", nullable=True)
            if clinic_id in accepted:
                check.fail(f"{path}.mis_clinic_id", "is duplicated")
            accepted[clinic_id or ""] = item
        check.done()
        with self._data_lock:
            created = sum(1 for clinic_id in accepted if clinic_id not in self.clinics)
            self.clinics.update(accepted)
            self.payloads["clinics"].append(body)
        return SimResponse(
            200, {"result": {"created": created, "updated": len(accepted) - created}}
        )

    def _post_doctors(self, request: SimRequest) -> SimResponse:
        check = _Checker()
        body = check.record(request.json(), "", {"doctors"}) or {}
        accepted: dict[str, dict[str, Any]] = {}
        for i, item in enumerate(check.items(body.get("doctors"), "doctors")):
            path = f"doctors.{i}"
            required = {"mis_doctor_id", "name", "mis_clinic_ids"}
            if check.record(item, path, required, {"comment"}) is None:
                continue
            doctor_id = check.ident(item.get("mis_doctor_id"), f"{path}.mis_doctor_id")
            check.text(item.get("name"), f"{path}.name")
            check.text(item.get("comment"), f"{path}.comment", nullable=True)
            clinic_ids = check.items(item.get("mis_clinic_ids"), f"{path}.mis_clinic_ids")
            for j, clinic_id in enumerate(clinic_ids):
                known = check.ident(clinic_id, f"{path}.mis_clinic_ids.{j}")
                if known is not None and known not in self.clinics:
                    check.fail(f"{path}.mis_clinic_ids.{j}", "is not a known clinic")
            if doctor_id in accepted:
                check.fail(f"{path}.mis_doctor_id", "is duplicated")
            accepted[doctor_id or ""] = item
        check.done()
        matched: dict[str, list[str]] = {}
        not_matched: dict[str, list[str]] = {}
        for doctor_id, item in accepted.items():
            linked = not_matched if doctor_id in self.unmatched_doctors else matched
            for clinic_id in item["mis_clinic_ids"]:
                linked.setdefault(str(clinic_id), []).append(doctor_id)
        with self._data_lock:
            created = sum(1 for doctor_id in accepted if doctor_id not in self.doctors)
            self.doctors.update(accepted)
            self.payloads["doctors"].append(body)
        result = {
            "created": created,
            "updated": len(accepted) - created,
            "matched": matched,
            "not_matched": not_matched,
        }
        return SimResponse(200, {"result": result})

    def _post_slots(self, request: SimRequest) -> SimResponse:
        check = _Checker()
        body = check.record(request.json(), "", {"clinics"}) or {}
        today = self.clock().astimezone(SERVICE_TZ).date()
        last_day = today + timedelta(days=HORIZON_DAYS)
        accepted: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        for i, clinic in enumerate(check.items(body.get("clinics"), "clinics")):
            path = f"clinics.{i}"
            if check.record(clinic, path, {"mis_clinic_id", "doctors"}) is None:
                continue
            clinic_id = check.ident(clinic.get("mis_clinic_id"), f"{path}.mis_clinic_id")
            if clinic_id is not None and clinic_id not in self.clinics:
                check.fail(f"{path}.mis_clinic_id", "is not a known clinic")
            for j, doctor in enumerate(check.items(clinic.get("doctors"), f"{path}.doctors")):
                doctor_path = f"{path}.doctors.{j}"
                if check.record(doctor, doctor_path, {"mis_doctor_id", "dates"}) is None:
                    continue
                doctor_id = check.ident(doctor.get("mis_doctor_id"), f"{doctor_path}.mis_doctor_id")
                known = self.doctors.get(doctor_id or "")
                if known is None:
                    check.fail(f"{doctor_path}.mis_doctor_id", "is not a known doctor")
                elif clinic_id not in {str(c) for c in known["mis_clinic_ids"]}:
                    check.fail(f"{doctor_path}.mis_doctor_id", "does not work in this clinic")
                dates = check.items(doctor.get("dates"), f"{doctor_path}.dates", allow_empty=True)
                for k, day in enumerate(dates):
                    day_path = f"{doctor_path}.dates.{k}"
                    ranges = self._check_day(check, day, day_path, today, last_day)
                    if ranges is None:
                        continue
                    key = (clinic_id or "", doctor_id or "", day["date"])
                    if key in accepted:
                        check.fail(f"{day_path}.date", "is duplicated")
                    accepted[key] = ranges
        check.done()
        with self._data_lock:
            self.slots.update(accepted)
            self.payloads["slots"].append(body)
        return SimResponse(200, {"result": True})

    def _check_day(
        self, check: _Checker, day: Any, path: str, first_day: date, last_day: date
    ) -> list[dict[str, Any]] | None:
        if check.record(day, path, {"date", "slots"}) is None:
            return None
        value = day.get("date")
        try:
            when = date.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            when = None
        if when is None or len(value) != 10:
            check.fail(f"{path}.date", "must be YYYY-MM-DD")
        elif not first_day <= when <= last_day:
            check.fail(f"{path}.date", f"must be between {first_day} and {last_day}")
        ranges = []
        for n, slot in enumerate(check.items(day.get("slots"), f"{path}.slots", allow_empty=True)):
            slot_path = f"{path}.slots.{n}"
            if check.record(slot, slot_path, {"from", "to"}, {"duration"}) is None:
                continue
            start, end = slot.get("from"), slot.get("to")
            times_ok = True
            for name, text in (("from", start), ("to", end)):
                if not isinstance(text, str) or not _HHMM.fullmatch(text):
                    check.fail(f"{slot_path}.{name}", "must be HH:MM")
                    times_ok = False
            if times_ok and start >= end:
                check.fail(f"{slot_path}.to", "must be after from")
                times_ok = False
            duration = slot.get("duration")
            if duration is not None and (
                isinstance(duration, bool) or not isinstance(duration, int) or duration <= 0
            ):
                check.fail(f"{slot_path}.duration", "must be a positive integer or null")
            if times_ok:
                ranges.append({"from": start, "to": end, "duration": duration})
        ranges.sort(key=lambda r: r["from"])
        for earlier, later in zip(ranges, ranges[1:], strict=False):
            if later["from"] < earlier["to"]:
                overlap = f"{earlier['from']}-{earlier['to']} overlaps {later['from']}"
                check.fail(f"{path}.slots", overlap)
        return ranges

    def expanded_slots(self, clinic_id: str, doctor_id: str, day: str) -> list[tuple[str, str]]:
        """The bookable slots the service shows for a doctor's day (ranges split by duration)."""
        result = []
        for free in self.slots.get((clinic_id, doctor_id, day), []):
            start = datetime.strptime(free["from"], "%H:%M")
            end = datetime.strptime(free["to"], "%H:%M")
            step = timedelta(minutes=free["duration"]) if free["duration"] else end - start
            while start + step <= end:
                result.append((start.strftime("%H:%M"), (start + step).strftime("%H:%M")))
                start += step
        return result
