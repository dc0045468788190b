"""Schedule publishers: one declared class per aggregator protocol.

A publisher is a subclass of :class:`SchedulePublisher` that declares first what its
service takes — its ``auth`` (an :class:`~ident_hooks.auth.AuthStyle` from
:mod:`ident_hooks.registry`), its ``endpoints`` (request kind -> path, in the order the
requests go), how the schedule is ``cut`` into requests (:class:`Cut`) and whether it
``reads_replies`` — and overrides only what its service does differently: how a body is
rendered (:meth:`~SchedulePublisher.render_branches` for the per-branch cuts,
:meth:`~SchedulePublisher.render_timetable` for the whole timetable,
:meth:`~SchedulePublisher.reference_entries` for reference lists such as НаПоправку's
clinics and doctors) and how a reply is read (:meth:`~SchedulePublisher.read_reply`).
The base class does the cutting, the size checks against ``max_request_bytes`` and the
requests themselves.

Which class serves a configured aggregator, and its rules (how long an unchanged request
may go unsent, a fixed horizon, the request kind that carries doctors' time, the
receivers' known body limit), are its kind's in :mod:`ident_hooks.registry`
(``AggregatorKind.connector``); :func:`publisher` gives the configured aggregator's
publisher. A new protocol is one class here plus one kind there.
"""

from __future__ import annotations

import enum
import gzip
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd

from ident_hooks.auth import AuthStyle
from ident_hooks.config import load_config
from ident_hooks.errors import PermanentFailure
from ident_hooks.http_client import ServiceClient
from ident_hooks.registry import AggregatorKind
from ident_hooks.schedule.aggregators.rendering import branch_doctors
from ident_hooks.schedule.engine import Schedule

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


class Cut(enum.Enum):
    """How a publisher cuts the schedule into requests of its schedule kind."""

    # One request per branch with every doctor of it; a receiver that keeps one document
    # per branch would be left with only the last part of a split one.
    BRANCH = "branch"
    # Per branch, split between doctors (and a doctor between days) below the limit.
    BRANCH_SPLIT = "branch_split"
    # Every branch and doctor in one request; a snapshot receiver keeps only the latest.
    TIMETABLE = "timetable"


# What a publisher must implement for its cut.
_RENDERER = {
    Cut.BRANCH: "render_branches",
    Cut.BRANCH_SPLIT: "render_branches",
    Cut.TIMETABLE: "render_timetable",
}


@dataclass(frozen=True)
class BranchRendering:
    """A protocol's rendering of branch documents, for :attr:`Cut.BRANCH` and
    :attr:`Cut.BRANCH_SPLIT`.

    ``days``: ``(branch_id, doctor_id) -> [rendered day, ...]``;
    ``doctor(doctor_id, days)``: a doctor's block in a body;
    ``document(branch_id, [(doctor_id, block), ...])``: the whole body.
    """

    days: Mapping[tuple[str, str], list[bytes]]
    doctor: Callable[[str, list[bytes]], bytes]
    document: Callable[[str, list[tuple[str, bytes]]], bytes]


@dataclass(frozen=True)
class Timetable:
    """A rendered whole timetable (:attr:`Cut.TIMETABLE`): ``pieces`` joined are the body
    (summed before they are joined, so a refused body is never built); ``description``
    names it in a refusal."""

    pieces: list[bytes]
    branch_ids: tuple[str, ...]
    doctor_count: int
    description: str


