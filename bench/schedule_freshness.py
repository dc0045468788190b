"""Schedule freshness: how long a change in the clinic takes to reach each aggregator,
and what publishing costs while nothing changes — change-driven next to 10-minute polling.

    scripts/bootstrap.sh && .venv/bin/python bench/schedule_freshness.py --minutes 20

What runs: docker-compose.yaml's Airflow as local processes (api-server, scheduler,
dag-processor, triggerer, a Celery worker, redis-server; ``ident_dev.airflow_stack``) over
a fresh clinic database with the demo network (``--doctors`` x ``--days``), and a
loopback simulator for every aggregator of a generated integrations file: the four of
``include/integrations.yaml``, change-driven, and a polling twin of each
(``<name>_poll``, same kind, ``publish_on_change: false``, every ``--poll-minutes``). No
``clinic.export_settings`` rows are written, so every instance publishes under the same
defaults, and IDENT ids are per clinic entity, so twins send the same bodies.

Change-driven instances send gzip by default (``--no-gzip`` to send plain JSON) and their
simulators inflate it; the polling twins send plain JSON every tick, as IDENT's own polling
does — the load each change-driven instance's byte budget defaults to (issue 17).

How it measures:

1. Warm-up: the publish DAGs' first runs (the scheduler creates them from the clock), then
   a small pool of bookings that every simulator shows (the twins are triggered once), so
   cancellations and moves are possible from the first minute.
2. Change phase (``--minutes``): at random moments (``--changes-per-minute``, Poisson) it
   books, cancels or moves an appointment with plain SQL, as a practice-management system
   does, on a cell two or more days ahead that every simulator offers. A change touches
   only cells no other pending change touches: it cancels or moves only appointments whose
   previous change every simulator already shows. For each change and each simulator the
   latency runs from the commit to the moment the simulator's in-process state shows it,
   read every ``POLL_SECONDS`` (a move: its old cell free and its new one taken).
3. Settle: until every simulator shows every change (a twin needs its next tick), at most
   ``--poll-minutes`` + 3 min; a change still not shown at the end is reported with its age.
4. Idle phase (``--idle-minutes``): no changes. Per instance, from
   ``integration.publish_log``: schedule reads (runs in mode full, changes or poll),
   requests and bytes sent; and the CPU seconds of the platform's processes (each stack
   process tree, psutil, before and after; shared by all eight instances) — all scaled to
   an hour. The change phase's bytes are scaled to an hour too.

The per-change latency of the summary lines is the time until every instance of the group
shows the change (a change some instance never showed counts with its age). The last line:
``schedule freshness: p95 <N> s over <M> changes; idle hour: <R> schedule reads,
<Q> requests, <B> bytes`` for the change-driven instances; the line before it is the same
for the polling twins. Short phases make the hourly figures coarse: a 10-minute timer
ticks once per 10 minutes, so use whole multiples of ``--poll-minutes``.

Stack logs stay in ``.local/bench-schedule-freshness-<time>/``. Targets (issues 11 and
17), on a 2-core machine: p95 <= 15 s at 30 doctors and one change a minute; at 2,000
doctors and 20 changes a minute every instance sends no more bytes per hour than its
polling twin (the line ``within budget``), with its p95; an idle hour with no schedule
reads and only what a service's rules require.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import sys
import time
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import psutil
import psycopg
import pytest
import yaml
from _common import ROOT, bench_database, empty_database

from ident_dev import demo, embedded_pg

# The Airflow stack of the end-to-end tests, shared rather than copied: it maps
# docker-compose.yaml's services onto local processes and is the one place that knows how.
# It reports a failed start through pytest.fail, which main() turns into an exit message.
from ident_dev.airflow_stack import AirflowStack, airflow_stack
from ident_dev.simulators.catalog import SimulatedService, build_simulators
from ident_hooks.config import IntegrationsConfig, load_config
from ident_hooks.registry import AGGREGATOR_KINDS

POLL_SECONDS = 0.2  # how often the simulators' state is read
POOL_BOOKINGS = 8  # booked in the warm-up, for cancellations and moves from the start
FIRST_DAY_OFFSET = 2  # changes touch cells this many days ahead or later ...
LAST_DAY_OFFSET = 20  # ... and well inside every horizon
SETTLE_EXTRA_SECONDS = 180
WARM_UP_SECONDS = 900
CHANGE_KINDS = ("book", "cancel", "move")


# -- the platform ------------------------------------------------------------------------


def write_integrations(path: Path, poll_minutes: int, gzip: bool) -> IntegrationsConfig:
    """The project's aggregators, change-driven (sending gzip if ``gzip``), and a polling
    twin of each sending plain JSON; no lead sources (nothing but publishing runs)."""
    source = yaml.safe_load((ROOT / "include" / "integrations.yaml").read_text(encoding="utf-8"))
    aggregators = {}
    for name, entry in source["aggregators"].items():
        aggregators[name] = {**entry, "connection": name, "publish_on_change": True, "gzip": gzip}
        aggregators[f"{name}_poll"] = {
            **entry,
            "title": f"{entry.get('title') or AGGREGATOR_KINDS[entry['kind']].title} (опрос)",
            "connection": f"{name}_poll",
            "interval_minutes": poll_minutes,
            "publish_on_change": False,
            "gzip": False,
        }
    data = {"clinic_timezone": source.get("clinic_timezone", "Europe/Moscow")}
    path.write_text(
        yaml.safe_dump({**data, "aggregators": aggregators}, allow_unicode=True, sort_keys=False),
        encoding="utf-8",
    )
    return load_config(path)


def load_clinic(url: str, doctors: int, days: int) -> demo.DemoClinic:
    network = demo.generate(doctors, days, history_weeks=0)  # publishing reads from today on
    with psycopg.connect(url) as conn:
        demo.load(conn, network)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("vacuum analyze")
    return network


def runs(stack: AirflowStack, dag_id: str) -> list[dict]:
    response = stack.api("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100})
    response.raise_for_status()
    return response.json()["dag_runs"]


def all_finished(stack: AirflowStack, dags: Iterable[str]) -> bool:
    """No run of ``dags`` is queued or running."""
    response = stack.api(
        "GET", "/api/v2/dags/~/dagRuns", params={"state": ["queued", "running"], "limit": 100}
    )
    response.raise_for_status()
    return not {r["dag_id"] for r in response.json()["dag_runs"]} & set(dags)


def cpu_seconds(stack: AirflowStack) -> dict[str, float]:
    """CPU seconds so far of each stack process with its descendants; a descendant that
    has exited counts through its parent's ``children_*`` times."""
    used = {}
    for name, process in stack.processes.items():
        total = 0.0
        with contextlib.suppress(psutil.NoSuchProcess):
            root = psutil.Process(process.pid)
            for member in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    t = member.cpu_times()
                    total += t.user + t.system + t.children_user + t.children_system
        used[name] = total
    return used


