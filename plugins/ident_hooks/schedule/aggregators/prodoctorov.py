"""ПроДокторов: ``POST v2/doctors/send_schedule/`` with free and busy cells, one branch a request.

Body, one branch in each request::

    {"schedule": {"<branch id>": "<branch name>",
                  "data": {"<branch id>": {"<doctor id>": {
                      "efio": "<full name>", "espec": "<specialty>",
                      "cells": [{"dt": "YYYY-MM-DD", "time_start": "HH:MM",
                                 "time_end": "HH:MM", "free": true}]}}}}}

Where each fact comes from:

* The body shape, ``efio``/``espec``, ``cells`` with ``dt``, ``time_start``,
  ``time_end``, ``free`` and optional ``room``, dates ``YYYY-MM-DD`` and times
  ``HH:MM`` branch-local: integrations.md (ПроДокторов) and the Go client
  ``mkv/prodoctorov`` (``internal/service/prodoctorov/schedule.go``: ``timeCellDto``
  and the formats ``2006-01-02`` / ``15:04``; ``schedule_test.go``: a whole body).
* The branch name beside ``data``, under the branch id: integrations.md
  (Corrections, December 2026 → ПроДокторов) and every public v2 client. The Go
  client requires it (``internal/service/prodoctorov/config.go``: ``ErrNoFilialName``);
  the TypeScript MedFlex client ``ClawedRex555-creator/dental-mental``
  (``lib/medflex/schedule.server.ts``) sends ``{[filialId]: filialName, data: …}``; a
  Python exporter in the public code index (repository not identified by the index)
  sends the id as the name, ``{"1": "1", "data": {"1": …}}`` — what we send when the
  clinic left a branch's name blank.
* One branch per request, the whole branch: the Go client sends its one branch
  (``schedule.go``: ``NewSchedule(filialID)``), the TypeScript client re-sends the
  full schedule every 15 minutes (``docs/MEDFLEX-INTEGRATION.md``,
  ``lib/medflex/push.server.ts``), a PHP client sends every branch in one body;
  none splits a branch. A
  receiver that keeps one schedule document per branch would be left with only the
  last part of a split branch, so a branch is never split here. The service documents
  no size limit (a 30-doctor, 30-day branch is about 430 kB), so none is checked unless
  the instance sets ``max_request_bytes``: a branch over it then raises
  :class:`~ident_hooks.schedule.aggregators.RequestTooLarge` naming the limit before
  anything is sent (``Cut.BRANCH``). A body the service
  finds too large fails the run with its HTTP status.
* A cell's end is after its start and never ``24:00`` (the Go client skips any cell
  with ``time_start >= time_end``): guaranteed by the slot engine
  (:mod:`ident_hooks.schedule.engine`), whose ``MINUTE_LABELS`` stop at ``23:59``.
* Auth: ``Authorization: Token <token>`` (integrations.md, ПроДокторов; the registry's
  ``PRODOCTOROV_TOKEN``).
* Success is any 2xx (Go: ``internal/service/prodoctorov/upload.go``; TypeScript:
  ``lib/medflex/client.server.ts``); the HTTP client treats every 2xx as success.

Every assigned doctor is listed, with ``cells: []`` when nothing of theirs is left
in the horizon. ``room`` is optional (the PHP and TypeScript clients leave it out)
and not sent: the clinic database keeps no rooms. ``espec`` is sent although the
TypeScript client omits it. Newer accounts may use the host
``https://mis-api.medflex.ru`` with the same paths (integrations.md Corrections; the
TypeScript client's default, and a commented-out alternative in the PHP client): it
is the connection's Host, not decided here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ident_hooks.registry import PRODOCTOROV_TOKEN
from ident_hooks.schedule.aggregators import BranchRendering, Cut, SchedulePublisher
from ident_hooks.schedule.aggregators.rendering import (
    branch_names,
    doctor_days,
    doctor_names,
    json_text,
    local_minutes,
    render_distinct,
)
from ident_hooks.schedule.engine import MINUTE_LABELS, Schedule, day_label


class ProdoctorovPublisher(SchedulePublisher):
    """One branch document a request, free and busy cells (see the module notes)."""

    auth = PRODOCTOROV_TOKEN
    endpoints = {"schedule": "v2/doctors/send_schedule/"}
    cut = Cut.BRANCH

    def render_branches(self, schedule: Schedule, branches: pd.DataFrame) -> BranchRendering:
        cells = schedule.cells
        day, start, end = local_minutes(cells)
        free = cells["is_free"].to_numpy()
        keys = ((day * 1441 + start) * 1441 + end) * 2 + free.astype(np.int64)

        def render_cell(row: int) -> bytes:
            return (
                f'{{"dt":"{day_label(int(day[row]))}",'
                f'"time_start":"{MINUTE_LABELS[start[row]]}",'
                f'"time_end":"{MINUTE_LABELS[end[row]]}",'
                f'"free":{"true" if free[row] else "false"}}}'
            ).encode()

        fragments = render_distinct(keys, render_cell)
        names = doctor_names(schedule)
        titles = branch_names(branches)

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

        def render_document(branch_id: str, blocks: list[tuple[str, bytes]]) -> bytes:
            branch_key = json_text(branch_id)
            return b"".join(
                [
                    b'{"schedule":{',
                    branch_key,
                    b":",
                    json_text(titles.get(branch_id, "").strip() or branch_id),
                    b',"data":{',
                    branch_key,
                    b":{",
                    b",".join(block for _, block in blocks),
                    b"}}}}",
                ]
            )

        return BranchRendering(
            doctor_days(cells, fragments, lambda _branch, _doctor, _date, parts: b",".join(parts)),
            render_doctor,
            render_document,
        )
