"""НаПоправку RTA API: ``POST clinics``, ``POST doctors`` and ``POST slots`` (free time only).

Bodies (``napopravku/rta-api-service-client``: ``src/DTOs/Clinic/Request/ClinicUpdateDTO.php``,
``src/DTOs/Doctor/Request/DoctorUpdateDTO.php``, ``src/DTOs/Slot/Request/*.php``; the
``duration`` split: ``README.md``)::

    {"clinics": [{"mis_clinic_id", "name", "comment"}]}
    {"doctors": [{"mis_doctor_id", "name", "comment", "mis_clinic_ids": [...]}]}
    {"clinics": [{"mis_clinic_id", "doctors": [{"mis_doctor_id", "dates": [
        {"date": "YYYY-MM-DD", "slots": [{"from": "16:00", "to": "17:00", "duration": 15}]}]}]}]}

Auth: ``Authorization: Bearer <token>`` and ``Accept: application/json`` (integrations.md,
НаПоправку RTA API; the registry's ``NAPOPRAVKU_BEARER``).

Consecutive free slots of one length are sent as one range with that
``duration``; the service cuts it back into slots. The requests come in the
order to send them: clinics, doctors, then slots. A clinic's comment is its
address, a doctor's comment their specialty. Only doctors with work time in the
horizon are listed (``mis_clinic_ids`` = branches they work in).

Cadence (``README.md``, «Правила работы с сервисом»; the rule itself is
``skip_unchanged`` in the registry): slots every 10 minutes or more often, sent on every
run whether they changed or not; clinics and doctors daily or more often.

Replies: ``POST clinics`` → ``{"result": {"created", "updated"}}``
(``src/DTOs/Clinic/Result/ClinicListUpdateResultDTO.php``); ``POST doctors`` →
``{"result": {"created", "updated", "matched", "not_matched"}}``
(``src/DTOs/Doctor/Result/DoctorListUpdateResultDTO.php``). ``not_matched`` names the
doctors the service could not link to its own doctor profiles. Its shape is only typed
(``array<string, array<int, string>>``), not described, so
:meth:`NapopravkuPublisher.read_reply` takes it liberally: a list of ids (or of objects
with ``mis_doctor_id``), or an object whose keys are the doctors sent (then the keys) or
anything else, such as clinic ids (then the ids in its lists).

Services (``POST clinics/services``, daily before 19:00 MSK; body
``{"clinic_services": [{"mis_clinic_id", "mis_service_id", "name", "price", "comment"}]}``,
``src/DTOs/ClinicService/Request/ClinicServiceUpdateDTO.php``) are not sent: the clinic
database contract (README, "The clinic database contract") has no table of services or
prices. A clinic that wants them published needs one — per branch a service id, its
name, an integer price in roubles and an optional comment — written by its
practice-management system like the other ``clinic.*`` tables.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ident_hooks.registry import NAPOPRAVKU_BEARER
from ident_hooks.schedule.aggregators import (
    BranchRendering,
    Cut,
    OutgoingRequest,
    ReplyFindings,
    SchedulePublisher,
)
from ident_hooks.schedule.aggregators.rendering import (
    codes_and_labels,
    doctor_days,
    doctor_names,
    group_starts,
    json_bytes,
    json_text,
    local_minutes,
    render_distinct,
)
from ident_hooks.schedule.engine import MINUTE_LABELS, Schedule, horizon_dates


class NapopravkuPublisher(SchedulePublisher):
    """Clinics, doctors, then each branch's free ranges, split below the limit."""

    auth = NAPOPRAVKU_BEARER
    endpoints = {"clinics": "clinics", "doctors": "doctors", "slots": "slots"}
    cut = Cut.BRANCH_SPLIT
    reads_replies = True

    def reference_entries(
        self, schedule: Schedule, branches: pd.DataFrame
    ) -> Mapping[str, list[bytes]]:
        """A clinic's comment is its address, a doctor's their specialty."""
        addresses = (
            branches["address"] if "address" in branches else pd.Series([None] * len(branches))
        )
        names = doctor_names(schedule)
        clinic_ids = schedule.assignments.groupby("doctor_id", sort=True)["branch_id"].agg(list)
        return {
            "clinics": [
                json_bytes(
                    {
                        "mis_clinic_id": str(branch_id),
                        "name": str(name),
                        "comment": address if isinstance(address, str) else "",
                    }
                )
                for branch_id, name, address in zip(
                    branches["branch_id"], branches["name"], addresses, strict=True
                )
            ],
            "doctors": [
                json_bytes(
                    {
                        "mis_doctor_id": str(doctor_id),
                        "name": names[doctor_id][0],
                        "comment": names[doctor_id][1],
                        "mis_clinic_ids": [str(b) for b in branch_ids],
                    }
                )
                for doctor_id, branch_ids in clinic_ids.items()
            ],
        }

    def render_branches(self, schedule: Schedule, branches: pd.DataFrame) -> BranchRendering:
        runs, fragments = _free_ranges(schedule)
        # Every date of the horizon goes, an empty one as "slots": []: the service keeps
        # slots per clinic, doctor and date, so a date left out would keep offering what it
        # had (a day booked up since, or withdrawn while the clinic's data is stale).
        with_slots = {
            (branch, doctor): dict(zip(dates, rendered, strict=True))
            for (branch, doctor), (dates, rendered) in _days_by_date(runs, fragments).items()
        }
        zones = _branch_zones(schedule, branches)
        dates_of = {branch: horizon_dates(schedule, zone) for branch, zone in zones.items()}
        days = {
            (branch, doctor): [
                with_slots.get((branch, doctor), {}).get(date) or _render_day(date, [])
                for date in dates_of.get(branch, [])
            ]
            for branch, doctor in zip(
                schedule.assignments["branch_id"].astype(str),
                schedule.assignments["doctor_id"].astype(str),
                strict=True,
            )
        }
        return BranchRendering(days, _render_doctor, _render_document)

    def read_reply(self, request: OutgoingRequest, response: Any) -> ReplyFindings:
        """The ``not_matched`` doctors of a ``POST doctors`` reply (see the module notes)."""
        if request.kind != "doctors":
            return ReplyFindings()
        try:
            body = response.json()
        except ValueError:
            return ReplyFindings()
        result = body.get("result") if isinstance(body, dict) else None
        if not isinstance(result, dict) or "not_matched" not in result:
            return ReplyFindings()
        not_matched = result["not_matched"]
        if isinstance(not_matched, dict):
            sent = {str(doctor["mis_doctor_id"]) for doctor in json.loads(request.body)["doctors"]}
            keys = {str(key) for key in not_matched}
            if keys and keys <= sent:
                found = list(keys)
            else:
                found = [doctor for entries in not_matched.values() for doctor in _ids(entries)]
        else:
            found = _ids(not_matched or [])
        return ReplyFindings(not_matched_doctors=tuple(sorted(set(found))))


