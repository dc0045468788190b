"""Fast JSON rendering of a computed schedule, shared by the publishers.

Bodies are rendered straight to UTF-8 JSON bytes: fragments are formatted once per
distinct value (a date, a time, a slot) and joined per doctor-day, which is what keeps a
2,000-doctor network within the benchmark budget (``bench/schedule_export.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any

import numpy as np
import pandas as pd

from ident_hooks.schedule.engine import SECONDS_PER_DAY, Schedule


def json_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def json_text(value: Any) -> bytes:
    """``str(value)`` as a JSON string literal (the fast path for ids and names)."""
    return encode_basestring(str(value)).encode("utf-8")


def codes_and_labels(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes and their labels; free for the engine's categorical columns."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.codes.to_numpy(), column.cat.categories.to_numpy(dtype=object)
    codes, uniques = pd.factorize(column)
    return codes, np.asarray(uniques, dtype=object)


def local_minutes(cells: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per cell: local day number (days since 1970-01-01), start and end minute of that day."""
    utc_seconds = cells["starts_at"].dt.as_unit("s").astype("int64").to_numpy()
    local = utc_seconds + cells["utc_offset_minutes"].to_numpy() * 60
    day = local // SECONDS_PER_DAY
    start_minute = (local % SECONDS_PER_DAY) // 60
    return day, start_minute, start_minute + cells["length_minutes"].to_numpy()


def render_distinct(keys: np.ndarray, render: Callable[[int], bytes]) -> list[bytes]:
    """``render(row)`` once per distinct key, spread back to every row."""
    codes, uniques = pd.factorize(keys)
    # Any row of a key renders the same fragment, so whichever write wins is fine.
    first_rows = np.empty(len(uniques), dtype=np.int64)
    first_rows[codes] = np.arange(len(codes))
    fragments = np.array([render(int(row)) for row in first_rows], dtype=object)
    return fragments[codes].tolist() if len(codes) else []


def group_starts(*columns: np.ndarray) -> np.ndarray:
    """Row indices where any of the (sorted) columns changes value, plus the end."""
    length = len(columns[0])
    change = np.zeros(length, dtype=bool)
    if length:
        change[0] = True
        for column in columns:
            change[1:] |= column[1:] != column[:-1]
    return np.append(np.flatnonzero(change), length)


def doctor_days(
    frame: pd.DataFrame,
    fragments: list[bytes],
    join_day: Callable[[str, str, str, list[bytes]], bytes],
) -> dict[tuple[str, str], list[bytes]]:
    """``(branch_id, doctor_id) -> [rendered day, ...]`` from fragments sorted like ``frame``.

    ``frame`` is sorted by branch, doctor and start (as the engine returns it);
    ``join_day(branch_id, doctor_id, local_date, day_fragments)`` renders one day.
    """
    branch, branch_labels = codes_and_labels(frame["branch_id"])
    doctor, doctor_labels = codes_and_labels(frame["doctor_id"])
    date, date_labels = codes_and_labels(frame["local_date"])
    bounds = group_starts(branch, doctor, date)
    days: dict[tuple[str, str], list[bytes]] = {}
    for start, stop in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        pair = (branch_labels[branch[start]], doctor_labels[doctor[start]])
        days.setdefault(pair, []).append(
            join_day(pair[0], pair[1], date_labels[date[start]], fragments[start:stop])
        )
    return days


def branch_doctors(
    schedule: Schedule, days: Mapping[tuple[str, str], list[bytes]]
) -> Iterator[tuple[str, list[tuple[str, list[bytes]]]]]:
    """Per branch (sorted), its assigned doctors (sorted) with their rendered days (maybe none)."""
    assignments = schedule.assignments
    branch = assignments["branch_id"].to_numpy(dtype=object)
    doctor = assignments["doctor_id"].to_numpy(dtype=object)
    bounds = group_starts(branch)
    for start, stop in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        branch_id = branch[start]
        yield (
            branch_id,
            [(d, days.get((branch_id, d), [])) for d in doctor[start:stop].tolist()],
        )


def doctor_names(schedule: Schedule) -> dict[str, tuple[str, str]]:
    """``doctor_id -> (full name, specialty)`` of the published doctors."""
    published = schedule.doctors
    return {
        doctor_id: (str(name or ""), str(specialty) if isinstance(specialty, str) else "")
        for doctor_id, name, specialty in zip(
            published["doctor_id"], published["full_name"], published["specialty"], strict=True
        )
    }


def branch_names(branches: pd.DataFrame) -> dict[str, str]:
    return {
        branch_id: str(name or "")
        for branch_id, name in zip(branches["branch_id"], branches["name"], strict=True)
    }
