"""IDENT HTTP integration ``POST PostTimeTable`` (used for СберЗдоровье and 32top).

Body (integrations.md)::

    {"Doctors": [{"Id", "Name"}], "Branches": [{"Id", "Name"}],
     "Intervals": [{"DoctorId", "BranchId", "StartDateTime", "LengthInMinutes", "IsBusy"}]}

``StartDateTime`` is ISO 8601 with the branch's UTC offset
(``2026-12-01T10:00:00+05:00``). Free slots and busy cells are both sent. Ids
are sent as JSON strings, as the clinic database keeps them (IDENT's own ids
are numbers; the protocol page does not say which type partners must use). Each
request names one branch and the doctors whose intervals it carries.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from ident_hooks.schedule.aggregators import (
    OutgoingRequest,
    branch_doctors,
    branch_names,
    doctor_days,
    doctor_names,
    json_bytes,
    json_text,
    local_minutes,
    pack_branch,
    render_distinct,
)
from ident_hooks.schedule.engine import MINUTE_LABELS, Schedule, day_label

ENDPOINT = "PostTimeTable"


@lru_cache(maxsize=256)
def _offset_label(minutes: int) -> str:
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def build_requests(
    schedule: Schedule, branches: pd.DataFrame, *, max_request_bytes: int
) -> list[OutgoingRequest]:
    """One request per branch, or several when the branch exceeds ``max_request_bytes``."""
    cells = schedule.cells
    day, start, _ = local_minutes(cells)
    offset = cells["utc_offset_minutes"].to_numpy()
    length = cells["length_minutes"].to_numpy()
    busy = ~cells["is_free"].to_numpy()
    # Offsets are within ±24 h, lengths within a day: the packed key stays unique.
    keys = (((day * 1440 + start) * 2881 + offset + 1440) * 1441 + length) * 2 + busy

    def render_tail(row: int) -> bytes:
        return (
            f'"StartDateTime":"{day_label(int(day[row]))}T{MINUTE_LABELS[start[row]]}:00'
            f'{_offset_label(int(offset[row]))}","LengthInMinutes":{int(length[row])},'
            f'"IsBusy":{"true" if busy[row] else "false"}}}'
        ).encode()

    tails = render_distinct(keys.astype(np.int64), render_tail)

    heads: dict[tuple[str, str], tuple[bytes, bytes]] = {}

    def join_day(branch_id: str, doctor_id: str, _date: str, parts: list[bytes]) -> bytes:
        head, separator = heads.get((branch_id, doctor_id)) or heads.setdefault(
            (branch_id, doctor_id),
            (
                b'{"DoctorId":'
                + json_text(doctor_id)
                + b',"BranchId":'
                + json_text(branch_id)
                + b",",
                b',{"DoctorId":'
                + json_text(doctor_id)
                + b',"BranchId":'
                + json_text(branch_id)
                + b",",
            ),
        )
        return head + separator.join(parts)

    days = doctor_days(cells, tails, join_day)
    names = doctor_names(schedule)
    branch_titles = branch_names(branches)
    doctor_entries = {
        doctor_id: json_bytes({"Id": str(doctor_id), "Name": full_name})
        for doctor_id, (full_name, _specialty) in names.items()
    }

    def render_request(branch_id: str, blocks: list[tuple[str, bytes]]) -> bytes:
        doctor_ids = list(dict.fromkeys(doctor_id for doctor_id, _ in blocks))
        branch_entry = {"Id": str(branch_id), "Name": branch_titles.get(branch_id, "")}
        return b"".join(
            [
                b'{"Doctors":[',
                b",".join(doctor_entries[d] for d in doctor_ids),
                b'],"Branches":[',
                json_bytes(branch_entry),
                b'],"Intervals":[',
                b",".join(block for _, block in blocks if block),
                b"]}",
            ]
        )

    requests = []
    for branch_id, doctors in branch_doctors(schedule, days):
        for body, doctor_count in pack_branch(
            branch_id,
            doctors,
            render_doctor=lambda _doctor, rendered_days: b",".join(rendered_days),
            render_request=render_request,
            doctor_overhead=lambda doctor_id: len(doctor_entries[doctor_id]) + 1,
            max_request_bytes=max_request_bytes,
        ):
            requests.append(
                OutgoingRequest(ENDPOINT, body, "timetable", (branch_id,), doctor_count)
            )
    return requests
