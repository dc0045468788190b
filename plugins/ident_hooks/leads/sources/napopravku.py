"""НаПоправку RTA API: bookings from ``GET appointments``, acknowledged one by one.

Connection host ``https://rta-api.napopravku.ru/api/v1``, ``Authorization: Bearer <token>``;
replies are wrapped in ``{"result": ...}``. Unacknowledged bookings (``is_received=false``)
are read page by page (``paging[per_page]`` ≤ 100) up to ``meta.last_page``, oldest first.

Only ``from`` of the period is sent: whether ``from``/``to`` filter the creation time or the
visit time is not documented, and a ``to`` of "now" on the visit time would hide every future
booking. ``from`` (00:00 of the last lead's day) is safe under either reading.

The service cancels a booking not acknowledged within 10 minutes of creation, so the DAG
calls ``acknowledge`` for each booking right after the lead is committed.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
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
from ident_hooks.leads.sources import SourceError, SourceSettings, read_json, unique_by

APPOINTMENTS = "appointments"
SET_RECEIVED = "appointments/set-received"
MAX_PAGE_SIZE = 100


def _result(response: Any) -> Any:
    body = read_json(response, "napopravku")
    if not isinstance(body, dict) or "result" not in body:
        raise SourceError("napopravku", f"reply without result: {str(body)[:200]!r}")
    return body["result"]


def _pages(client: Any, period_from: datetime, settings: SourceSettings):
    params: dict[str, Any] = {
        "is_received": "false",
        "from": period_from.astimezone(settings.timezone).strftime("%Y-%m-%d %H:%M:%S"),
        "paging[per_page]": min(settings.page_size or MAX_PAGE_SIZE, MAX_PAGE_SIZE),
        "sorting[sort_by]": "created_at",
        "sorting[sort_dir]": "asc",
    }
    page = 1
    while True:
        result = _result(
            client.request("GET", APPOINTMENTS, params={**params, "paging[page]": page})
        )
        if not isinstance(result, dict) or not isinstance(result.get("items"), list):
            raise SourceError("napopravku", f"result without items: {str(result)[:200]!r}")
        yield from result["items"]
        last_page = (result.get("meta") or {}).get("last_page")
        if not result["items"] or not isinstance(last_page, int) or page >= last_page:
            return
        page += 1


def fetch(
    client: Any, period_from: datetime, period_to: datetime, *, settings: SourceSettings
) -> Iterator[dict[str, Any]]:
    """Every unacknowledged booking created since ``period_from`` (see the module notes)."""
    return unique_by(_pages(client, period_from, settings), lambda item: item.get("uuid"))


def acknowledge(client: Any, external_id: str, *, success: bool = True, message: str = "") -> Any:
    """Tell the service the booking is stored (or, with ``success=False``, why it is not)."""
    return _result(
        client.request(
            "POST",
            SET_RECEIVED,
            json={"appointment_uuid": external_id, "success": success, "message": message},
        )
    )


def _nested_id(raw: dict[str, Any], key: str, id_key: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise RejectedRecord(f"{key}: expected an object, got {type(value).__name__}")
    return clean_text(value.get(id_key), f"{key}.{id_key}")


def parse(raw: Any, *, settings: SourceSettings, matcher: DoctorMatcher) -> Lead:
    if not isinstance(raw, dict):
        raise RejectedRecord(f"record is not an object: {type(raw).__name__}")
    tz = settings.timezone
    name_parts = [
        clean_text(raw.get(key), key)
        for key in ("patient_surname", "patient_firstname", "patient_father_name")
    ]
    mis_doctor_id = _nested_id(raw, "doctor", "mis_doctor_id")
    return make_lead(
        source=settings.source,
        external_id=record_id(raw.get("uuid"), "uuid"),
        created_at=parse_time(raw.get("created_at"), tz, "created_at"),
        raw=raw,
        name=" ".join(part for part in name_parts if part) or None,
        phone=clean_text(raw.get("patient_phone"), "patient_phone"),
        email=clean_text(raw.get("patient_email"), "patient_email"),
        comment=clean_text(raw.get("comment"), "comment"),
        doctor_id=matcher.match(mis_doctor_id),
        doctor_name_raw=mis_doctor_id,
        requested_start=parse_time(raw.get("start_time"), tz, "start_time", required=False),
        requested_end=parse_time(raw.get("end_time"), tz, "end_time", required=False),
        branch_id=_nested_id(raw, "clinic", "mis_clinic_id"),
    )