@dataclass(frozen=True)
class SchedulePublisher:
    """A schedule-publishing protocol at work for its registry kind ``spec``.

    Subclasses declare ``auth``, ``endpoints``, ``cut`` and ``reads_replies`` and
    implement the rendering their ``cut`` needs. Instances of one kind are equal: two
    aggregators on the IDENT protocol have the same publisher.
    """

    spec: AggregatorKind

    auth: ClassVar[AuthStyle]
    # Request kind -> endpoint, in the order the requests are sent. The kind the registry
    # names ``schedule_request`` carries doctors' time and is cut as ``cut`` says; every
    # other is a reference list ``{"<kind>": [entry, ...]}`` split below the limit.
    endpoints: ClassVar[Mapping[str, str]]
    cut: ClassVar[Cut]
    # The service's 2xx reply says something beyond success (:meth:`read_reply`).
    reads_replies: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        missing = [name for name in ("auth", "endpoints", "cut") if not hasattr(cls, name)]
        if missing:
            raise TypeError(f"{cls.__name__} does not declare {', '.join(missing)}")
        needed = [_RENDERER[cls.cut]] + (["read_reply"] if cls.reads_replies else [])
        absent = [name for name in needed if getattr(cls, name) is getattr(SchedulePublisher, name)]
        if absent:
            raise TypeError(f"{cls.__name__} does not implement {', '.join(absent)}")

    @classmethod
    def client(cls, conn_id: str, **options: Any) -> ServiceClient:
        """The HTTP client for an instance's Airflow connection, with this service's auth."""
        return ServiceClient(conn_id, auth=cls.auth, **options)

    def build_requests(
        self,
        schedule: Schedule,
        branches: pd.DataFrame,
        *,
        max_request_bytes: int | None = None,
    ) -> list[OutgoingRequest]:
        """The requests to send, in order.

        ``branches`` is a DataFrame ``branch_id, name`` (optional ``address``, ``ident_id``,
        ``timezone``). ``max_request_bytes`` is the largest (decoded) body the receiver
        takes (None: the kind's, which may be unknown too). Raises :class:`RequestTooLarge`
        before anything is sent when a body over it cannot be split.
        """
        limit = max_request_bytes or self.spec.max_request_bytes
        entries = self.reference_entries(schedule, branches)
        requests: list[OutgoingRequest] = []
        for kind, endpoint in self.endpoints.items():
            if kind == self.spec.schedule_request:
                requests += self._schedule_requests(kind, endpoint, schedule, branches, limit)
            else:
                requests += _reference_requests(kind, endpoint, entries[kind], limit)
        return requests

    def read_reply(self, request: OutgoingRequest, response: Any) -> ReplyFindings:
        """What a 2xx ``response`` to ``request`` says beyond success (``reads_replies``)."""
        raise NotImplementedError(f"{type(self).__name__} reads no replies")

    # -- what a protocol renders ---------------------------------------------------------

    def render_branches(self, schedule: Schedule, branches: pd.DataFrame) -> BranchRendering:
        """The branch documents' rendering (:attr:`Cut.BRANCH`, :attr:`Cut.BRANCH_SPLIT`)."""
        raise NotImplementedError(f"{type(self).__name__} is not cut per branch")

    def render_timetable(self, schedule: Schedule, branches: pd.DataFrame) -> Timetable:
        """The whole timetable (:attr:`Cut.TIMETABLE`)."""
        raise NotImplementedError(f"{type(self).__name__} is not cut as one timetable")

    def reference_entries(
        self, schedule: Schedule, branches: pd.DataFrame
    ) -> Mapping[str, list[bytes]]:
        """Per reference request kind (every endpoint but the schedule's), its rendered
        entries; none by default."""
        return {}

    # -- cutting -------------------------------------------------------------------------

    def _schedule_requests(
        self,
        kind: str,
        endpoint: str,
        schedule: Schedule,
        branches: pd.DataFrame,
        limit: int | None,
    ) -> list[OutgoingRequest]:
        if self.cut is Cut.TIMETABLE:
            timetable = self.render_timetable(schedule, branches)
            size = sum(map(len, timetable.pieces))
            if limit is not None and size > limit:
                raise RequestTooLarge(
                    f"{timetable.description} is {size} bytes, more than the receiver's limit"
                    f" of {limit} bytes (max_request_bytes); it cannot be split, because a"
                    f" receiver keeps only the latest {endpoint}"
                )
            body = b"".join(timetable.pieces)
            return [
                OutgoingRequest(endpoint, body, kind, timetable.branch_ids, timetable.doctor_count)
            ]

        rendering = self.render_branches(schedule, branches)
        requests = []
        for branch_id, doctors in branch_doctors(schedule, rendering.days):
            if self.cut is Cut.BRANCH_SPLIT:
                bodies = _split_branch(branch_id, doctors, rendering, limit or sys.maxsize)
            else:
                body = rendering.document(
                    branch_id, [(d, rendering.doctor(d, days)) for d, days in doctors]
                )
                if limit is not None and len(body) > limit:
                    raise RequestTooLarge(
                        f"branch {branch_id} ({len(doctors)} doctors) is {len(body)} bytes,"
                        f" more than the receiver's limit of {limit} bytes"
                        " (max_request_bytes); a branch document is never split"
                    )
                bodies = [(body, len(doctors))]
            requests += [
                OutgoingRequest(endpoint, body, kind, (branch_id,), doctor_count)
                for body, doctor_count in bodies
            ]
        return requests