def _free_ranges(schedule: Schedule) -> tuple[pd.DataFrame, list[bytes]]:
    """Runs of back-to-back free slots of one length, and each run's rendered fragment."""
    free = schedule.free
    day, start, end = local_minutes(free)
    length = free["length_minutes"].to_numpy()
    branch, _ = codes_and_labels(free["branch_id"])
    doctor, _ = codes_and_labels(free["doctor_id"])
    run_starts = group_starts(branch, doctor, day, length)[:-1]
    if len(start):
        broken = np.ones(len(start), dtype=bool)
        broken[1:] = start[1:] != end[:-1]
        run_starts = np.union1d(run_starts, np.flatnonzero(broken))
    # Each run ends where the next begins; no runs at all when nothing is free.
    run_ends = np.append(run_starts[1:], len(start))[: len(run_starts)] - 1
    runs = free.iloc[run_starts].reset_index(drop=True)
    run_day, run_from = day[run_starts], start[run_starts]
    run_to, run_length = end[run_ends], length[run_starts]
    keys = ((run_day * 1441 + run_from) * 1441 + run_to) * 481 + run_length

    def render_range(row: int) -> bytes:
        return (
            f'{{"from":"{MINUTE_LABELS[run_from[row]]}","to":"{MINUTE_LABELS[run_to[row]]}",'
            f'"duration":{int(run_length[row])}}}'
        ).encode()

    return runs, render_distinct(keys, render_range)


def _render_day(date: str, ranges: list[bytes]) -> bytes:
    return b'{"date":"' + date.encode() + b'","slots":[' + b",".join(ranges) + b"]}"


def _render_doctor(doctor_id: str, rendered_days: list[bytes]) -> bytes:
    return (
        b'{"mis_doctor_id":'
        + json_text(doctor_id)
        + b',"dates":['
        + b",".join(rendered_days)
        + b"]}"
    )


def _render_document(branch_id: str, blocks: list[tuple[str, bytes]]) -> bytes:
    return (
        b'{"clinics":[{"mis_clinic_id":'
        + json_text(branch_id)
        + b',"doctors":['
        + b",".join(block for _, block in blocks)
        + b"]}]}"
    )


def _branch_zones(schedule: Schedule, branches: pd.DataFrame) -> dict[str, str]:
    """Each branch's time zone: from the clinic's branches, else from its cells."""
    cells = schedule.cells[["branch_id", "timezone"]].drop_duplicates().astype(str)
    zones = dict(zip(cells["branch_id"], cells["timezone"], strict=True))
    if "timezone" in branches:
        zones.update(
            zip(branches["branch_id"].astype(str), branches["timezone"].astype(str), strict=True)
        )
    return zones


def _days_by_date(
    runs: pd.DataFrame, fragments: list[bytes]
) -> dict[tuple[str, str], tuple[list[str], list[bytes]]]:
    """Like :func:`~ident_hooks.schedule.aggregators.rendering.doctor_days`, with each
    rendered day's date beside it."""
    dates: dict[tuple[str, str], list[str]] = {}

    def remember(branch: str, doctor: str, date: str, ranges: list[bytes]) -> bytes:
        dates.setdefault((branch, doctor), []).append(date)
        return _render_day(date, ranges)

    rendered = doctor_days(runs, fragments, remember)
    return {pair: (dates[pair], days) for pair, days in rendered.items()}


def _ids(entries: Any) -> list[str]:
    """Ids from a list of ids or of objects with ``mis_doctor_id``."""
    if not isinstance(entries, list):
        entries = [entries]
    found = []
    for entry in entries:
        if isinstance(entry, dict):
            entry = entry.get("mis_doctor_id")
        if isinstance(entry, str | int) and not isinstance(entry, bool) and str(entry):
            found.append(str(entry))
    return found
