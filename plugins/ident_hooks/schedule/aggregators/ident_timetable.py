"""IDENT HTTP integration ``POST PostTimeTable`` (used for СберЗдоровье and 32top).

Body (integrations.md, "The IDENT HTTP integration protocol")::

    {"Doctors": [{"Id", "Name"}], "Branches": [{"Id", "Name"}],
     "Intervals": [{"DoctorId", "BranchId", "StartDateTime", "LengthInMinutes", "IsBusy"}]}

Where each fact comes from:

* **Ids are JSON integers.** Real IDENT sends ``"Id": 1``, ``"DoctorId": 5737``,
  ``"BranchId": 1`` (a body IDENT posted, ``brearey/smmikod``
  ``__tests__/posttimetable.json``); that receiver answers 400 unless every ``Id``,
  ``DoctorId`` and ``BranchId`` is a number (``src/index.ts``, ``/PostTimeTable``) and
  stores them as 32-bit ``INT`` (``src/database/init.sql``). The clinic's ids are text,
  so the ids sent are their aliases from ``integration.ident_ids`` (migration 0007),
  read into the ``ident_id`` column of ``schedule.doctors`` and ``branches`` by
  ``schedule/reader.py``. integrations.md, Corrections, "IDENT HTTP protocol".
* **One request is the whole timetable**: every branch, every published doctor and all
  their intervals. IDENT posts all branches, doctors and 30 days in one request every
  10 minutes (integrations.md, Corrections; IDENT's body above carries 7 doctors and 29
  days, 4,184 intervals, in one request), and a snapshot receiver keeps each POST as
  the latest timetable, so a timetable split into several requests would leave only its
  last part there. Nothing is ever split.
* **Size ceiling**: the receiver's ``max_request_bytes``, by default 50 MiB of JSON, what
  the largest public receiver takes (``bodyParser.json({ limit: '50mb' })`` in
  ``brearey/smmikod`` ``src/index.ts``; its project rules say the limit is there "for
  large timetables", ``.cursor/rules/ident-rules.mdc``; the registry's kind). A larger
  timetable raises :class:`~ident_hooks.schedule.aggregators.RequestTooLarge` naming the
  limit before anything is sent (``Cut.TIMETABLE``);
  body-parser counts the limit on the inflated body, so gzip does not lift it. For
  scale: IDENT's own body above is 458 kB (compact JSON) for 7 doctors over 29 days; a
  2,000-doctor demo network (``bench/schedule_export.py --doctors 2000 --days 33``) is
  about 44 MB.
* Auth: the ``IDENT-Integration-Key`` header (integrations.md, "The IDENT HTTP
  integration protocol"; the registry's ``IDENT_INTEGRATION_KEY``).
* ``StartDateTime`` is ISO 8601 with the branch's UTC offset
  (``2025-12-16T08:00:00+07:00`` in IDENT's body); free slots and busy cells are both
  sent (``IsBusy``), ``LengthInMinutes`` whole minutes. Any 2xx is success, the reply's
  body is ignored (integrations.md).

Assumed (not public): what IDENT sends for a doctor with no intervals. The published
doctors are all listed, with or without intervals, and so is every branch: a snapshot
receiver then shows a fully booked doctor as such instead of keeping stale slots.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from ident_hooks.errors import PermanentFailure
from ident_hooks.registry import IDENT_INTEGRATION_KEY
from ident_hooks.schedule.aggregators import Cut, SchedulePublisher, Timetable
from ident_hooks.schedule.aggregators.rendering import (
    codes_and_labels,
    json_bytes,
    local_minutes,
    render_distinct,
)
from ident_hooks.schedule.engine import MINUTE_LABELS, Schedule, day_label


class MissingIdentId(ValueError, PermanentFailure):
    """A doctor or branch without its IDENT id: the timetable cannot be rendered until the
    reader gives it one (``integration.ident_ids``)."""


class IdentTimetablePublisher(SchedulePublisher):
    """The whole timetable in one ``PostTimeTable`` (see the module notes)."""

    auth = IDENT_INTEGRATION_KEY
    endpoints = {"timetable": "PostTimeTable"}
    cut = Cut.TIMETABLE

    def render_timetable(self, schedule: Schedule, branches: pd.DataFrame) -> Timetable:
        """``schedule.doctors`` and ``branches`` must carry ``ident_id``."""
        doctors = schedule.doctors
        doctor_alias = _aliases(doctors, "doctor_id", "doctors")
        branch_alias = _aliases(branches, "branch_id", "branches")

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

        doctor_codes, doctor_labels = codes_and_labels(cells["doctor_id"])
        branch_codes, branch_labels = codes_and_labels(cells["branch_id"])
        pairs = branch_codes.astype(np.int64) * max(len(doctor_labels), 1) + doctor_codes

        def render_head(row: int) -> bytes:
            return (
                f',{{"DoctorId":{doctor_alias[doctor_labels[doctor_codes[row]]]},'
                f'"BranchId":{branch_alias[branch_labels[branch_codes[row]]]},'
            ).encode()

        # One list of shared fragments, joined once: a 2,000-doctor timetable is ~45 MB,
        # and joining intervals first and the body after would hold it three times over.
        pieces: list[bytes] = [b""] * (2 * len(tails) + 2)
        pieces[0] = b"".join(
            [
                b'{"Doctors":[',
                _references(doctors, "doctor_id", doctor_alias, doctors["full_name"]),
                b'],"Branches":[',
                _references(branches, "branch_id", branch_alias, branches["name"]),
                b'],"Intervals":[',
            ]
        )
        pieces[1:-1:2] = render_distinct(pairs, render_head)
        pieces[2:-1:2] = tails
        if tails:
            pieces[1] = pieces[1][1:]  # no comma before the first interval
        pieces[-1] = b"]}"
        return Timetable(
            pieces,
            tuple(sorted(branches["branch_id"], key=lambda b: branch_alias[b])),
            len(doctors),
            f"the IDENT timetable ({len(doctors)} doctors, {len(branches)} branches,"
            f" {len(tails)} intervals)",
        )


@lru_cache(maxsize=256)
def _offset_label(minutes: int) -> str:
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _aliases(frame: pd.DataFrame, id_column: str, what: str) -> dict[object, int]:
    """``clinic id -> IDENT id`` of a frame that carries ``ident_id``."""
    if "ident_id" not in frame:
        raise MissingIdentId(f"{what} carry no ident_id column (schedule/reader.py reads it)")
    aliases = dict(zip(frame[id_column], frame["ident_id"], strict=True))
    missing = [clinic_id for clinic_id, alias in aliases.items() if pd.isna(alias)]
    if missing:
        raise MissingIdentId(f"{what} without an IDENT id (integration.ident_ids): {missing[:5]}")
    return {clinic_id: int(alias) for clinic_id, alias in aliases.items()}


def _references(
    frame: pd.DataFrame, id_column: str, aliases: dict[object, int], names: pd.Series
) -> bytes:
    """``{"Id": <alias>, "Name": ...}`` entries in IDENT id order."""
    entries = sorted(
        (aliases[clinic_id], str(name) if isinstance(name, str) else "")
        for clinic_id, name in zip(frame[id_column], names, strict=True)
    )
    return b",".join(json_bytes({"Id": alias, "Name": name}) for alias, name in entries)