def publisher(aggregator: str) -> SchedulePublisher:
    """The publisher of the aggregator configured as ``aggregator`` in integrations.yaml."""
    spec = load_config().aggregator(aggregator).spec
    return spec.connector_class()(spec)


def _reference_requests(
    kind: str, endpoint: str, entries: list[bytes], limit: int | None
) -> list[OutgoingRequest]:
    """``{"<kind>": [entries...]}`` bodies of at most ``limit`` bytes."""
    prefix, suffix = b'{"' + kind.encode() + b'":[', b"]}"
    budget = (limit or sys.maxsize) - len(prefix) - len(suffix)
    batches: list[list[bytes]] = []
    batch: list[bytes] = []
    used = 0
    for entry in entries:
        if len(entry) > budget:
            raise RequestTooLarge(
                f"one {kind} entry needs {len(entry)} bytes, more than the receiver's limit of"
                f" {limit} bytes (max_request_bytes) allows"
            )
        if batch and used + len(entry) + 1 > budget:
            batches.append(batch)
            batch, used = [], 0
        batch.append(entry)
        used += len(entry) + 1
    if batch:
        batches.append(batch)
    return [
        OutgoingRequest(
            endpoint,
            prefix + b",".join(batch) + suffix,
            kind,
            (),
            len(batch) if kind == "doctors" else 0,  # for the log: a list of doctors
        )
        for batch in batches
    ]


def _split_branch(
    branch_id: str,
    doctors: list[tuple[str, list[bytes]]],
    rendering: BranchRendering,
    limit: int,
) -> list[tuple[bytes, int]]:
    """One branch as request bodies of at most ``limit`` bytes: ``(body, doctor_count)``."""
    budget = limit - len(rendering.document(branch_id, []))

    def cost(block: bytes) -> int:
        return len(block) + 2  # separators, counted generously

    pieces: list[tuple[str, bytes]] = []
    for doctor_id, days in doctors:
        block = rendering.doctor(doctor_id, days)
        if cost(block) <= budget:
            pieces.append((doctor_id, block))
            continue
        empty = cost(rendering.doctor(doctor_id, []))
        part: list[bytes] = []
        size = empty
        for day in days:
            if empty + len(day) + 1 > budget:
                raise RequestTooLarge(
                    f"branch {branch_id}, doctor {doctor_id}: one day needs {len(day)} bytes, "
                    f"more than max_request_bytes = {limit} allows"
                )
            if part and size + len(day) + 1 > budget:
                pieces.append((doctor_id, rendering.doctor(doctor_id, part)))
                part, size = [], empty
            part.append(day)
            size += len(day) + 1
        if part:
            pieces.append((doctor_id, rendering.doctor(doctor_id, part)))

    bodies: list[tuple[bytes, int]] = []
    batch: list[tuple[str, bytes]] = []
    used = 0
    for doctor_id, block in pieces:
        needed = cost(block)
        # A doctor split between days goes to separate bodies: a key may appear once per body.
        if batch and (used + needed > budget or doctor_id == batch[-1][0]):
            bodies.append((rendering.document(branch_id, batch), len({d for d, _ in batch})))
            batch, used = [], 0
        batch.append((doctor_id, block))
        used += needed
    if batch or not bodies:
        bodies.append((rendering.document(branch_id, batch), len({d for d, _ in batch})))
    return bodies
