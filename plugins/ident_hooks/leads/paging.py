"""Paging shared by the lead connectors: one rule for when a walk over pages ends.

A paginator is told what each reply said — its records and, when the service gives them,
a total or the last page number — and decides the next request or the end. The shape
follows dlt's REST-client paginators (``dlt-hub/dlt``,
``dlt/sources/helpers/rest_client/paginators.py``: ``OffsetPaginator`` and
``PageNumberPaginator`` put their parameters into the next request, are updated with each
reply and say whether a next page exists); the guard against a server that ignores the
offset follows the Singer SDK's loop detection (``meltano/sdk``
``singer_sdk/pagination.py``, ``BaseAPIPaginator.advance`` refuses a next token identical
to the last). The rules, the same for every source:

* **The end** is an empty page, an offset that reaches the reply's total, or the reply's
  last page. A page shorter than asked is not the end: partners clamp page sizes silently
  (integrations.md, "Corrections, December 2026" → IDENT HTTP protocol and Flexbe), so an
  offset walk moves on by the records that came back, not by the limit asked (dlt moves
  by the limit).
* **A server that ignores the offset or page** answers the same records again. Our
  requests never repeat, so instead of a repeated token a page is recognised by its
  records: one that brings no record not seen before in this walk (by the connector's key)
  stops the walk with a warning naming the source. What came so far is kept — stored,
  and for НаПоправку acknowledged before the service cancels it — rather than lost to an
  error.
* **Each record once**: pages overlap when a lead arrives while they are read (a
  receiver sorting newest first shifts its pages), so a walk passes each key on once.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

RecordKey = Callable[[Any], Hashable]


def field_key(name: str) -> RecordKey:
    """A record's identity: its ``name`` field as text (the integer 7 and ``"7"`` are one),
    or for a record without a usable one (``parse`` rejects it later) its whole content."""

    def key(record: Any) -> Hashable:
        value = record.get(name) if isinstance(record, dict) else None
        if isinstance(value, int | str) and not isinstance(value, bool):
            text = str(value).strip()
            if text:
                return ("id", text)
        return ("record", json.dumps(record, ensure_ascii=False, sort_keys=True, default=str))

    return key


@dataclass(frozen=True)
class Page:
    """What one reply said: its records and, when the service gives them, how many records
    the whole walk holds (``total``) and the number of its last page (``last_page``)."""

    records: Sequence[Any]
    total: int | None = None
    last_page: int | None = None


class Paginator(ABC):
    """One walk over a paged list.

    ``params()`` are the paging parameters of the next request; ``update(page)`` takes its
    reply and returns the records not seen before in this walk; ``has_next`` turns False
    when the walk has ended.
    """

    def __init__(self, source: str, *, key: RecordKey, position_param: str) -> None:
        self.source = source
        self.has_next = True
        self._key = key
        self._position_param = position_param
        self._seen: set[Hashable] = set()

    @property
    def fetched(self) -> int:
        """How many distinct records the walk has passed on."""
        return len(self._seen)

    @abstractmethod
    def params(self) -> dict[str, int]:
        """The paging parameters of the next request, named as the service names them."""

    def update(self, page: Page) -> list[Any]:
        if not self.has_next:
            raise RuntimeError(f"{self.source}: this walk has ended; start a new paginator")
        position = self.params()[self._position_param]
        fresh = []
        for record in page.records:
            key = self._key(record)
            if key not in self._seen:
                self._seen.add(key)
                fresh.append(record)
        if not page.records:
            self.has_next = False
        elif not fresh:
            self.has_next = False
            log.warning(
                "%s: the page at %s=%d brought %d records, none of them new: the server seems"
                " to ignore %s. Paging stopped after %d records; the rest of the period is"
                " not fetched until the server pages correctly",
                self.source,
                self._position_param,
                position,
                len(page.records),
                self._position_param,
                self.fetched,
            )
        else:
            self.has_next = not self._advance(page)
        return fresh

    @abstractmethod
    def _advance(self, page: Page) -> bool:
        """Move past a page that brought new records; True when it was the last."""


class OffsetPaginator(Paginator):
    """``offset``/``limit`` paging (the parameters' names are the service's): the offset
    moves on by the records that came back, and the walk ends on an empty page or when the
    offset reaches the reply's total."""

    def __init__(
        self,
        source: str,
        limit: int,
        *,
        key: RecordKey,
        offset_param: str = "offset",
        limit_param: str = "limit",
    ) -> None:
        super().__init__(source, key=key, position_param=offset_param)
        self.offset = 0
        self.limit = limit
        self._limit_param = limit_param

    def params(self) -> dict[str, int]:
        return {self._position_param: self.offset, self._limit_param: self.limit}

    def _advance(self, page: Page) -> bool:
        self.offset += len(page.records)
        return page.total is not None and self.offset >= page.total


class PageNumberPaginator(Paginator):
    """Page-number paging from page 1: the walk ends on an empty page, on the reply's last
    page, or — when only a total is given — once the pages have brought that many records
    (counted as they came, so a page size the server chose itself does not matter)."""

    def __init__(
        self,
        source: str,
        per_page: int,
        *,
        key: RecordKey,
        page_param: str = "page",
        per_page_param: str = "per_page",
    ) -> None:
        super().__init__(source, key=key, position_param=page_param)
        self.page = 1
        self.per_page = per_page
        self._per_page_param = per_page_param
        self._received = 0

    def params(self) -> dict[str, int]:
        return {self._position_param: self.page, self._per_page_param: self.per_page}

    def _advance(self, page: Page) -> bool:
        self._received += len(page.records)
        if page.last_page is not None:
            last = self.page >= page.last_page
        else:
            last = page.total is not None and self._received >= page.total
        self.page += 1
        return last


@dataclass(frozen=True)
class Paging:
    """How a service pages, declared by its connector: the paginator, the service's names
    for its parameters (``{"offset_param": "start"}``), and the page size asked for when the
    source's settings name none and the most the service serves."""

    paginator: type[OffsetPaginator | PageNumberPaginator]
    default_size: int
    max_size: int | None = None
    param_names: Mapping[str, str] = field(default_factory=dict)

    def start(self, source: str, *, key: RecordKey, page_size: int = 0) -> Paginator:
        """A new walk for ``source``; ``page_size`` 0 asks for the default."""
        size = page_size or self.default_size
        if self.max_size is not None:
            size = min(size, self.max_size)
        return self.paginator(source, size, key=key, **self.param_names)


def walk(paginator: Paginator, fetch_page: Callable[[dict[str, int]], Page]) -> Iterator[Any]:
    """Each record of the walk once: ``fetch_page(paginator.params())`` until the end."""
    while paginator.has_next:
        yield from paginator.update(fetch_page(paginator.params()))