# -- what the simulators show ------------------------------------------------------------


class Shown:
    """Whether an aggregator's simulator offers a cell as free, from its in-process state
    (as ``tests/dags/test_change_driven_stack.py``'s ``Offers`` reads it). An IDENT
    receiver's snapshot is indexed once per accepted timetable: at 2,000 doctors it holds
    hundreds of thousands of intervals."""

    def __init__(
        self, services: dict[str, SimulatedService], kinds: dict[str, str], url: str
    ) -> None:
        self.services, self.kinds = services, kinds
        self.conn = psycopg.connect(url, autocommit=True)
        self._ident_ids: dict[tuple[str, str], int | None] = {}
        self._indexes: dict[str, tuple[object, frozenset]] = {}

    def close(self) -> None:
        self.conn.close()

    def forget_requests(self) -> None:
        """Drop the simulators' request logs: this bench reads only their state, and at
        2,000 doctors every IDENT timetable received is tens of megabytes."""
        for service in self.services.values():
            for server in (service.server, service.timetable):
                if server is not None:
                    server.requests.clear()

    def _ident(self, entity: str, clinic_id: str) -> int | None:
        key = (entity, clinic_id)
        if self._ident_ids.get(key) is None:
            row = self.conn.execute(
                "select ident_id from integration.ident_ids where entity = %s and clinic_id = %s",
                key,
            ).fetchone()
            self._ident_ids[key] = row[0] if row else None
        return self._ident_ids[key]

    def _free_intervals(self, name: str, server) -> frozenset:
        snapshot = server.snapshot
        indexed = self._indexes.get(name)
        if indexed is None or indexed[0] is not snapshot:
            intervals = snapshot.intervals if snapshot else []
            free = frozenset(
                (i["BranchId"], i["DoctorId"], i["StartDateTime"][:16])
                for i in intervals
                if not i["IsBusy"]
            )
            indexed = self._indexes[name] = (snapshot, free)
        return indexed[1]

    def free(self, name: str, cell: dict) -> bool:
        service = self.services[name]
        # A partner serving leads and taking the schedule on one URL (32top) keeps the
        # schedule in ``timetable``; this bench configures no lead sources, but stays true.
        server = service.timetable or service.server
        day, start = cell["dt"], cell["time_start"]
        kind = self.kinds[name]
        if kind == "prodoctorov":
            cells = server.cells(cell["branch_id"], cell["doctor_id"])
            return any(c["dt"] == day and c["time_start"] == start and c["free"] for c in cells)
        if kind == "napopravku":
            slots = server.expanded_slots(cell["branch_id"], cell["doctor_id"], day)
            return any(slot_start == start for slot_start, _ in slots)
        branch = self._ident("branch", cell["branch_id"])
        doctor = self._ident("doctor", cell["doctor_id"])
        if branch is None or doctor is None:
            return False
        return (branch, doctor, f"{day}T{start}") in self._free_intervals(name, server)


