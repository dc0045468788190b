"""ПроДокторов: ``POST v2/doctors/send_schedule/`` with free and busy cells.

Body (integrations.md)::

    {"schedule": {"data": {"<branch id>": {"<doctor id>": {
        "efio": "<full name>", "espec": "<specialty>",
        "cells": [{"dt": "YYYY-MM-DD", "time_start": "HH:MM", "time_end": "HH:MM",
                   "free": true}]}}}}}

Times are branch-local. Every assigned doctor is listed, with ``cells: []`` when
nothing of theirs is left in the horizon, so a stale schedule is replaced.
``room`` is optional and not sent: the clinic database keeps no rooms.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ident_hooks.schedule.aggregators import (
    OutgoingRequest,
    branch_doctors,
    doctor_days,
    doctor_names,
    json_text,
    local_minutes,
    pack_branch,
    render_distinct,
)
from ident_hooks.schedule.engine import MINUTE_LABELS, Schedule, day_label

ENDPOINT = "v2/doctors/send_schedule/"


def build_requests(
    schedule: Schedule, branches: pd.DataFrame, *, max_request_bytes: int
) -> list[OutgoingRequest]:
    """One request per branch, or several when the branch exceeds ``max_request_bytes``."""
    cells = schedule.cells
    day, start, end = local_minutes(cells)
    free = cells["is_free"].to_numpy()
    keys = ((day * 1441 + start) * 1441 + end) * 2 + free.astype(np.int64)

    def render_cell(row: int) -> bytes:
        return (
            f'{{"dt":"{day_label(int(day[row]))}","time_start":"{MINUTE_LABELS[start[row]]}",'
            f'"time_end":"{MINUTE_LABELS[end[row]]}","free":{"true" if free[row] else "false"}}}'
        ).encode()

    fragments = render_distinct(keys, render_cell)
    days = doctor_days(cells, fragments, lambda _branch, _doctor, _date, parts: b",".join(parts))
    names = doctor_names(schedule)

    def render_doctor(doctor_id: str, rendered_days: list[bytes]) -> bytes:
        full_name, specialty = names[doctor_id]
        return b"".join(
            [
                json_text(doctor_id),
                b':{"efio":',
                json_text(full_name),
                b',"espec":',
                json_text(specialty),
                b',"cells":[',
                b",".join(rendered_days),
                b"]}",
            ]
        )

    def render_request(branch_id: str, blocks: list[tuple[str, bytes]]) -> bytes:
        return b"".join(
            [
                b'{"schedule":{"data":{',
                json_text(branch_id),
                b":{",
                b",".join(block for _, block in blocks),
                b"}}}}",
            ]
        )

    requests = []
    for branch_id, doctors in branch_doctors(schedule, days):
        for body, doctor_count in pack_branch(
            branch_id,
            doctors,
            render_doctor=render_doctor,
            render_request=render_request,
            doctor_overhead=lambda _doctor: 0,
            max_request_bytes=max_request_bytes,
        ):
            requests.append(OutgoingRequest(ENDPOINT, body, "schedule", (branch_id,), doctor_count))
    return requests
