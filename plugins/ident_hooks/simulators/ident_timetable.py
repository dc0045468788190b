"""IDENT ``POST PostTimeTable`` receiver, as СберЗдоровье or 32top would run it.

Follows integrations.md: header ``IDENT-Integration-Key`` (missing: 401, wrong:
403, plain-text reason), JSON body ``{"Doctors": [{"Id", "Name"}], "Branches":
[{"Id", "Name"}], "Intervals": [{"DoctorId", "BranchId", "StartDateTime",
"LengthInMinutes", "IsBusy"}]}``; any 2xx is success (this one answers 200 with
an empty body). A wrong shape is answered 400 with a plain-text list of
problems (the protocol page names no error format), a body over
``max_body_bytes`` 413.

Checked beyond the shape: every interval names a doctor and a branch listed in
the same request, ``StartDateTime`` carries a UTC offset, and a doctor's
intervals do not overlap. Accepted data is kept in ``doctors``, ``branches`` and
``timetable[(branch_id, doctor_id)][local date]`` (a list of intervals); a
request replaces the dates it sends for each listed doctor and branch, and a
listed doctor with no intervals there is cleared.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from ident_hooks.simulators.base import SimRequest, SimResponse, SimulatorServer

_TOP_KEYS = {"Doctors", "Branches", "Intervals"}
_INTERVAL_KEYS = {"DoctorId", "BranchId", "StartDateTime", "LengthInMinutes", "IsBusy"}


def _is_id(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, str | int) and value != ""


def _reference_errors(body: dict[str, Any], key: str) -> list[str]:
    entries = body[key]
    if not isinstance(entries, list):
        return [f"{key} must be a list"]
    errors = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or set(entry) != {"Id", "Name"}:
            errors.append(f"{key}[{index}] must be {{Id, Name}}")
        elif not _is_id(entry["Id"]) or not isinstance(entry["Name"], str):
            errors.append(f"{key}[{index}]: Id must be a string or integer, Name a string")
    return errors


def _timetable_errors(body: Any) -> list[str]:
    if not isinstance(body, dict) or set(body) != _TOP_KEYS:
        return ["the body must have exactly Doctors, Branches and Intervals"]
    errors = _reference_errors(body, "Doctors") + _reference_errors(body, "Branches")
    if not isinstance(body["Intervals"], list):
        errors.append("Intervals must be a list")
    if errors:
        return errors
    doctors = {str(d["Id"]) for d in body["Doctors"]}
    branches = {str(b["Id"]) for b in body["Branches"]}
    spans: dict[str, list[tuple[datetime, datetime]]] = {}
    for index, interval in enumerate(body["Intervals"]):
        at = f"Intervals[{index}]"
        if not isinstance(interval, dict) or set(interval) != _INTERVAL_KEYS:
            errors.append(f"{at} must have exactly {', '.join(sorted(_INTERVAL_KEYS))}")
            continue
        if not _is_id(interval["DoctorId"]) or str(interval["DoctorId"]) not in doctors:
            errors.append(f"{at}.DoctorId is not among Doctors")
        if not _is_id(interval["BranchId"]) or str(interval["BranchId"]) not in branches:
            errors.append(f"{at}.BranchId is not among Branches")
        length = interval["LengthInMinutes"]
        if isinstance(length, bool) or not isinstance(length, int) or length <= 0:
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
        spans.setdefault(str(interval["DoctorId"]), []).append(
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
        max_body_bytes: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host, port)
        self.key = key
        self.max_body_bytes = max_body_bytes
        self.doctors: dict[str, str] = {}
        self.branches: dict[str, str] = {}
        self.timetable: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = {}
        self.route("POST", f"{path_prefix.rstrip('/')}/PostTimeTable", self._post_timetable)

    def authorize(self, request: SimRequest) -> SimResponse | None:
        given = request.headers.get("ident-integration-key")
        if given is None:
            return SimResponse(401, "IDENT-Integration-Key header is required")
        if given != self.key:
            return SimResponse(403, "Invalid IDENT-Integration-Key")
        return None

    def _post_timetable(self, request: SimRequest) -> SimResponse:
        if self.max_body_bytes is not None and len(request.body) > self.max_body_bytes:
            return SimResponse(413, "Request body is too large")
        try:
            body = json.loads(request.body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return SimResponse(400, f"Body is not JSON: {exc}")
        errors = _timetable_errors(body)
        if errors:
            return SimResponse(400, "\n".join(errors))
        with self._lock:
            self.doctors.update({str(d["Id"]): d["Name"] for d in body["Doctors"]})
            self.branches.update({str(b["Id"]): b["Name"] for b in body["Branches"]})
            received: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = {}
            for interval in body["Intervals"]:
                pair = (str(interval["BranchId"]), str(interval["DoctorId"]))
                day = interval["StartDateTime"][:10]
                received.setdefault(pair, {}).setdefault(day, []).append(interval)
            for branch in body["Branches"]:
                for doctor in body["Doctors"]:
                    pair = (str(branch["Id"]), str(doctor["Id"]))
                    if pair in received:
                        self.timetable.setdefault(pair, {}).update(received[pair])
                    else:
                        self.timetable[pair] = {}
        return SimResponse(200)

    def intervals(self, branch_id: str, doctor_id: str) -> list[dict[str, Any]]:
        """Accepted intervals of a doctor in a branch, in time order."""
        with self._lock:
            days = self.timetable.get((branch_id, doctor_id), {})
            return sorted(
                (interval for day in days.values() for interval in day),
                key=lambda i: datetime.fromisoformat(i["StartDateTime"]),
            )
