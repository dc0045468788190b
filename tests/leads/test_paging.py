"""The shared paginators against plain Python "servers": how a walk moves and when it ends.

Each server here is a function of the paging parameters over a list of records, playing one
behaviour the connectors meet: a clamped page size, a total, a last page, pages that shift
while they are read, and a server that ignores the offset or the page.
"""

from __future__ import annotations

import logging

import pytest

from ident_hooks.leads.paging import (
    OffsetPaginator,
    Page,
    PageNumberPaginator,
    field_key,
    walk,
)

RECORDS = [{"id": n, "name": f"lead {n}"} for n in range(1, 24)]  # 23 records
KEY = field_key("id")


class OffsetServer:
    """``offset``/``limit`` over ``records``, clamping the limit at ``clamp`` like partners do."""

    def __init__(self, records, *, clamp=None, total=False, ignore_offset=False):
        self.records, self.clamp, self.total = records, clamp, total
        self.ignore_offset = ignore_offset
        self.asked: list[dict[str, int]] = []

    def __call__(self, params: dict[str, int]) -> Page:
        self.asked.append(params)
        size = min(params["limit"], self.clamp or params["limit"])
        start = 0 if self.ignore_offset else params["offset"]
        chunk = self.records[start : start + size]
        return Page(chunk, total=len(self.records) if self.total else None)