class FreshCells:
    """Cells two or more days ahead, in random order, handed out once each and only while
    every working simulator still offers them."""

    def __init__(
        self,
        prodoctorov,
        clinic: demo.DemoClinic,
        shown: Shown,
        working: list[str],
        rng: random.Random,
    ) -> None:
        self.shown, self.working = shown, working
        zones = {branch_id: ZoneInfo(zone) for branch_id, _name, zone, *_ in clinic.branches}
        today = datetime.now(UTC).date()
        first = (today + timedelta(days=FIRST_DAY_OFFSET)).isoformat()
        last = (today + timedelta(days=LAST_DAY_OFFSET)).isoformat()
        self.groups: dict[tuple[str, str], list[dict]] = {}
        for branch_id, zone in zones.items():
            for doctor_id, *_ in clinic.doctors:
                cells = [
                    {**c, "doctor_id": doctor_id, "branch_id": branch_id, "zone": zone}
                    for c in prodoctorov.cells(branch_id, doctor_id)
                    if c["free"] and first <= c["dt"] <= last
                ]
                if cells:
                    rng.shuffle(cells)
                    self.groups[(doctor_id, branch_id)] = cells
        self.rng = rng

    def take(self, prefer: tuple[str, str] | None = None) -> dict:
        """A cell of ``prefer`` (doctor, branch) if it has one left, else of any doctor."""
        keys = [prefer] if prefer in self.groups else []
        others = list(self.groups)
        self.rng.shuffle(others)
        for key in [*keys, *others]:
            group = self.groups[key]
            while group:
                cell = group.pop()
                if all(self.shown.free(name, cell) for name in self.working):
                    return _with_times(cell)
        raise RuntimeError("no cell left that every simulator offers")


def _with_times(cell: dict) -> dict:
    zone = cell["zone"]
    starts = datetime.fromisoformat(f"{cell['dt']}T{cell['time_start']}").replace(tzinfo=zone)
    ends = datetime.fromisoformat(f"{cell['dt']}T{cell['time_end']}").replace(tzinfo=zone)
    return {**cell, "starts": starts, "ends": ends}


# -- changes -----------------------------------------------------------------------------


