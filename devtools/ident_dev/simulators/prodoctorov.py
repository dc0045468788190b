"""ПроДокторов schedule API simulator: ``POST /v2/doctors/send_schedule/``.

What it checks, and where each fact comes from:

* ``Authorization: Token <token>``, JSON body, success 204 with no body:
  integrations.md (ПроДокторов); the Go client ``mkv/prodoctorov`` sends the same
  (``internal/service/prodoctorov/config.go``, ``upload.go``).
* The body is ``{"schedule": {"<branch id>": "<branch name>", "data": {"<branch id>":
  {"<doctor id>": {"efio", "espec", "cells": [...]}}}}}``: every branch in ``data``
  needs its name beside ``data`` (integrations.md, Corrections, December 2026 →
  ПроДокторов; the Go client refuses to run without it, ``config.go``
  ``ErrNoFilialName``; ``schedule_test.go`` shows a whole body). A body without it
  is answered 400.
* Cells: ``dt`` ``YYYY-MM-DD``, ``time_start``/``time_end`` ``HH:MM`` (Go layouts
  ``2006-01-02`` and ``15:04`` in ``internal/service/prodoctorov/schedule.go``),
  ``free`` a boolean, ``room`` an optional string. A cell whose ``time_start >=
  time_end`` is refused, as the Go client refuses to write one (``AddTimeCell``,
  ``ErrStartAfterEnd``); ``24:00`` is refused anywhere, since ``15:04`` cannot
  produce it and no public client writes it. ``espec`` is optional: the TypeScript
  MedFlex client ``ClawedRex555-creator/dental-mental`` sends doctors with ``efio``
  and ``cells`` only (``lib/medflex/schedule.server.ts``).

Assumed (not public): the service is a Django REST Framework one (its ``Token``
scheme is DRF's), so errors are answered the DRF way: 401 ``{"detail": ...}`` with
``WWW-Authenticate: Token``, 415 for a body that is not JSON, 400 ``{"detail": ...,
"errors": [...]}`` for a wrong shape, 413 over ``max_body_bytes``. How the service
stores what it gets is not public either; this simulator keeps **one document per
branch**, as every public client sends it (one branch a request, whole — the Go
client's single ``filial_id``, the TypeScript client's full upload every 15
minutes): ``schedules[branch_id] = {"name", "doctors": {doctor_id: {"efio",
"espec", "cells": [...]}}}``, and a request **replaces** the document of every
branch it carries. A branch split over several requests is therefore left with
its last part only, and a doctor no longer sent is gone.
"""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any

from ident_dev.simulators.base import SimRequest, SimResponse, SimulatorServer

_HHMM = re.compile(r"([01]\d|2[0-3]):[0-5]\d")
_CELL_REQUIRED = {"dt", "time_start", "time_end", "free"}
_CELL_OPTIONAL = {"room"}
_DOCTOR_REQUIRED = {"efio", "cells"}
_DOCTOR_OPTIONAL = {"espec"}


def _schedule_errors(body: Any) -> list[str]:
    """Every way ``body`` departs from the public shape (empty when it is fine)."""
    if not isinstance(body, dict) or set(body) != {"schedule"}:
        return ['the body must be {"schedule": {"<branch id>": "<name>", "data": {...}}}']
    schedule = body["schedule"]
    if not isinstance(schedule, dict) or "data" not in schedule:
        return ['schedule must be {"<branch id>": "<branch name>", "data": {...}}']
    data = schedule["data"]
    if not isinstance(data, dict) or not data:
        return ["schedule.data must be a non-empty object keyed by branch id"]
    errors: list[str] = []
    for key, name in schedule.items():
        if key != "data" and not isinstance(name, str):
            errors.append(f"schedule.{key}: a branch name must be a string")
    for branch_id, doctors in data.items():
        where = f"schedule.data.{branch_id}"
        name = schedule.get(branch_id)
        if not isinstance(name, str) or not name.strip():
            errors.append(
                f"schedule.{branch_id}: the branch name is required beside data"
                f' ("{branch_id}": "<name>")'
            )
        if not branch_id or not isinstance(doctors, dict) or not doctors:
            errors.append(f"{where}: a branch id must map to a non-empty object of doctors")
            continue
        for doctor_id, doctor in doctors.items():
            errors.extend(_doctor_errors(f"{where}.{doctor_id}", doctor_id, doctor))
    return errors


