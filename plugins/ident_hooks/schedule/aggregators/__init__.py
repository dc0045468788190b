"""Payload builders, one module per aggregator protocol, and the publisher that runs them.

A builder module exposes ``build_requests(schedule, branches, *, max_request_bytes)``
returning the :class:`OutgoingRequest` list to send, in order; ``max_request_bytes`` is
the largest (decoded) body the receiver takes, None when not known. A protocol that can
split splits below it; one that cannot raises :class:`RequestTooLarge` naming it. ``branches`` is a
DataFrame ``branch_id, name`` (optional ``address``, ``ident_id``). A module may also
expose ``read_reply(request, response) -> ReplyFindings`` for what a service says back
beyond success. Which module serves which configured aggregator, its auth and its rules
(how long an unchanged request may go unsent, a fixed horizon) are in
:mod:`ident_hooks.registry`; a new protocol is one module here plus one kind there.

Bodies are rendered straight to UTF-8 JSON bytes: fragments are formatted once
per distinct value (a date, a time, a slot) and joined per doctor-day, which is
what keeps a 2,000-doctor network within the benchmark budget. How a schedule is cut
into requests is the protocol's: ПроДокторов one branch per request, НаПоправку's slots
one branch per request split below ``max_request_bytes``, IDENT the whole timetable.
"""

from __future__ import annotations

import gzip
import importlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any

import numpy as np
import pandas as pd

from ident_hooks.config import load_config
from ident_hooks.errors import PermanentFailure
from ident_hooks.http_client import ServiceClient
from ident_hooks.registry import AggregatorKind
from ident_hooks.schedule.engine import SECONDS_PER_DAY, Schedule

JSON_HEADERS: Mapping[str, str] = {"Content-Type": "application/json; charset=utf-8"}
GZIP_HEADERS: Mapping[str, str] = {"Content-Encoding": "gzip"}
# zlib's default level: on a 2,000-doctor network's 42 MB IDENT timetable it gives 27x in
# 0.4-0.7 s, level 1 20x in 0.2 s (bench sizes, December 2026); bytes are what the budget
# counts, so the smaller body buys more sends.
GZIP_LEVEL = 6


def gzip_body(body: bytes) -> bytes:
    """``body`` gzipped; ``mtime=0`` so the same body always compresses to the same bytes."""
    return gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)


class RequestTooLarge(ValueError, PermanentFailure):
    """A body the receiver would refuse as too large, and that cannot be split."""


@dataclass(frozen=True)
class OutgoingRequest:
    """One request to send: ``body`` is UTF-8 JSON; the rest describes it for logs."""

    endpoint: str
    body: bytes
    kind: str
    branch_ids: tuple[str, ...] = ()
    doctor_count: int = 0
    method: str = "POST"

    def send(self, client: ServiceClient, *, gzipped: bytes | None = None) -> Any:
        """Send the body, or its :func:`gzip_body` with ``Content-Encoding: gzip``."""
        if gzipped is None:
            return client.request(self.method, self.endpoint, data=self.body, headers=JSON_HEADERS)
        return client.request(
            self.method, self.endpoint, data=gzipped, headers={**JSON_HEADERS, **GZIP_HEADERS}
        )

    def __repr__(self) -> str:
        return (
            f"OutgoingRequest({self.method} {self.endpoint}, {self.kind}, "
            f"branches={list(self.branch_ids)}, doctors={self.doctor_count}, "
            f"{len(self.body)} bytes)"
        )


@dataclass(frozen=True)
class ReplyFindings:
    """What a 2xx reply says beyond success.

    ``not_matched_doctors``: the doctors the service could not link to its own doctor
    profiles, as it names them; None when the reply does not say.
    """

    not_matched_doctors: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Publisher:
    """A configured aggregator's protocol at work: builds its requests, reads its replies.

    ``spec`` is its kind from :mod:`ident_hooks.registry`; the builder module is imported
    on first use, so nothing of it costs anything at DAG parse time.
    """

    spec: AggregatorKind

    def _builder(self) -> Any:
        return importlib.import_module(f"{__name__}.{self.spec.builder}")

    def build_requests(
        self,
        schedule: Schedule,
        branches: pd.DataFrame,
        *,
        max_request_bytes: int | None = None,
    ) -> list[OutgoingRequest]:
        """``max_request_bytes``: the receiver's limit (None: the kind's default)."""
        return self._builder().build_requests(
            schedule, branches, max_request_bytes=max_request_bytes or self.spec.max_request_bytes
        )

    def read_reply(self, request: OutgoingRequest, response: Any) -> ReplyFindings:
        read = getattr(self._builder(), "read_reply", None)
        return read(request, response) if read is not None else ReplyFindings()

    def client(self, conn_id: str, **options: Any) -> ServiceClient:
        return ServiceClient(conn_id, auth=self.spec.auth, **options)


def publisher(aggregator: str) -> Publisher:
    """The publisher of the aggregator configured as ``aggregator`` in integrations.yaml."""
    return Publisher(load_config().aggregator(aggregator).spec)


# -- helpers shared by the builders --------------------------------------------------


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


def pack_branch(
    branch_id: str,
    doctors: list[tuple[str, list[bytes]]],
    *,
    render_doctor: Callable[[str, list[bytes]], bytes],
    render_request: Callable[[str, list[tuple[str, bytes]]], bytes],
    doctor_overhead: Callable[[str], int],
    max_request_bytes: int,
) -> list[tuple[bytes, int]]:
    """Split one branch into request bodies of at most ``max_request_bytes``.

    ``render_doctor(doctor_id, days)`` renders a doctor's block;
    ``render_request(branch_id, [(doctor_id, block), ...])`` the whole body;
    ``doctor_overhead(doctor_id)`` is what else a doctor adds to a body (e.g. a
    reference entry). Returns ``(body, doctor_count)`` pairs.
    """
    budget = max_request_bytes - len(render_request(branch_id, []))

    def cost(doctor_id: str, block: bytes) -> int:
        return len(block) + doctor_overhead(doctor_id) + 2  # separators, counted generously

    pieces: list[tuple[str, bytes]] = []
    for doctor_id, days in doctors:
        block = render_doctor(doctor_id, days)
        if cost(doctor_id, block) <= budget:
            pieces.append((doctor_id, block))
            continue
        empty = cost(doctor_id, render_doctor(doctor_id, []))
        part: list[bytes] = []
        size = empty
        for day in days:
            if empty + len(day) + 1 > budget:
                raise RequestTooLarge(
                    f"branch {branch_id}, doctor {doctor_id}: one day needs {len(day)} bytes, "
                    f"more than max_request_bytes = {max_request_bytes} allows"
                )
            if part and size + len(day) + 1 > budget:
                pieces.append((doctor_id, render_doctor(doctor_id, part)))
                part, size = [], empty
            part.append(day)
            size += len(day) + 1
        if part:
            pieces.append((doctor_id, render_doctor(doctor_id, part)))

    bodies: list[tuple[bytes, int]] = []
    batch: list[tuple[str, bytes]] = []
    used = 0
    for doctor_id, block in pieces:
        needed = cost(doctor_id, block)
        # A doctor split between days goes to separate bodies: a key may appear once per body.
        if batch and (used + needed > budget or doctor_id == batch[-1][0]):
            bodies.append((render_request(branch_id, batch), len({d for d, _ in batch})))
            batch, used = [], 0
        batch.append((doctor_id, block))
        used += needed
    if batch or not bodies:
        bodies.append((render_request(branch_id, batch), len({d for d, _ in batch})))
    return bodies


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
