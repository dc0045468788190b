"""Lead sources: which adapter serves a source and how the HTTP client authenticates to it.

An adapter module knows one service's endpoint, parameters, paging and record shape and
nothing about retries, the database or Airflow. It provides

* ``fetch(client, period_from, period_to, *, settings) -> Iterator[dict]`` — raw records of
  the period ``[period_from, period_to)`` (aware datetimes), each id at most once;
* ``parse(raw, *, settings, matcher) -> Lead`` — raises ``RejectedRecord`` with a reason;
* optionally ``acknowledge(client, external_id, *, success=True, message="")`` — to be
  called only after the lead is committed (НаПоправку cancels unacknowledged bookings).

Which module serves which kind, where its secret goes and how its partners say the
integration is switched off is ``ident_hooks.registry.LEAD_SOURCE_KINDS``;
``adapter.client(conn_id)`` is the HTTP client that knows both. A configured source names
its kind in integrations.yaml, so any number of sources may share one.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import tzinfo
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo

from ident_hooks.errors import PermanentFailure, TransientFailure
from ident_hooks.http_client import AuthStyle, ServiceClient
from ident_hooks.leads.normalise import DoctorMatcher, Lead, Reject, RejectedRecord, without_nul
from ident_hooks.registry import LEAD_SOURCE_KINDS

MOSCOW = ZoneInfo("Europe/Moscow")


class SourceError(RuntimeError):
    """A source answered 2xx but its body reports an error or cannot be read.

    Raised as :class:`SourceRefused` or :class:`SourceTemporarilyFailed`, chosen where the
    reply is read.
    """

    def __init__(self, source_kind: str, message: str, *, code: Any = None) -> None:
        super().__init__(f"{source_kind}: {message}")
        self.source_kind = source_kind
        self.code = code


class SourceRefused(SourceError, PermanentFailure):
    """The source refused the request or answered something no retry will change."""


class SourceTemporarilyFailed(SourceError, TransientFailure):
    """A failure another attempt later may not meet (a proxy's error page, a moving offset)."""


class SourceLimitReached(SourceTemporarilyFailed):
    """The source's request limit is used up; retry after ``retry_after_seconds``."""

    def __init__(
        self, source_kind: str, message: str, *, code: Any = None, retry_after_seconds: float = 60
    ) -> None:
        super().__init__(source_kind, message, code=code)
        self.retry_after_seconds = retry_after_seconds


@dataclass(frozen=True)
class SourceSettings:
    """What an adapter needs to know about one configured source.

    ``timezone`` reads naive times (UIS account time, naive НаПоправку times);
    ``page_size`` 0 means the adapter's default.
    """

    source: str
    timezone: tzinfo = MOSCOW
    page_size: int = 0


@dataclass(frozen=True)
class SourceAdapter:
    kind: str
    auth: AuthStyle
    module: ModuleType = field(repr=False)
    switched_off: Callable[[Any], bool] | None = field(default=None, repr=False)

    def client(self, conn_id: str, **options: Any) -> ServiceClient:
        """The HTTP client for one source of this kind: its auth and its reading of replies."""
        return ServiceClient(conn_id, auth=self.auth, switched_off=self.switched_off, **options)

    def fetch(self, client: Any, period_from: Any, period_to: Any, *, settings: SourceSettings):
        return self.module.fetch(client, period_from, period_to, settings=settings)

    def parse(self, raw: Any, *, settings: SourceSettings, matcher: DoctorMatcher) -> Lead:
        return self.module.parse(raw, settings=settings, matcher=matcher)

    @property
    def acknowledge(self) -> Callable[..., Any] | None:
        return getattr(self.module, "acknowledge", None)


def adapter_for(kind: str) -> SourceAdapter:
    """The adapter of a lead-source kind (``ident_hooks.registry.LEAD_SOURCE_KINDS``)."""
    spec = LEAD_SOURCE_KINDS.get(kind)
    if spec is None:
        raise KeyError(f"unknown lead source kind {kind!r}; known: {', '.join(LEAD_SOURCE_KINDS)}")
    # Imported on first use, not at DAG parse time.
    module = importlib.import_module(f"{__name__}.{spec.adapter}")
    return SourceAdapter(kind=kind, auth=spec.auth, module=module, switched_off=spec.switched_off)


@dataclass
class ParsedBatch:
    leads: list[Lead]
    rejects: list[Reject]


def parse_records(
    adapter: SourceAdapter,
    records: Iterable[Any],
    *,
    settings: SourceSettings,
    matcher: DoctorMatcher,
) -> ParsedBatch:
    """Parse every record; malformed ones become rejects, a repeated id keeps its last copy."""
    leads: dict[str, Lead] = {}
    rejects: list[Reject] = []
    for raw in records:
        try:
            lead = adapter.parse(raw, settings=settings, matcher=matcher)
        except RejectedRecord as rejected:
            rejects.append(Reject(settings.source, raw, rejected.reason))
            continue
        leads.pop(lead.external_id, None)
        leads[lead.external_id] = lead
    return ParsedBatch(list(leads.values()), rejects)


def read_json(response: Any, source_kind: str) -> Any:
    """The decoded body of a 2xx reply, with NUL characters removed (PostgreSQL cannot store
    them); a body that is not JSON (a proxy's HTML page, a cut-off reply) is a retryable error.
    """
    try:
        body = response.json()
    except ValueError:
        raise SourceTemporarilyFailed(
            source_kind, f"reply is not JSON: {response.text[:200]!r}"
        ) from None
    return without_nul(body) if "\\u0000" in response.text else body


def unique_by(records: Iterable[Any], key: Callable[[Any], Any]) -> Iterator[Any]:
    """Records whose key was not seen before (pages may overlap while new leads arrive).

    Records without a usable key pass through so that ``parse`` can reject them.
    """
    seen: set[Any] = set()
    for record in records:
        try:
            identity = key(record)
            hash(identity)
        except (AttributeError, KeyError, TypeError):
            yield record
            continue
        if identity is None:
            yield record
        elif identity not in seen:
            seen.add(identity)
            yield record
