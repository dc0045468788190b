"""ПроДокторов schedule API simulator: ``POST /v2/doctors/send_schedule/``.

Follows integrations.md: ``Authorization: Token <token>``, JSON body
``{"schedule": {"data": {branch: {doctor: {"efio", "espec", "cells": [...]}}}}}``,
success 204 with no body. The service is a Django REST Framework one (its
``Token`` scheme is DRF's), so errors are answered the DRF way (an assumption):
401 ``{"detail": ...}`` with ``WWW-Authenticate: Token``, 415 for a body that
is not JSON, 400 ``{"detail": ..., "errors": [...]}`` for a wrong shape, 413
over ``max_body_bytes``.

What it accepted is kept in ``schedules[branch_id][doctor_id]``:
``{"efio", "espec", "cells": {date: [cells]}}``. A request replaces the dates it
sends for each doctor it names; a doctor sent with no cells is cleared.
"""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any

from ident_hooks.simulators.base import SimRequest, SimResponse, SimulatorServer

_HHMM = re.compile(r"([01]\d|2[0-3]):[0-5]\d|24:00")
_CELL_REQUIRED = {"dt", "time_start", "time_end", "free"}
_CELL_OPTIONAL = {"room"}


def _schedule_errors(body: Any) -> list[str]:
    """Every way ``body`` departs from the documented shape (empty when it is fine)."""
    errors: list[str] = []
    if not isinstance(body, dict) or set(body) != {"schedule"}:
        return ['the body must be {"schedule": {"data": {...}}}']
    schedule = body["schedule"]
    if not isinstance(schedule, dict) or set(schedule) != {"data"}:
        return ['schedule must be {"data": {...}}']
    data = schedule["data"]
    if not isinstance(data, dict) or not data:
        return ["schedule.data must be a non-empty object keyed by branch id"]
    for branch_id, doctors in data.items():
        where = f"schedule.data.{branch_id}"
        if not branch_id or not isinstance(doctors, dict) or not doctors:
            errors.append(f"{where}: a branch id must map to a non-empty object of doctors")
            continue
        for doctor_id, doctor in doctors.items():
            errors.extend(_doctor_errors(f"{where}.{doctor_id}", doctor_id, doctor))
    return errors


def _doctor_errors(where: str, doctor_id: str, doctor: Any) -> list[str]:
    if not doctor_id or not isinstance(doctor, dict):
        return [f"{where}: a doctor id must map to an object"]
    missing = {"efio", "espec", "cells"} - set(doctor)
    unknown = set(doctor) - {"efio", "espec", "cells"}
    if missing or unknown:
        return [f"{where}: missing {sorted(missing)}, not allowed {sorted(unknown)}"]
    errors = []
    if not isinstance(doctor["efio"], str) or not doctor["efio"].strip():
        errors.append(f"{where}.efio: must be a non-empty string")
    if not isinstance(doctor["espec"], str):
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
        start, end = cell["time_start"], cell["time_end"]
        if not (isinstance(start, str) and _HHMM.fullmatch(start) and start != "24:00"):
            errors.append(f"{at}.time_start: must be HH:MM")
        elif not (isinstance(end, str) and _HHMM.fullmatch(end)) or end <= start:
            errors.append(f"{at}.time_end: must be HH:MM after time_start")
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
        self.schedules: dict[str, dict[str, dict[str, Any]]] = {}
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
        with self._lock:
            for branch_id, doctors in body["schedule"]["data"].items():
                for doctor_id, doctor in doctors.items():
                    kept = self.schedules.setdefault(branch_id, {}).setdefault(
                        doctor_id, {"efio": "", "espec": "", "cells": {}}
                    )
                    kept.update(efio=doctor["efio"], espec=doctor["espec"])
                    if not doctor["cells"]:
                        kept["cells"] = {}
                    by_date: dict[str, list[dict[str, Any]]] = {}
                    for cell in doctor["cells"]:
                        by_date.setdefault(cell["dt"], []).append(cell)
                    kept["cells"].update(by_date)
        return SimResponse(204)

    def cells(self, branch_id: str, doctor_id: str) -> list[dict[str, Any]]:
        """The doctor's accepted cells in one branch, in date and time order."""
        with self._lock:
            doctor = self.schedules.get(branch_id, {}).get(doctor_id, {"cells": {}})
            return [
                cell
                for day in sorted(doctor["cells"])
                for cell in sorted(doctor["cells"][day], key=lambda c: c["time_start"])
            ]