def _doctor_errors(where: str, doctor_id: str, doctor: Any) -> list[str]:
    if not doctor_id or not isinstance(doctor, dict):
        return [f"{where}: a doctor id must map to an object"]
    missing = _DOCTOR_REQUIRED - set(doctor)
    unknown = set(doctor) - _DOCTOR_REQUIRED - _DOCTOR_OPTIONAL
    if missing or unknown:
        return [f"{where}: missing {sorted(missing)}, not allowed {sorted(unknown)}"]
    errors = []
    if not isinstance(doctor["efio"], str) or not doctor["efio"].strip():
        errors.append(f"{where}.efio: must be a non-empty string")
    if "espec" in doctor and not isinstance(doctor["espec"], str):
        errors.append(f"{where}.espec: must be a string")
    if not isinstance(doctor["cells"], list):
        return [*errors, f"{where}.cells: must be a list"]
    spans: dict[str, list[tuple[str, str]]] = {}
    for index, cell in enumerate(doctor["cells"]):
        at = f"{where}.cells[{index}]"
        if not isinstance(cell, dict) or not _CELL_REQUIRED <= set(cell) <= (
            _CELL_REQUIRED | _CELL_OPTIONAL
        ):
            errors.append(f"{at}: needs dt, time_start, time_end, free (room optional)")
            continue
        try:
            date.fromisoformat(cell["dt"])
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", cell["dt"]):
                raise ValueError
        except (TypeError, ValueError):
            errors.append(f"{at}.dt: must be a YYYY-MM-DD date")
            continue
        times = [_time_error(f"{at}.{name}", cell[name]) for name in ("time_start", "time_end")]
        errors.extend(problem for problem in times if problem)
        start, end = cell["time_start"], cell["time_end"]
        if not any(times):
            if start >= end:
                errors.append(f"{at}.time_end: must be after time_start ({start} >= {end})")
            else:
                spans.setdefault(cell["dt"], []).append((start, end))
        if not isinstance(cell["free"], bool):
            errors.append(f"{at}.free: must be true or false")
        if "room" in cell and not isinstance(cell["room"], str):
            errors.append(f"{at}.room: must be a string")
    for day, day_spans in spans.items():
        day_spans.sort()
        for (_, previous_end), (start, _) in zip(day_spans, day_spans[1:], strict=False):
            if start < previous_end:
                errors.append(f"{where}: cells overlap on {day} at {start}")
    return errors


def _time_error(at: str, value: Any) -> str | None:
    if value == "24:00":
        return f"{at}: 24:00 is not a time of day; the last minute is 23:59"
    if not (isinstance(value, str) and _HHMM.fullmatch(value)):
        return f"{at}: must be HH:MM"
    return None


class ProdoctorovSimulator(SimulatorServer):
    name = "prodoctorov"

    def __init__(
        self,
        *,
        token: str = "prodoctorov-token",
        max_body_bytes: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host, port)
        self.token = token
        self.max_body_bytes = max_body_bytes
        self.schedules: dict[str, dict[str, Any]] = {}
        self.route("POST", "/v2/doctors/send_schedule/", self._send_schedule)

    def authorize(self, request: SimRequest) -> SimResponse | None:
        header = request.headers.get("authorization")
        if header is None:
            message = "Authentication credentials were not provided."
        elif header != f"Token {self.token}":
            message = "Invalid token."
        else:
            return None
        return SimResponse(401, {"detail": message}, {"WWW-Authenticate": "Token"})

    def _send_schedule(self, request: SimRequest) -> SimResponse:
        if self.max_body_bytes is not None and len(request.body) > self.max_body_bytes:
            return SimResponse(413, {"detail": "Request body is too large."})
        if not request.headers.get("content-type", "").startswith("application/json"):
            return SimResponse(415, {"detail": "Unsupported media type in request."})
        try:
            body = json.loads(request.body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return SimResponse(400, {"detail": f"JSON parse error - {exc}"})
        errors = _schedule_errors(body)
        if errors:
            return SimResponse(400, {"detail": "Invalid schedule.", "errors": errors})
        schedule = body["schedule"]
        with self._lock:
            for branch_id, doctors in schedule["data"].items():
                self.schedules[branch_id] = {
                    "name": schedule[branch_id],
                    "doctors": {
                        doctor_id: {
                            "efio": doctor["efio"],
                            "espec": doctor.get("espec", ""),
                            "cells": sorted(
                                doctor["cells"], key=lambda c: (c["dt"], c["time_start"])
                            ),
                        }
                        for doctor_id, doctor in doctors.items()
                    },
                }
        return SimResponse(204)

    def cells(self, branch_id: str, doctor_id: str) -> list[dict[str, Any]]:
        """The doctor's cells in the branch's current document, in date and time order."""
        with self._lock:
            branch = self.schedules.get(branch_id, {"doctors": {}})
            return list(branch["doctors"].get(doctor_id, {"cells": []})["cells"])