class PageServer:
    """``page``/``per_page`` from page 1, telling what its meta would tell."""

    def __init__(self, records, *, meta=("last_page",), ignore_page=False):
        self.records, self.meta, self.ignore_page = records, meta, ignore_page
        self.asked: list[dict[str, int]] = []

    def __call__(self, params: dict[str, int]) -> Page:
        self.asked.append(params)
        page, size = 1 if self.ignore_page else params["page"], params["per_page"]
        chunk = self.records[(page - 1) * size : page * size]
        last_page = max(1, -(-len(self.records) // size))
        return Page(
            chunk,
            total=len(self.records) if "total" in self.meta else None,
            last_page=last_page if "last_page" in self.meta else None,
        )


def ids(records) -> list[int]:
    return [record["id"] for record in records]


# -- offset walks ---------------------------------------------------------------------------
def test_a_clamped_page_is_not_the_end_the_offset_moves_by_what_came_back():
    server = OffsetServer(RECORDS, clamp=5)
    paginator = OffsetPaginator("site_main", limit=10, key=KEY)

    assert ids(walk(paginator, server)) == ids(RECORDS)
    assert [params["offset"] for params in server.asked] == [0, 5, 10, 15, 20, 23]
    assert {params["limit"] for params in server.asked} == {10}  # asked as configured
    assert not paginator.has_next and paginator.fetched == 23


def test_a_total_ends_the_walk_without_asking_for_the_empty_page():
    server = OffsetServer(RECORDS, clamp=5, total=True)

    records = list(walk(OffsetPaginator("uis", limit=10, key=KEY), server))

    assert ids(records) == ids(RECORDS)
    assert [params["offset"] for params in server.asked] == [0, 5, 10, 15, 20]


def test_the_service_names_its_own_parameters():
    server = OffsetServer([])

    def flexbe(params):
        return server({"offset": params["start"], "limit": params["count"]})

    paginator = OffsetPaginator(
        "flexbe", limit=1000, key=KEY, offset_param="start", limit_param="count"
    )
    assert paginator.params() == {"start": 0, "count": 1000}
    assert list(walk(paginator, flexbe)) == []
    assert server.asked == [{"offset": 0, "limit": 1000}]


def test_a_server_ignoring_the_offset_stops_the_walk_keeping_page_one(caplog):
    server = OffsetServer(RECORDS, clamp=10, total=True, ignore_offset=True)
    paginator = OffsetPaginator("site_main", limit=10, key=KEY)

    with caplog.at_level(logging.WARNING, logger="ident_hooks.leads.paging"):
        records = list(walk(paginator, server))

    assert ids(records) == ids(RECORDS[:10])
    assert [params["offset"] for params in server.asked] == [0, 10]  # not on to the total
    (warning,) = caplog.records
    assert warning.getMessage() == (
        "site_main: the page at offset=10 brought 10 records, none of them new: the server"
        " seems to ignore offset. Paging stopped after 10 records; the rest of the period"
        " is not fetched until the server pages correctly"
    )


def test_pages_that_shift_while_read_pass_each_record_once_and_go_on():
    # Newest first: a lead arriving between two requests pushes the last one onto page 2.
    replies = [
        Page([{"id": 9}, {"id": 8}, {"id": 7}]),
        Page([{"id": 7}, {"id": 6}, {"id": 5}]),
        Page([{"id": 5}, {"id": 4}]),
        Page([]),
    ]
    asked = []

    def server(params):
        asked.append(params["offset"])
        return replies[len(asked) - 1]

    paginator = OffsetPaginator("site_main", limit=3, key=KEY)

    assert ids(walk(paginator, server)) == [9, 8, 7, 6, 5, 4]
    assert asked == [0, 3, 6, 8]


def test_the_walk_is_told_nothing_after_its_end():
    paginator = OffsetPaginator("uis", limit=10, key=KEY)
    assert paginator.update(Page([])) == []
    with pytest.raises(RuntimeError, match="uis: this walk has ended"):
        paginator.update(Page(RECORDS[:1]))


# -- page-number walks ----------------------------------------------------------------------
def test_the_last_page_ends_the_walk():
    server = PageServer(RECORDS)
    paginator = PageNumberPaginator(
        "napopravku",
        per_page=10,
        key=KEY,
        page_param="paging[page]",
        per_page_param="paging[per_page]",
    )

    def napopravku(params):
        return server({"page": params["paging[page]"], "per_page": params["paging[per_page]"]})

    assert ids(walk(paginator, napopravku)) == ids(RECORDS)
    assert [params["page"] for params in server.asked] == [1, 2, 3]
    assert {params["per_page"] for params in server.asked} == {10}


def test_without_a_last_page_the_total_counts_the_records_that_came():
    server = PageServer(RECORDS, meta=("total",))

    records = list(walk(PageNumberPaginator("napopravku", per_page=10, key=KEY), server))

    assert ids(records) == ids(RECORDS)
    assert [params["page"] for params in server.asked] == [1, 2, 3]


def test_without_meta_a_short_page_is_not_the_end_only_an_empty_one():
    server = PageServer(RECORDS, meta=())

    records = list(walk(PageNumberPaginator("napopravku", per_page=10, key=KEY), server))

    assert ids(records) == ids(RECORDS)
    assert [params["page"] for params in server.asked] == [1, 2, 3, 4]


def test_a_server_ignoring_the_page_stops_the_walk_keeping_page_one(caplog):
    server = PageServer(RECORDS, ignore_page=True)

    with caplog.at_level(logging.WARNING, logger="ident_hooks.leads.paging"):
        records = list(walk(PageNumberPaginator("napopravku", per_page=10, key=KEY), server))

    assert ids(records) == ids(RECORDS[:10])
    assert [params["page"] for params in server.asked] == [1, 2]
    (warning,) = caplog.records
    assert warning.getMessage().startswith("napopravku: the page at page=2 brought 10 records")
    assert "seems to ignore page." in warning.getMessage()


# -- identity -------------------------------------------------------------------------------
def test_a_record_is_known_by_its_id_as_text_or_else_by_its_content():
    key = field_key("Id")
    assert key({"Id": 2129}) == key({"Id": "2129"}) == key({"Id": " 2129 ", "x": 1})
    assert key({"Id": 1}) != key({"Id": 2})
    # No usable id (missing, empty, a boolean, not an object): the whole record tells.
    assert key({"Name": "a"}) == key({"Name": "a"}) != key({"Name": "b"})
    assert key({"Id": ""}) != key({"Id": " "})
    assert key({"Id": True}) != key({"Id": 1})
    assert key("not an object") != key("something else")


def test_records_without_an_id_are_passed_on_once_each():
    broken = [{"name": "no id"}, {"name": "no id"}, {"name": "another"}, "not an object"]
    server = OffsetServer(broken)

    assert list(walk(OffsetPaginator("flexbe", limit=10, key=KEY), server)) == [
        {"name": "no id"},
        {"name": "another"},
        "not an object",
    ]