@dataclass
class Change:
    kind: str  # book | cancel | move | warm-up
    appointment_id: str
    expect: list[tuple[dict, bool]]  # (cell, shown as free)
    committed: float  # time.monotonic() right after the commit
    shown: dict[str, float] = field(default_factory=dict)  # aggregator -> seconds


class Clinic:
    """Writes appointments as a practice-management system does: plain SQL, one commit
    per change."""

    def __init__(self, url: str, cells: FreshCells, tag: str) -> None:
        self.conn = psycopg.connect(url)
        self.cells, self.tag = cells, tag
        self.at: dict[str, dict] = {}  # appointment -> the cell it holds
        self.last_change: dict[str, Change] = {}  # scheduled appointment -> its latest change
        self.count = 0

    def close(self) -> None:
        self.conn.close()

    def _commit(self, kind: str, appointment_id: str, expect: list[tuple[dict, bool]]) -> Change:
        self.conn.commit()
        change = Change(kind, appointment_id, expect, time.monotonic())
        self.count += 1
        return change

    def book(self, kind: str = "book") -> Change:
        cell = self.cells.take()
        appointment_id = f"bench-{self.tag}-{self.count}"
        self.conn.execute(
            "insert into clinic.appointments"
            " (appointment_id, doctor_id, branch_id, starts_at, ends_at, patient_phone)"
            " values (%s, %s, %s, %s, %s, %s)",
            (
                appointment_id,
                cell["doctor_id"],
                cell["branch_id"],
                cell["starts"],
                cell["ends"],
                f"+7999{self.count:07d}",
            ),
        )
        change = self._commit(kind, appointment_id, [(cell, False)])
        self.at[appointment_id] = cell
        self.last_change[appointment_id] = change
        return change

    def cancel(self, appointment_id: str) -> Change:
        self.conn.execute(
            "update clinic.appointments set status = 'cancelled' where appointment_id = %s",
            (appointment_id,),
        )
        change = self._commit("cancel", appointment_id, [(self.at[appointment_id], True)])
        del self.last_change[appointment_id]
        return change

    def move(self, appointment_id: str) -> Change:
        old = self.at[appointment_id]
        new = self.cells.take(prefer=(old["doctor_id"], old["branch_id"]))
        self.conn.execute(
            "update clinic.appointments"
            " set doctor_id = %s, branch_id = %s, starts_at = %s, ends_at = %s"
            " where appointment_id = %s",
            (new["doctor_id"], new["branch_id"], new["starts"], new["ends"], appointment_id),
        )
        change = self._commit("move", appointment_id, [(old, True), (new, False)])
        self.at[appointment_id] = new
        self.last_change[appointment_id] = change
        return change

    def settled(self, everywhere: Iterable[str]) -> list[str]:
        """Scheduled appointments whose latest change every one of ``everywhere`` shows."""
        names = set(everywhere)
        return [a for a, c in self.last_change.items() if names <= c.shown.keys()]


class Watch:
    """The changes not yet shown everywhere, checked against the simulators."""

    def __init__(self, shown: Shown, aggregators: list[str]) -> None:
        self.shown, self.aggregators = shown, aggregators
        self.changes: list[Change] = []

    def add(self, change: Change) -> None:
        self.changes.append(change)

    def pending(self) -> list[Change]:
        return [c for c in self.changes if len(c.shown) < len(self.aggregators)]

    def check(self) -> None:
        self.shown.forget_requests()
        now = time.monotonic()
        for change in self.pending():
            for name in self.aggregators:
                if name not in change.shown and all(
                    self.shown.free(name, cell) == free for cell, free in change.expect
                ):
                    change.shown[name] = now - change.committed


