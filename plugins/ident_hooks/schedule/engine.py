"""Doctors' free time: work intervals minus busy time, cut into slots.

Pure, vectorised functions (pandas/numpy, no I/O, no per-slot Python loops).

Rules implemented (issue 3):

* Horizon: the branch-local dates ``today .. today + days_ahead`` inclusive
  (НаПоправку always ``today + 32``). Work intervals are cut at branch-local
  midnights, so every slot and cell belongs to exactly one local date.
* Doctors: active ones, minus those whose rule for the aggregator says
  ``publish = false``; a rule's ``slot_minutes`` overrides the aggregator's.
* Busy time is per doctor, whatever the branch: a doctor cannot be in two places,
  so an appointment in one branch blocks the same time in every branch.
* Free slots are cut from the start of each free stretch; a remainder shorter
  than a slot is not offered. On the branch's today no slot starts before
  ``now + skip_hours_today``; nothing in the past is ever published (busy cells
  are clipped to start at the current minute and span whole minutes).
* The day ends before midnight (issue 9): no slot or cell ends at 24:00 of its day,
  which no HH:MM format is known to accept (and ``00:00`` would be an end before the
  start). A free slot that would end at the local
  midnight is not offered; a busy cell that would end there ends at 23:59 (and is
  dropped when that leaves nothing). So every ``local_end`` is a real ``HH:MM``
  (at most ``23:59``) after ``local_start``, in every aggregator's payload. Why:
  the public ПроДокторов client ``mkv/prodoctorov`` writes times with Go's
  ``15:04`` layout (a midnight end becomes ``00:00``) and skips every cell whose
  ``time_start >= time_end`` (``internal/service/prodoctorov/schedule.go``,
  ``AddTimeCell``; the skip in ``internal/service/uploadsession.go``): the slot
  ending at midnight is never offered there either, and no public client writes
  ``24:00``; whether ПроДокторов or НаПоправку would accept ``24:00`` is not public
  (integrations.md, Corrections). Keeping the busy cell, shortened by a minute,
  still shows the doctor's evening as taken where busy cells are sent.

Time is handled as int64 UTC seconds; ``(owner, seconds)`` pairs are packed into
one int64 key (``owner * 2**34 + seconds since a base``) so that interval
subtraction for all doctors at once is a couple of ``searchsorted`` calls.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property, lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from ident_hooks.errors import PermanentFailure

DEFAULT_DAYS_AHEAD = 30
DEFAULT_SKIP_HOURS_TODAY = 2
DEFAULT_SLOT_MINUTES = 30
# The same bounds as the clinic.export_settings / export_rules check constraints.
DAYS_AHEAD_RANGE = (0, 366)
SKIP_HOURS_RANGE = (0, 24)
SLOT_MINUTES_RANGE = (5, 480)

SECONDS_PER_DAY = 86_400
_KEY_SPAN = 2**34  # seconds per owner in a packed key: ~544 years
# "HH:MM" for minute-of-day 0..1439. There is no label for 1440: nothing ends at 24:00
# (see the module docstring), and indexing past 23:59 fails instead of writing "24:00".
MINUTE_LABELS = np.array([f"{m // 60:02d}:{m % 60:02d}" for m in range(24 * 60)], dtype=object)

CELL_COLUMNS = (
    "doctor_id",
    "branch_id",
    "starts_at",
    "ends_at",
    "length_minutes",
    "is_free",
    "timezone",
    "utc_offset_minutes",
    "local_date",
    "local_start",
    "local_end",
)


@lru_cache(maxsize=4096)
def day_label(day_number: int) -> str:
    """``YYYY-MM-DD`` of a local day counted from 1970-01-01."""
    return (dt.date(1970, 1, 1) + dt.timedelta(days=int(day_number))).isoformat()


class InvalidExportSettings(ValueError, PermanentFailure):
    """An export setting or rule makes no sense; nothing must be published."""


@dataclass(frozen=True)
class ExportSettings:
    """Resolved settings of one aggregator (see :func:`resolve_settings`)."""

    aggregator: str
    days_ahead: int = DEFAULT_DAYS_AHEAD
    skip_hours_today: float = DEFAULT_SKIP_HOURS_TODAY
    slot_minutes: int = DEFAULT_SLOT_MINUTES
    enabled: bool = True
    # The zone whose date the service counts its own horizon in; None: each branch's own.
    horizon_zone: str | None = None


def _checked_number(
    aggregator: str, name: str, value: Any, bounds: tuple[int, int], integral: bool
):
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise InvalidExportSettings(f"{aggregator}: {name} must be a number, got {value!r}")
    if integral and value != int(value):
        raise InvalidExportSettings(f"{aggregator}: {name} must be a whole number, got {value}")
    low, high = bounds
    if not low <= value <= high:
        raise InvalidExportSettings(f"{aggregator}: {name} = {value} is out of range {low}..{high}")
    return int(value) if integral else float(value)


def resolve_settings(
    aggregator: str,
    row: Mapping[str, Any] | None,
    *,
    fixed_days_ahead: int | None = None,
    horizon_zone: str | None = None,
) -> ExportSettings:
    """Settings for ``aggregator`` from its ``clinic.export_settings`` row (or ``None``).

    Missing or NULL values take the defaults (30 days, 2 hours, 30 minutes, enabled).
    ``fixed_days_ahead`` is a horizon the service itself fixes (its kind's, in the
    registry: НаПоправку's today + 32), whatever the row says; ``horizon_zone`` the zone
    whose date that horizon is counted in, so no branch east of it reaches past it.
    Raises :class:`InvalidExportSettings` naming the bad setting.
    """
    row = row or {}

    def value(name: str, default: Any) -> Any:
        found = row.get(name)
        return default if found is None else found

    if fixed_days_ahead is not None:
        days_ahead = fixed_days_ahead
    else:
        days_ahead = _checked_number(
            aggregator,
            "days_ahead",
            value("days_ahead", DEFAULT_DAYS_AHEAD),
            DAYS_AHEAD_RANGE,
            True,
        )
    skip_hours = _checked_number(
        aggregator,
        "skip_hours_today",
        value("skip_hours_today", DEFAULT_SKIP_HOURS_TODAY),
        SKIP_HOURS_RANGE,
        False,
    )
    slot_minutes = _checked_number(
        aggregator,
        "slot_minutes",
        value("slot_minutes", DEFAULT_SLOT_MINUTES),
        SLOT_MINUTES_RANGE,
        True,
    )
    enabled = value("enabled", True)
    if not isinstance(enabled, bool):
        raise InvalidExportSettings(f"{aggregator}: enabled must be true or false, got {enabled!r}")
    return ExportSettings(aggregator, days_ahead, skip_hours, slot_minutes, enabled, horizon_zone)


@dataclass(frozen=True)
class Schedule:
    """What :func:`compute_schedule` found for one aggregator.

    ``cells`` holds free slots and busy cells together; ``free`` and ``busy`` are
    its two parts (computed on first use). All three have the columns
    :data:`CELL_COLUMNS`, sorted by ``branch_id, doctor_id, starts_at``:

    * ``doctor_id``, ``branch_id`` — as given (categoricals, categories in sorted order);
    * ``starts_at``, ``ends_at`` — time-zone-aware UTC datetimes (whole seconds);
    * ``length_minutes`` — int; for free slots the doctor's slot length;
    * ``is_free`` — True for a free slot, False for a busy cell;
    * ``timezone`` — the branch's IANA zone; ``utc_offset_minutes`` — its offset at ``starts_at``;
    * ``local_date`` (``YYYY-MM-DD``), ``local_start``, ``local_end`` (``HH:MM``, the
      end always after the start and at most ``23:59``) — branch-local wall clock.

    The text columns (ids, ``timezone``, ``local_*``) are string categoricals:
    a million rows share a few thousand labels, which keeps the frame small and fast.

    ``busy`` holds the occupied parts of work time (busy time clipped to work
    intervals, the horizon and ``now``), one row per occupied stretch.

    ``doctors``: the published doctors (``doctor_id, full_name, specialty,
    slot_minutes`` and any other column the caller gave). ``assignments``: every
    ``(doctor_id, branch_id)`` of a published doctor with work time in the horizon, so
    payloads can name a doctor whose time is all booked (an empty schedule replaces a
    stale one).
    """

    settings: ExportSettings
    now: pd.Timestamp
    cells: pd.DataFrame
    doctors: pd.DataFrame
    assignments: pd.DataFrame

    @cached_property
    def free(self) -> pd.DataFrame:
        return self.cells[self.cells["is_free"].to_numpy()].reset_index(drop=True)

    @cached_property
    def busy(self) -> pd.DataFrame:
        return self.cells[~self.cells["is_free"].to_numpy()].reset_index(drop=True)


# -- small vectorised helpers ----------------------------------------------------------


def _utc_seconds(column: pd.Series, name: str) -> np.ndarray:
    if not isinstance(column.dtype, pd.DatetimeTZDtype):
        raise ValueError(f"{name} must hold time-zone-aware timestamps, got {column.dtype}")
    return column.dt.as_unit("s").astype("int64").to_numpy()


def _positions_in_groups(counts: np.ndarray) -> np.ndarray:
    """For counts [2, 0, 3] -> [0, 1, 0, 1, 2]: each row's index within its repeat group."""
    total = int(counts.sum())
    starts = np.cumsum(counts) - counts
    return np.arange(total) - np.repeat(starts, counts)


def _merge_intervals(owner: np.ndarray, start: np.ndarray, end: np.ndarray):
    """Union of intervals per owner: disjoint, non-touching, sorted by (owner, start)."""
    if len(owner) == 0:
        return owner, start, end
    key_start = owner * _KEY_SPAN + start
    order = np.argsort(key_start)
    owner, start, end, key_start = owner[order], start[order], end[order], key_start[order]
    reach = np.maximum.accumulate(owner * _KEY_SPAN + end)
    new_group = np.ones(len(owner), dtype=bool)
    new_group[1:] = key_start[1:] > reach[:-1]
    first = np.flatnonzero(new_group)
    last = np.append(first[1:], len(owner)) - 1
    return owner[first], start[first], reach[last] - owner[first] * _KEY_SPAN


def _subtract(owner, start, end, cut_owner, cut_start, cut_end):
    """Intervals minus cuts of the same owner.

    Cuts must be disjoint and sorted by (owner, start); zero-length cuts split an
    interval at that point. Returns ``(gaps, overlaps)``, each
    ``(source_row, start, end)``: the parts outside and inside the cuts.
    """
    if len(cut_owner) == 0:
        rows = np.arange(len(owner))
        keep = end > start
        nothing = np.zeros(0, dtype=np.int64)
        return (rows[keep], start[keep], end[keep]), (nothing, nothing, nothing)
    key_cut_start = cut_owner * _KEY_SPAN + cut_start
    key_cut_end = cut_owner * _KEY_SPAN + cut_end
    first = np.searchsorted(key_cut_end, owner * _KEY_SPAN + start, side="right")
    stop = np.searchsorted(key_cut_start, owner * _KEY_SPAN + end, side="left")
    counts = np.maximum(stop - first, 0)
    last_cut = len(cut_start) - 1

    # k overlapping cuts leave k + 1 candidate gaps: before the first cut, between, after the last.
    rows = np.repeat(np.arange(len(owner)), counts + 1)
    j = _positions_in_groups(counts + 1)
    cut_before = np.repeat(first, counts + 1) + j - 1
    gap_start = np.where(j == 0, start[rows], cut_end[np.clip(cut_before, 0, last_cut)])
    gap_end = np.where(
        j == counts[rows], end[rows], cut_start[np.clip(cut_before + 1, 0, last_cut)]
    )
    gap_start = np.maximum(gap_start, start[rows])
    gap_end = np.minimum(gap_end, end[rows])
    keep = gap_end > gap_start
    gaps = (rows[keep], gap_start[keep], gap_end[keep])

    rows = np.repeat(np.arange(len(owner)), counts)
    cut_index = np.repeat(first, counts) + _positions_in_groups(counts)
    over_start = np.maximum(cut_start[cut_index], start[rows])
    over_end = np.minimum(cut_end[cut_index], end[rows])
    keep = over_end > over_start
    return gaps, (rows[keep], over_start[keep], over_end[keep])


def _at_midnight(zone: np.ndarray, instants: np.ndarray, midnights: np.ndarray) -> np.ndarray:
    """Whether each instant is one of its zone's local midnights (a row of ``midnights``)."""
    midnight_keys = (
        np.arange(len(midnights), dtype=np.int64)[:, None] * _KEY_SPAN + midnights
    ).ravel()
    if len(midnight_keys) == 0:
        return np.zeros(len(instants), dtype=bool)
    keys = zone * _KEY_SPAN + instants
    found = np.minimum(np.searchsorted(midnight_keys, keys), len(midnight_keys) - 1)
    return midnight_keys[found] == keys


@dataclass(frozen=True)
class _Calendar:
    """Per time zone: local midnights (UTC seconds) bounding each horizon day, and the cut-off."""

    midnights: np.ndarray  # shape (zones, days + 1)
    first_slot_start: np.ndarray  # shape (zones,)


def _calendar(
    zones: list[str],
    days_ahead: int,
    skip_hours: float,
    now: dt.datetime,
    horizon_zone: str | None = None,
) -> _Calendar:
    days = days_ahead + 1
    midnights = np.empty((len(zones), days + 1), dtype=np.int64)
    now_seconds = int(now.timestamp())
    first_slot_start = np.empty(len(zones), dtype=np.int64)
    # A service counting its horizon in its own zone refuses later dates, even where a
    # branch further east is already a day ahead: its days past the end are left empty.
    end = (
        now.astimezone(ZoneInfo(horizon_zone)).date() + dt.timedelta(days=days)
        if horizon_zone
        else None
    )
    for index, name in enumerate(zones):
        zone = ZoneInfo(name)
        today = now.astimezone(zone).date()
        dates = [today + dt.timedelta(days=n) for n in range(days + 1)]
        midnights[index] = [
            int(dt.datetime.combine(min(day, end) if end else day, dt.time(), zone).timestamp())
            for day in dates
        ]
        # The today-only cut-off never reaches into tomorrow.
        first_slot_start[index] = min(now_seconds + round(skip_hours * 3600), midnights[index][1])
    return _Calendar(midnights, first_slot_start)


def _settings_calendar(zones: list[str], settings: ExportSettings, now: dt.datetime) -> _Calendar:
    return _calendar(
        zones, settings.days_ahead, settings.skip_hours_today, now, settings.horizon_zone
    )


def _published_doctors(
    doctors: pd.DataFrame, rules: pd.DataFrame, settings: ExportSettings
) -> pd.DataFrame:
    rules = rules[["doctor_id", "publish", "slot_minutes"]]
    excluded = set(rules.loc[rules["publish"].eq(False), "doctor_id"])
    overrides = rules.dropna(subset=["slot_minutes"])
    for doctor_id, minutes in zip(overrides["doctor_id"], overrides["slot_minutes"], strict=True):
        low, high = SLOT_MINUTES_RANGE
        if minutes != int(minutes) or not low <= minutes <= high:
            raise InvalidExportSettings(
                f"{settings.aggregator}: rule slot_minutes = {minutes} for doctor {doctor_id} "
                f"must be a whole number in {low}..{high}"
            )
    active = doctors[doctors["is_active"].fillna(False).astype(bool)]
    # Every column the reader gave is kept (e.g. ``ident_id``, the IDENT protocol's alias).
    published = active[~active["doctor_id"].isin(excluded)].drop(columns="is_active")
    minutes = published["doctor_id"].map(
        dict(zip(overrides["doctor_id"], overrides["slot_minutes"].astype(int), strict=True))
    )
    published = published.assign(slot_minutes=minutes.fillna(settings.slot_minutes).astype("int64"))
    return published.drop_duplicates("doctor_id").reset_index(drop=True)


def _utc_offsets(zone_names: list[str], zone: np.ndarray, instants: np.ndarray) -> np.ndarray:
    """UTC offset (seconds) of each instant in its zone; each distinct instant converted once."""
    codes, uniques = pd.factorize(zone * _KEY_SPAN + instants)
    unique_zone, unique_instant = uniques // _KEY_SPAN, uniques % _KEY_SPAN
    unique_offset = np.zeros(len(uniques), dtype=np.int64)
    for index, name in enumerate(zone_names):
        mask = unique_zone == index
        if mask.any():
            utc = pd.DatetimeIndex(unique_instant[mask].astype("datetime64[s]"), tz="UTC")
            local = utc.tz_convert(name).tz_localize(None).as_unit("s").asi8
            unique_offset[mask] = local - unique_instant[mask]
    return unique_offset[codes]


def _local_labels(
    zone_names: list[str], zone: np.ndarray, start: np.ndarray, end: np.ndarray
) -> dict[str, Any]:
    """Branch-local offset, date and HH:MM labels as categoricals (no per-row strftime)."""
    offset = _utc_offsets(zone_names, zone, start)
    local_start = start + offset
    local_end = end + _utc_offsets(zone_names, zone, end)
    day = local_start // SECONDS_PER_DAY
    end_minute = (local_end - day * SECONDS_PER_DAY) // 60  # below 1440: nothing ends at midnight
    day_codes, unique_days = pd.factorize(day, sort=True)
    return {
        "utc_offset_minutes": offset // 60,
        "local_date": pd.Categorical.from_codes(
            day_codes, categories=[day_label(d) for d in unique_days]
        ),
        "local_start": pd.Categorical.from_codes(
            (local_start % SECONDS_PER_DAY) // 60, categories=MINUTE_LABELS
        ),
        "local_end": pd.Categorical.from_codes(end_minute, categories=MINUTE_LABELS),
    }


def _frame(
    doctor_ids: np.ndarray,
    branch_ids: np.ndarray,
    zone_names: list[str],
    doctor: np.ndarray,
    branch: np.ndarray,
    zone: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    is_free: np.ndarray,
) -> pd.DataFrame:
    """Rows in the output contract, sorted by branch, doctor, start (codes follow id order)."""
    order = np.argsort((branch * len(doctor_ids) + doctor) * _KEY_SPAN + start, kind="stable")
    doctor, branch, zone = doctor[order], branch[order], zone[order]
    start, end = start[order], end[order]
    labels = _local_labels(zone_names, zone, start, end)
    return pd.DataFrame(
        {
            "doctor_id": pd.Categorical.from_codes(doctor, categories=doctor_ids),
            "branch_id": pd.Categorical.from_codes(branch, categories=branch_ids),
            "starts_at": pd.to_datetime(start, unit="s", utc=True),
            "ends_at": pd.to_datetime(end, unit="s", utc=True),
            "length_minutes": (end - start) // 60,
            "is_free": is_free[order],
            "timezone": pd.Categorical.from_codes(zone, categories=zone_names),
            **labels,
        },
        columns=list(CELL_COLUMNS),
    )


def compute_schedule(
    work: pd.DataFrame,
    busy: pd.DataFrame,
    doctors: pd.DataFrame,
    rules: pd.DataFrame,
    settings: ExportSettings,
    now: dt.datetime,
) -> Schedule:
    """Free slots and busy cells of every published doctor for one aggregator.

    Inputs (timestamps time-zone aware, any zone; ids of any sortable type):

    * ``work``: ``doctor_id, branch_id, starts_at, ends_at, timezone`` (branch's IANA zone);
    * ``busy``: ``doctor_id, starts_at, ends_at`` — appointments that are not
      cancelled, in any branch, plus open leads holding a doctor's time;
    * ``doctors``: ``doctor_id, full_name, specialty, is_active`` (other columns are kept);
    * ``rules``: ``doctor_id, publish, slot_minutes`` (NULL = aggregator's) for this aggregator;
    * ``now``: a time-zone-aware instant; the horizon's dates are its dates, and today's
      cut-off and busy cells count from it exactly (issue 17: rounding it up withheld
      up to a step of today's bookable time).

    Work rows of unknown, inactive or excluded doctors are ignored; overlapping
    or touching work intervals of a doctor in one branch are merged first.
    Raises :class:`InvalidExportSettings` for a bad rule, ``ValueError`` for
    naive timestamps, ``ZoneInfoNotFoundError`` for an unknown zone.
    """
    if now.tzinfo is None:
        raise ValueError("now must be time-zone aware")
    now = pd.Timestamp(now).tz_convert("UTC")
    published = _published_doctors(doctors, rules, settings)

    work = work[work["doctor_id"].isin(published["doctor_id"])]
    zone_codes, zone_index = pd.factorize(work["timezone"], sort=True)
    zone_names = [str(name) for name in zone_index]
    for name in zone_names:
        ZoneInfo(name)  # an unknown zone fails here, named in the message
    calendar = _settings_calendar(zone_names, settings, now)

    doctor_codes, doctor_index = pd.factorize(
        pd.concat([work["doctor_id"], busy["doctor_id"]], ignore_index=True), sort=True
    )
    doctor_codes = doctor_codes.astype(np.int64)
    work_doctor, busy_doctor = doctor_codes[: len(work)], doctor_codes[len(work) :]
    branch_codes, branch_index = pd.factorize(work["branch_id"], sort=True)
    branch_codes, zone_codes = branch_codes.astype(np.int64), zone_codes.astype(np.int64)
    branch_count = max(len(branch_index), 1)
    branch_zone = np.zeros(branch_count, dtype=np.int64)
    branch_zone[branch_codes] = zone_codes

    # Packed keys need non-negative seconds below _KEY_SPAN: count from a day before the horizon.
    base = int(calendar.midnights.min()) - SECONDS_PER_DAY if zone_names else 0
    limit = _KEY_SPAN - 1

    def seconds(frame: pd.DataFrame, column: str, name: str) -> np.ndarray:
        return np.clip(_utc_seconds(frame[column], f"{name}.{column}") - base, 0, limit)

    work_start, work_end = seconds(work, "starts_at", "work"), seconds(work, "ends_at", "work")
    busy_start, busy_end = seconds(busy, "starts_at", "busy"), seconds(busy, "ends_at", "busy")
    midnights = calendar.midnights - base
    first_slot_start = calendar.first_slot_start - base
    now_seconds = int(now.timestamp()) - base

    # 1. Merge work per (doctor, branch).
    valid = work_end > work_start
    pair, shift_start, shift_end = _merge_intervals(
        work_doctor[valid] * branch_count + branch_codes[valid], work_start[valid], work_end[valid]
    )
    shift_doctor, shift_branch = pair // branch_count, pair % branch_count
    shift_zone = branch_zone[shift_branch]

    # 2. Clip to the horizon and cut at local midnights by subtracting, per zone, the time
    #    before the first midnight, every inner midnight as a point, and the time after the last.
    zones, boundaries = midnights.shape
    cut_zone = np.repeat(np.arange(zones, dtype=np.int64), boundaries)
    cut_start = np.concatenate([np.zeros((zones, 1), np.int64), midnights[:, 1:]], axis=1).ravel()
    cut_end = np.concatenate([midnights[:, :-1], np.full((zones, 1), limit)], axis=1).ravel()
    (rows, day_start, day_end), _ = _subtract(
        shift_zone, shift_start, shift_end, cut_zone, cut_start, cut_end
    )
    piece_doctor, piece_branch, piece_zone = (
        shift_doctor[rows],
        shift_branch[rows],
        shift_zone[rows],
    )

    # 3. Subtract the doctor's busy time, whatever branch it is in.
    busy_valid = busy_end > busy_start
    merged = _merge_intervals(busy_doctor[busy_valid], busy_start[busy_valid], busy_end[busy_valid])
    (free_rows, free_start, free_end), (busy_rows, occupied_start, occupied_end) = _subtract(
        piece_doctor, day_start, day_end, *merged
    )

    # 4. Cut free stretches into slots; drop remainders, slots before the cut-off and
    #    slots that would end at the local midnight (24:00 cannot be written).
    minutes_by_doctor = dict(zip(published["doctor_id"], published["slot_minutes"], strict=True))
    doctor_slot_seconds = np.array(
        [60 * minutes_by_doctor.get(d, settings.slot_minutes) for d in doctor_index], np.int64
    )
    stretch_slot = doctor_slot_seconds[piece_doctor[free_rows]]
    slot_count = (free_end - free_start) // stretch_slot
    stretch = np.repeat(np.arange(len(free_rows)), slot_count)
    slot_seconds = stretch_slot[stretch]
    slot_start = free_start[stretch] + _positions_in_groups(slot_count) * slot_seconds
    slot_rows = free_rows[stretch]
    slot_zone = piece_zone[slot_rows]
    keep = (slot_start >= first_slot_start[slot_zone]) & ~_at_midnight(
        slot_zone, slot_start + slot_seconds, midnights
    )
    slot_rows, slot_start, slot_seconds = slot_rows[keep], slot_start[keep], slot_seconds[keep]

    # 5. Busy cells: the occupied parts of work time that are not in the past, on whole
    #    minutes — every format sends HH:MM or whole LengthInMinutes, so a cell clipped at
    #    10:39:07 becomes 10:39 and a sliver shorter than a minute would be an empty cell.
    #    One that would end at the local midnight ends at 23:59 instead.
    occupied_start = np.maximum(occupied_start, now_seconds)
    occupied_start = base + occupied_start - (base + occupied_start) % 60 - base
    occupied_end = base + occupied_end + (-(base + occupied_end)) % 60 - base
    occupied_end = occupied_end - 60 * _at_midnight(piece_zone[busy_rows], occupied_end, midnights)
    keep = occupied_end > occupied_start
    busy_rows, occupied_start, occupied_end = (
        busy_rows[keep],
        occupied_start[keep],
        occupied_end[keep],
    )

    doctor_ids = np.asarray(doctor_index, dtype=object)
    branch_ids = np.asarray(branch_index, dtype=object)
    cells = _frame(
        doctor_ids,
        branch_ids,
        zone_names,
        np.concatenate([piece_doctor[slot_rows], piece_doctor[busy_rows]]),
        np.concatenate([piece_branch[slot_rows], piece_branch[busy_rows]]),
        np.concatenate([piece_zone[slot_rows], piece_zone[busy_rows]]),
        np.concatenate([slot_start, occupied_start]) + base,
        np.concatenate([slot_start + slot_seconds, occupied_end]) + base,
        np.concatenate([np.ones(len(slot_rows), bool), np.zeros(len(busy_rows), bool)]),
    )
    assigned = np.unique(piece_doctor * branch_count + piece_branch)
    assignments = pd.DataFrame(
        {
            "doctor_id": doctor_ids[assigned // branch_count],
            "branch_id": branch_ids[assigned % branch_count],
        }
    ).sort_values(["branch_id", "doctor_id"], ignore_index=True)
    return Schedule(settings, now, cells, published, assignments)


def raw_cells(schedule: Schedule) -> pd.DataFrame:
    """A schedule's cells as kept between runs: ids, zone, epoch seconds and ``is_free``."""
    cells = schedule.cells
    return pd.DataFrame(
        {
            "doctor_id": cells["doctor_id"].astype(str).to_numpy(object),
            "branch_id": cells["branch_id"].astype(str).to_numpy(object),
            "timezone": cells["timezone"].astype(str).to_numpy(object),
            "starts_at": cells["starts_at"].to_numpy("datetime64[s]").astype(np.int64),
            "ends_at": cells["ends_at"].to_numpy("datetime64[s]").astype(np.int64),
            "is_free": cells["is_free"].to_numpy(bool),
        }
    )


def schedule_from_cells(
    cells: pd.DataFrame,
    doctors: pd.DataFrame,
    assignments: pd.DataFrame,
    settings: ExportSettings,
    now: dt.datetime,
) -> Schedule:
    """The schedule kept cells (:func:`raw_cells`) show at ``now``, without the clinic.

    Clips them as :func:`compute_schedule` would at ``now``: no free slot before today's
    cut-off (``skip_hours_today``) or past the horizon, busy cells starting at the current
    minute, nothing that has ended. Time only removes cells between two computations; a
    day entering the horizon needs a computation (the first run of a new local day).
    """
    if now.tzinfo is None:
        raise ValueError("now must be time-zone aware")
    now = pd.Timestamp(now).tz_convert("UTC")
    zone_codes, zone_index = pd.factorize(cells["timezone"], sort=True)
    zone_names = [str(name) for name in zone_index]
    calendar = _settings_calendar(zone_names, settings, now)
    zone_codes = zone_codes.astype(np.int64)
    start = cells["starts_at"].to_numpy(np.int64)
    end = cells["ends_at"].to_numpy(np.int64)
    free = cells["is_free"].to_numpy(bool)
    horizon_end = calendar.midnights[zone_codes, -1] if zone_names else start
    busy_start = np.maximum(start, int(now.timestamp()))
    busy_start -= busy_start % 60  # whole minutes, as compute_schedule makes them
    keep = np.where(
        free,
        (start >= calendar.first_slot_start[zone_codes] if zone_names else free)
        & (start < horizon_end),
        (end > busy_start) & (busy_start < horizon_end),
    )
    start = np.where(free, start, busy_start)
    doctor_codes, doctor_index = pd.factorize(cells["doctor_id"], sort=True)
    branch_codes, branch_index = pd.factorize(cells["branch_id"], sort=True)
    frame = _frame(
        np.asarray(doctor_index, dtype=object),
        np.asarray(branch_index, dtype=object),
        zone_names,
        doctor_codes.astype(np.int64)[keep],
        branch_codes.astype(np.int64)[keep],
        zone_codes[keep],
        start[keep],
        end[keep],
        free[keep],
    )
    return Schedule(settings, now, frame, doctors, assignments)


def without_free_days(schedule: Schedule, days: int) -> Schedule:
    """The schedule with no free slot on the first ``days`` branch-local days (today
    first); busy cells stay, so aggregators that show them still see the day as taken."""
    if days <= 0 or schedule.cells.empty:
        return schedule
    cells = schedule.cells
    first_kept = {
        zone: (schedule.now.tz_convert(str(zone)).date() + dt.timedelta(days=days)).isoformat()
        for zone in cells["timezone"].cat.categories
    }
    kept_from = cells["timezone"].map(first_kept).astype(str).to_numpy()
    keep = ~cells["is_free"].to_numpy(bool) | (
        cells["local_date"].astype(str).to_numpy() >= kept_from
    )
    return Schedule(
        schedule.settings,
        schedule.now,
        cells[keep].reset_index(drop=True),
        schedule.doctors,
        schedule.assignments,
    )


def horizon_dates(schedule: Schedule, zone: str) -> list[str]:
    """The branch-local dates (``YYYY-MM-DD``) a branch in ``zone`` has in the schedule's
    horizon: exactly the days :func:`compute_schedule` cuts its cells into."""
    settings = schedule.settings
    calendar = _settings_calendar([zone], settings, schedule.now)
    midnights = calendar.midnights[0]
    today = schedule.now.tz_convert(zone).date()
    return [
        (today + dt.timedelta(days=n)).isoformat()
        for n in range(len(midnights) - 1)
        if midnights[n] < midnights[n + 1]
    ]
