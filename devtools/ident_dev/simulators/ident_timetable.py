"""IDENT ``POST PostTimeTable`` receiver, as СберЗдоровье or 32top would run it.

What it follows, and where from:

* Header ``IDENT-Integration-Key``: missing 401, wrong 403, plain-text reason
  (integrations.md; receivers answer 401 or 403, text or JSON — ``brearey/smmikod``
  ``src/middlewares/auth.ts`` answers 403 «Доступ запрещен» to both).
* Body ``{"Doctors": [{"Id", "Name"}], "Branches": [{"Id", "Name"}], "Intervals":
  [{"DoctorId", "BranchId", "StartDateTime", "LengthInMinutes", "IsBusy"}]}``. **Every id
  is a JSON integer**: ``brearey/smmikod`` ``src/index.ts`` answers 400 with a plain-text
  reason unless ``Id``, ``DoctorId``, ``BranchId`` are numbers and ``IsBusy`` a boolean,
  and keeps the ids in 32-bit ``INT`` columns (``src/database/init.sql``). Here an id
  that is a string, a boolean, a JSON number written with a fraction or exponent
  (``2129.0``) or outside 1..2,147,483,647 is answered 400. Stricter than that receiver
  on purpose: it would fail storing ``2129.5`` or an overflowing number with a 500, and
  JavaScript reads ``2129.0`` as ``2129``; a JSON integer is what IDENT sends.
* **Each accepted POST is the whole timetable and replaces the previous one**
  (integrations.md, Corrections: public receivers keep each POST as the latest snapshot);
  :attr:`snapshot` is the latest, :attr:`accepted` counts them. A timetable split into
  several requests therefore leaves only its last part here, as it would there.
* A body over ``max_body_bytes`` is answered 413; the default is 50 MiB, the limit of
  ``bodyParser.json({ limit: '50mb' })`` in ``brearey/smmikod`` ``src/index.ts``.
* Any 2xx is success; this one answers 200 with a short text, as that receiver does.

Checked beyond those receivers (each answered 400 with a plain-text list of problems,
and assumed to be what a careful receiver refuses): exactly the keys above; an id listed
twice in ``Doctors`` or ``Branches`` (``brearey/smmikod`` would fail its upsert with a
500); every interval names a doctor and a branch listed in the same request (there a
foreign key, so a 500); ``StartDateTime`` carries a UTC offset; ``LengthInMinutes`` is a
positive integer; a doctor's intervals do not overlap.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ident_dev.simulators.base import SimRequest, SimResponse, SimulatorServer

_TOP_KEYS = {"Doctors", "Branches", "Intervals"}
_INTERVAL_KEYS = {"DoctorId", "BranchId", "StartDateTime", "LengthInMinutes", "IsBusy"}
_INT_MAX = 2**31 - 1  # an INT column (brearey/smmikod, src/database/init.sql)
RECEIVER_BODY_LIMIT = 50 * 1024 * 1024  # bodyParser.json({ limit: '50mb' })


def _is_id(value: Any) -> bool:
    return type(value) is int and 1 <= value <= _INT_MAX


@dataclass(frozen=True)
class TimetableSnapshot:
    """One accepted PostTimeTable: what the receiver now shows, keyed by IDENT ids."""

    doctors: dict[int, str]
    branches: dict[int, str]
    intervals: list[dict[str, Any]] = field(repr=False)
    body_bytes: int = 0


def _reference_errors(body: dict[str, Any], key: str) -> list[str]:
    entries = body[key]
    if not isinstance(entries, list):
        return [f"{key} must be a list"]
    errors, seen = [], set()
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or set(entry) != {"Id", "Name"}:
            errors.append(f"{key}[{index}] must be {{Id, Name}}")
        elif not _is_id(entry["Id"]) or not isinstance(entry["Name"], str):
            errors.append(
                f"{key}[{index}]: expected {{Id: integer, Name: string}},"
                f" got Id {json.dumps(entry['Id'], ensure_ascii=False)}"
            )
        elif entry["Id"] in seen:
            errors.append(f"{key}[{index}]: Id {entry['Id']} is listed twice")
        else:
            seen.add(entry["Id"])
    return errors


def _timetable_errors(body: Any) -> list[str]:
    if not isinstance(body, dict) or set(body) != _TOP_KEYS:
        return ["the body must have exactly Doctors, Branches and Intervals"]
    errors = _reference_errors(body, "Doctors") + _reference_errors(body, "Branches")
    if not isinstance(body["Intervals"], list):
        errors.append("Intervals must be a list")
    if errors:
        return errors
    doctors = {d["Id"] for d in body["Doctors"]}
    branches = {b["Id"] for b in body["Branches"]}
    spans: dict[int, list[tuple[datetime, datetime]]] = {}
    for index, interval in enumerate(body["Intervals"]):
        at = f"Intervals[{index}]"
        if not isinstance(interval, dict) or set(interval) != _INTERVAL_KEYS:
            errors.append(f"{at} must have exactly {', '.join(sorted(_INTERVAL_KEYS))}")
            continue
        for key, listed, among in (
            ("DoctorId", doctors, "Doctors"),
            ("BranchId", branches, "Branches"),
        ):
            if not _is_id(interval[key]):
                errors.append(f"{at}.{key} must be an integer, got {json.dumps(interval[key])}")
            elif interval[key] not in listed:
                errors.append(f"{at}.{key} is not among {among}")
        length = interval["LengthInMinutes"]
        if type(length) is not int or length <= 0:
            errors.append(f"{at}.LengthInMinutes must be a positive integer")
            continue
        if not isinstance(interval["IsBusy"], bool):
            errors.append(f"{at}.IsBusy must be true or false")
        try:
            start = datetime.fromisoformat(interval["StartDateTime"])
        except (TypeError, ValueError):
            start = None
        if start is None or start.tzinfo is None:
            errors.append(f"{at}.StartDateTime must be ISO 8601 with a UTC offset")
            continue
        if _is_id(interval["DoctorId"]):
            spans.setdefault(interval["DoctorId"], []).append(
                (start, start + timedelta(minutes=length))
            )
    for doctor_id, doctor_spans in spans.items():
        doctor_spans.sort()
        for (_, previous_end), (start, _) in zip(doctor_spans, doctor_spans[1:], strict=False):
            if start < previous_end:
                errors.append(f"intervals of doctor {doctor_id} overlap at {start.isoformat()}")
    return errors


class IdentTimetableSimulator(SimulatorServer):
    name = "ident_timetable"

    def __init__(
        self,
        *,
        key: str = "ident-key",
        path_prefix: str = "",
        max_body_bytes: int = RECEIVER_BODY_LIMIT,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host, port)
        self.key = key
        self.max_body_bytes = max_body_bytes
        self.snapshot: TimetableSnapshot | None = None
        self.accepted = 0
        self.route("POST", f"{path_prefix.rstrip('/')}/PostTimeTable", self._post_timetable)

    def authorize(self, request: SimRequest) -> SimResponse | None:
        given = request.headers.get("ident-integration-key")
        if given is None:
            return SimResponse(401, "IDENT-Integration-Key header is required")
        if given != self.key:
            return SimResponse(403, "Invalid IDENT-Integration-Key")
        return None

    def _post_timetable(self, request: SimRequest) -> SimResponse:
        if len(request.body) > self.max_body_bytes:
            return SimResponse(413, "request entity too large")
        try:
            body = json.loads(request.body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return SimResponse(400, f"Body is not JSON: {exc}")
        errors = _timetable_errors(body)
        if errors:
            return SimResponse(400, "\n".join(errors))
        snapshot = TimetableSnapshot(
            doctors={d["Id"]: d["Name"] for d in body["Doctors"]},
            branches={b["Id"]: b["Name"] for b in body["Branches"]},
            intervals=body["Intervals"],
            body_bytes=len(request.body),
        )
        with self._lock:
            self.snapshot = snapshot
            self.accepted += 1
        return SimResponse(200, "Данные успешно сохранены")

    # -- what the receiver shows now ------------------------------------------------------
    @property
    def doctors(self) -> dict[int, str]:
        return self.snapshot.doctors if self.snapshot else {}

    @property
    def branches(self) -> dict[int, str]:
        return self.snapshot.branches if self.snapshot else {}

    @property
    def timetable(self) -> dict[tuple[int, int], list[dict[str, Any]]]:
        """``(branch id, doctor id) -> intervals`` in time order, of the latest snapshot."""
        pairs: dict[tuple[int, int], list[dict[str, Any]]] = {}
        for interval in self.snapshot.intervals if self.snapshot else []:
            pairs.setdefault((interval["BranchId"], interval["DoctorId"]), []).append(interval)
        for intervals in pairs.values():
            intervals.sort(key=lambda i: datetime.fromisoformat(i["StartDateTime"]))
        return pairs

    def intervals(self, branch_id: int, doctor_id: int) -> list[dict[str, Any]]:
        """Intervals of a doctor in a branch in the latest snapshot, in time order."""
        return self.timetable.get((branch_id, doctor_id), [])