def watch_for(stack: AirflowStack, watch: Watch, seconds: float, until=None) -> None:
    """Keep checking the simulators for ``seconds`` (or until ``until()`` holds)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        stack.check_alive()
        watch.check()
        if until is not None and until():
            return
        time.sleep(POLL_SECONDS)


def change_phase(
    stack: AirflowStack,
    clinic: Clinic,
    watch: Watch,
    working: list[str],
    minutes: float,
    per_minute: float,
    rng: random.Random,
) -> list[Change]:
    """Random books, cancels and moves for ``minutes``; returns the changes made."""
    made: list[Change] = []
    end = time.monotonic() + minutes * 60
    next_at = time.monotonic() + rng.expovariate(per_minute / 60)
    while time.monotonic() < end:
        stack.check_alive()
        if time.monotonic() >= next_at:
            settled = clinic.settled(working)
            kind = rng.choice(CHANGE_KINDS) if settled else "book"
            if kind == "book":
                change = clinic.book()
            elif kind == "cancel":
                change = clinic.cancel(rng.choice(settled))
            else:
                change = clinic.move(rng.choice(settled))
            watch.add(change)
            made.append(change)
            next_at += rng.expovariate(per_minute / 60)
        watch.check()
        time.sleep(POLL_SECONDS)
    return made


# -- the report --------------------------------------------------------------------------


def publish_totals(url: str, since: datetime, until: datetime) -> dict[str, dict]:
    """Per aggregator, the publishing runs that started in [since, until)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            """
            select aggregator, count(*),
                   count(*) filter (where mode in ('full', 'changes', 'poll')),
                   coalesce(sum(requests_sent), 0)::bigint, coalesce(sum(bytes_sent), 0)::bigint,
                   count(*) filter (where status = 'failed')
              from integration.publish_log
             where started_at >= %s and started_at < %s
             group by aggregator
            """,
            (since, until),
        ).fetchall()
    keys = ("runs", "reads", "requests", "bytes", "failed")
    return {name: dict(zip(keys, values, strict=True)) for name, *values in rows}


def failures(url: str) -> list[tuple[str, str, int]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select aggregator, coalesce(error, 'http ' || http_status::text, '?'), count(*)"
            "  from integration.publish_log where status = 'failed'"
            " group by 1, 2 order by 1, 2"
        ).fetchall()


def latencies(changes: list[Change], names: list[str], end: float) -> list[float]:
    """Per change, seconds until every one of ``names`` showed it (its age if one never did)."""
    return [
        max(c.shown.get(n, end - c.committed) for n in names) if names else 0.0 for c in changes
    ]


def quantiles(values: list[float]) -> tuple[float, float, float]:
    if not values:
        return (float("nan"),) * 3
    p50, p95 = np.percentile(values, [50, 95])
    return float(p50), float(p95), max(values)


def _seconds(value: float) -> str:
    return "-" if value != value else f"{value:.1f}"


def report(
    config: IntegrationsConfig,
    changes: list[Change],
    end: float,
    during: tuple[dict[str, dict], float],
    idle: tuple[dict[str, dict], float],
    cpu: dict[str, tuple[float, float]],
    failed: list[tuple[str, str, int]],
) -> None:
    busy_totals, busy_hours = during
    idle_totals, idle_hours = idle
    counts = {kind: sum(c.kind == kind for c in changes) for kind in CHANGE_KINDS}
    print(
        f"\n{len(changes)} changes ("
        + ", ".join(f"{n} {kind}" for kind, n in counts.items())
        + f"); change phase {busy_hours * 60:.1f} min, idle phase {idle_hours * 60:.1f} min"
    )
    latency = (
        f"{'aggregator':<18} {'publish':<7} {'shown':>7} {'p50 s':>7} {'p95 s':>7} {'max s':>7}"
        f" {'oldest unshown':>14}"
    )
    busy_columns = f"{'runs':>4} {'requests':>8} {'bytes/h':>12}"
    idle_columns = f"{'reads/h':>7} {'requests/h':>10} {'bytes/h':>12}"
    header = " | ".join((latency, busy_columns, idle_columns))
    print(
        " " * len(latency)
        + " | "
        + "change phase".center(len(busy_columns))
        + " | "
        + "idle hour".center(len(idle_columns))
    )
    print(header)
    print("-" * len(header))
    for aggregator in config.aggregators:
        name = aggregator.name
        shown = [c.shown[name] for c in changes if name in c.shown]
        unshown = [end - c.committed for c in changes if name not in c.shown]
        p50, p95, worst = quantiles(shown)
        busy = busy_totals.get(name, {})
        quiet = idle_totals.get(name, {})
        print(
            f"{name:<18} {'change' if aggregator.publish_on_change else 'poll':<7}"
            f" {f'{len(shown)}/{len(changes)}':>7} {_seconds(p50):>7} {_seconds(p95):>7}"
            f" {_seconds(worst):>7} {(f'{max(unshown):.0f} s' if unshown else '-'):>14}"
            f" | {busy.get('runs', 0):>4} {busy.get('requests', 0):>8}"
            f" {busy.get('bytes', 0) / busy_hours:>12,.0f}"
            f" | {quiet.get('reads', 0) / idle_hours:>7.0f}"
            f" {quiet.get('requests', 0) / idle_hours:>10.0f}"
            f" {quiet.get('bytes', 0) / idle_hours:>12,.0f}"
        )
    for name, error, count in failed:
        print(f"FAILED runs of {name} ({count}): {error[:300]}")

    print(
        "\nplatform CPU seconds per hour (all eight instances together): "
        + ", ".join(
            f"{process} {idle_cpu / idle_hours:.0f} idle / {busy_cpu / busy_hours:.0f} changing"
            for process, (busy_cpu, idle_cpu) in cpu.items()
        )
    )
    total_busy = sum(b for b, _ in cpu.values())
    total_idle = sum(i for _, i in cpu.values())
    print(
        f"platform CPU total: {total_idle / idle_hours:.0f} s per idle hour,"
        f" {total_busy / busy_hours:.0f} s per hour of changes"
    )

    groups = {
        "change": [a.name for a in config.aggregators if a.publish_on_change],
        "poll": [a.name for a in config.aggregators if not a.publish_on_change],
    }
    bytes_per_hour = {
        group: sum(busy_totals.get(n, {}).get("bytes", 0) for n in names) / busy_hours
        for group, names in groups.items()
    }
    ratio = (
        f"polling sends {bytes_per_hour['poll'] / bytes_per_hour['change']:.1f}x as much"
        if bytes_per_hour["change"]
        else "change-driven sent nothing"
    )
    print(
        f"bytes per hour while changing: change-driven {bytes_per_hour['change']:,.0f},"
        f" polling {bytes_per_hour['poll']:,.0f} ({ratio})"
    )

    def line(names: list[str]) -> str:
        _, p95, _ = quantiles(latencies(changes, names, end))
        reads, requests, sent = (
            round(sum(idle_totals.get(n, {}).get(key, 0) for n in names) / idle_hours)
            for key in ("reads", "requests", "bytes")
        )
        return (
            f"p95 {_seconds(p95)} s over {len(changes)} changes; idle hour: {reads} schedule"
            f" reads, {requests} requests, {sent} bytes"
        )

    def sent(name: str) -> float:
        return busy_totals.get(name, {}).get("bytes", 0) / busy_hours

    twins = {n: f"{n}_poll" for n in groups["change"] if f"{n}_poll" in groups["poll"]}
    for name, twin in twins.items():
        _, p95, _ = quantiles(latencies(changes, [name], end))
        print(
            f"within budget: {name} {sent(name):,.0f} bytes/h"
            f" {'<=' if sent(name) <= sent(twin) else '>'} {twin} {sent(twin):,.0f} bytes/h;"
            f" p95 {_seconds(p95)} s"
        )
    minutes = {int(a.interval.total_seconds() // 60) for a in config.aggregators}
    print(f"polling every {'/'.join(map(str, sorted(minutes)))} min: {line(groups['poll'])}")
    print(f"schedule freshness: {line(groups['change'])}")


# -- the run -----------------------------------------------------------------------------


@contextlib.contextmanager
def platform(
    folder: Path,
    config_path: Path,
    services: dict[str, SimulatedService],
    clinic_url: str,
    timeout_seconds: float,
) -> Generator[AirflowStack]:
    """The Airflow stack on a metadata database of its own, pointed at the simulators."""
    metadata_url, drop_metadata = empty_database("airflow_bench")
    try:
        with airflow_stack(
            folder,
            metadata_url=metadata_url,
            clinic_connection=embedded_pg.airflow_connection(clinic_url),
            extra_env={
                "IDENT_INTEGRATIONS_CONFIG": str(config_path),
                **{s.env_var: s.airflow_connection for s in services.values()},
            },
            timeout_seconds=timeout_seconds,
        ) as stack:
            yield stack
    finally:
        drop_metadata()


def first_runs(stack: AirflowStack, dags: dict[str, str]) -> list[str]:
    """Unpause the publish DAGs, let the scheduler create runs, wait for the first ones;
    returns the aggregators whose first run succeeded."""
    for dag_id in dags.values():
        stack.wait_for_dag(dag_id)
        stack.unpause(dag_id)
    stack.restart_scheduler_creating_runs()
    stack.wait_for(
        "the first run of every publish DAG",
        lambda: all(runs(stack, d) for d in dags.values()) and all_finished(stack, dags.values()),
        poll=2.0,
    )
    return [n for n, d in dags.items() if all(r["state"] == "success" for r in runs(stack, d))]


def watchers_listening(url: str) -> bool:
    from ident_hooks.triggers import APPLICATION_NAME, SCHEDULE_APPLICATION_NAME

    with psycopg.connect(url) as conn:
        (count,) = conn.execute(
            "select count(distinct application_name) from pg_stat_activity"
            " where application_name = any(%s)",
            ([APPLICATION_NAME, SCHEDULE_APPLICATION_NAME],),
        ).fetchone()
    return count == 2  # the leads watcher and the clinic schedule watcher


def measure(
    args: argparse.Namespace,
    stack: AirflowStack,
    config: IntegrationsConfig,
    services: dict[str, SimulatedService],
    network: demo.DemoClinic,
    clinic_url: str,
) -> None:
    rng = random.Random(args.seed)
    names = [a.name for a in config.aggregators]
    kinds = {a.name: a.kind for a in config.aggregators}
    dags = {a.name: a.dag_id for a in config.aggregators}
    t = time.monotonic()
    working = first_runs(stack, dags)
    print(f"first runs done ({time.monotonic() - t:.0f} s); succeeded: {', '.join(working)}")
    broken = [n for n in names if n not in working]
    if broken:
        print(f"first run FAILED for {', '.join(broken)} (their changes will show as unshown)")
    stack.wait_for("both watchers to listen", lambda: watchers_listening(clinic_url))

    shown = Shown(services, kinds, clinic_url)
    source = next((n for n in working if kinds[n] == "prodoctorov"), None)
    if source is None:
        stack.fail("no ПроДокторов instance published: no cells to choose changes from")
    cells = FreshCells(services[source].server, network, shown, working, rng)
    clinic = Clinic(clinic_url, cells, f"{rng.getrandbits(24):06x}")
    try:
        # Warm-up: bookings every simulator shows, for cancellations and moves from the start.
        warm = Watch(shown, working)
        for _ in range(POOL_BOOKINGS):
            warm.add(clinic.book(kind="warm-up"))
        for a in config.aggregators:
            if not a.publish_on_change and a.name in working:
                stack.trigger(dags[a.name])
        watch_for(stack, warm, WARM_UP_SECONDS, until=lambda: not warm.pending())
        if warm.pending():
            stack.fail("the warm-up bookings did not reach every simulator")
        stack.wait_for("the warm-up runs to finish", lambda: all_finished(stack, dags.values()))

        watch = Watch(shown, names)
        print(f"change phase: {args.minutes} min, {args.changes_per_minute} changes a minute")
        busy_since, cpu_before = datetime.now(UTC), cpu_seconds(stack)
        t = time.monotonic()
        changes = change_phase(
            stack, clinic, watch, working, args.minutes, args.changes_per_minute, rng
        )
        busy_until, busy_hours = datetime.now(UTC), (time.monotonic() - t) / 3600
        cpu_busy = cpu_seconds(stack)

        print(f"settling: up to {settle_seconds(args) / 60:.0f} min for every simulator to show")
        watch_for(
            stack,
            watch,
            settle_seconds(args),
            until=lambda: (
                not [c for c in watch.pending() if set(working) - c.shown.keys()]
                and all_finished(stack, dags.values())
            ),
        )

        print(f"idle phase: {args.idle_minutes} min without changes")
        idle_since, cpu_idle = datetime.now(UTC), cpu_seconds(stack)
        t = time.monotonic()
        watch_for(stack, watch, args.idle_minutes * 60)
        idle_until, idle_hours = datetime.now(UTC), (time.monotonic() - t) / 3600
        cpu_after = cpu_seconds(stack)
        end = time.monotonic()
    finally:
        clinic.close()
        shown.close()

    cpu = {
        process: (
            cpu_busy[process] - cpu_before.get(process, 0.0),
            cpu_after[process] - cpu_idle.get(process, 0.0),
        )
        for process in cpu_after
    }
    report(
        config,
        changes,
        end,
        (publish_totals(clinic_url, busy_since, busy_until), busy_hours),
        (publish_totals(clinic_url, idle_since, idle_until), idle_hours),
        cpu,
        failures(clinic_url),
    )


def settle_seconds(args: argparse.Namespace) -> float:
    return args.poll_minutes * 60 + SETTLE_EXTRA_SECONDS


def run(args: argparse.Namespace) -> None:
    folder = ROOT / ".local" / f"bench-schedule-freshness-{datetime.now():%Y%m%d-%H%M%S}"
    folder.mkdir(parents=True)
    print(f"stack logs: {folder}; --seed {args.seed}")
    if args.idle_minutes < args.poll_minutes:
        print(
            f"note: an idle phase shorter than the {args.poll_minutes}-minute timer may see no"
            " tick at all; its hourly figures are then zero for every instance"
        )
    config_path = folder / "integrations.yaml"
    config = write_integrations(config_path, args.poll_minutes, args.gzip)
    # The triggers module (for the watchers' connection name) imports Airflow, which
    # writes under AIRFLOW_HOME: keep that in the run's folder too.
    os.environ["AIRFLOW_HOME"] = str(folder / "bench-airflow-home")
    timeout = 2 * WARM_UP_SECONDS + (args.minutes + args.idle_minutes) * 60 + settle_seconds(args)

    clinic_url, drop_clinic = bench_database()
    try:
        t = time.monotonic()
        network = load_clinic(clinic_url, args.doctors, args.days)
        print(
            f"demo clinic: {len(network.doctors)} doctors, {len(network.branches)} branches,"
            f" {len(network.work_intervals)} work intervals,"
            f" {len(network.appointments)} appointments ({time.monotonic() - t:.0f} s)"
        )
        services = build_simulators(
            [(doctor_id, name) for doctor_id, name, *_ in network.doctors],
            [branch_id for branch_id, *_ in network.branches],
            config=config,
            seed=args.seed,
        )
        for service in services.values():
            service.server.start()
        try:
            with platform(folder, config_path, services, clinic_url, timeout) as stack:
                measure(args, stack, config, services, network, clinic_url)
        finally:
            for service in services.values():
                service.server.stop()
    finally:
        drop_clinic()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20, help="length of the change phase")
    parser.add_argument("--idle-minutes", type=float, default=10, help="length of the idle phase")
    parser.add_argument("--changes-per-minute", type=float, default=1.0)
    parser.add_argument("--doctors", type=int, default=30)
    parser.add_argument("--days", type=int, default=33)
    parser.add_argument(
        "--poll-minutes", type=int, default=10, help="the polling twins' interval (today's)"
    )
    parser.add_argument(
        "--gzip",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the change-driven instances send gzip (the twins never do)",
    )
    parser.add_argument("--seed", type=int, help="repeat a run's choice of cells and moments")
    args = parser.parse_args()
    if args.seed is None:
        args.seed = random.randrange(10**6)
    try:
        run(args)
    except (pytest.fail.Exception, pytest.skip.Exception) as stopped:
        sys.exit(f"schedule freshness: {stopped}")


if __name__ == "__main__":
    main()
