"""The integrations config (``include/integrations.yaml``): which DAGs exist, how often.

Read at DAG parse time, so it must stay cheap: one small file, no database, no network.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from ident_hooks.paths import INCLUDE_DIR
from ident_hooks.registry import (
    AGGREGATOR_KINDS,
    CONVERSION_SINK_KINDS,
    COST_SOURCE_KINDS,
    LEAD_SOURCE_KINDS,
    SITES_KIND,
    AggregatorKind,
    ConversionSinkKind,
    CostSourceKind,
    LeadSourceKind,
)
from ident_hooks.reports.channel_codes import CHANNELS

DEFAULT_CONFIG_PATH = INCLUDE_DIR / "integrations.yaml"
# A deployment (or a test) may keep its own file elsewhere.
CONFIG_PATH_VARIABLE = "IDENT_INTEGRATIONS_CONFIG"
_NAME = re.compile(r"^[a-z0-9_]+$")


class ConfigError(ValueError):
    """integrations.yaml says something that cannot work."""


@dataclass(frozen=True)
class Aggregator:
    """A configured aggregator: an instance of an aggregator kind (registry.py)."""

    name: str  # the key of clinic.export_settings
    kind: str
    title: str  # shown to staff
    connection: str
    interval: timedelta
    # True: a run publishes what the change log recorded since the last one and is also
    # started by the clinic_schedule Asset (issue 11). False: every run rereads the whole
    # clinic on the timer, for a clinic database that cannot carry the triggers.
    publish_on_change: bool = True
    # Request bodies go compressed (Content-Encoding: gzip), for a receiver that inflates.
    gzip: bool = False
    # Bytes a change-driven instance may send per hour (None: what polling every
    # `interval` would send; ident_hooks.schedule.budget).
    byte_budget_per_hour: int | None = None
    # The largest body the receiver takes, decoded (None: the kind's default).
    max_request_bytes: int | None = None

    @property
    def spec(self) -> AggregatorKind:
        return AGGREGATOR_KINDS[self.kind]

    @property
    def dag_id(self) -> str:
        return f"publish_schedule_{self.name}"

    @property
    def request_limit(self) -> int | None:
        """The receiver's body limit: this instance's, else its kind's (None: not known)."""
        return self.max_request_bytes or self.spec.max_request_bytes


@dataclass(frozen=True)
class LeadSource:
    """A configured lead source: an instance of a lead-source kind (registry.py)."""

    name: str  # also the `source` column of leads and the cursor's suffix
    kind: str
    title: str  # shown to staff
    connection: str
    interval: timedelta | None  # None for a push kind: nothing is pulled
    initial_days: int = 7  # how far back the very first pull (no cursor yet) reaches
    # The marketing channel of all its leads whatever their tags (None: tags decide).
    channel: str | None = None

    @property
    def spec(self) -> LeadSourceKind:
        return LEAD_SOURCE_KINDS[self.kind]

    @property
    def dag_id(self) -> str:
        """The pull DAG's id (a push kind has none: the intake service takes its leads)."""
        return f"pull_leads_{self.name}"


@dataclass(frozen=True)
class CostSource:
    """A configured cost source: an instance of a cost-source kind (registry.py)."""

    name: str  # the `source` column of report.ad_costs
    kind: str
    title: str  # shown to staff
    connection: str
    # Each import reads this many days up to yesterday (clinic time): the platform revises
    # the recent ones.
    days_back: int
    # Costs with VAT (what the advertiser pays, what a lead's cost is compared with) or
    # without it (what the platform's invoices show before tax).
    include_vat: bool = True

    @property
    def spec(self) -> CostSourceKind:
        return COST_SOURCE_KINDS[self.kind]

    @property
    def dag_id(self) -> str:
        return f"import_ad_costs_{self.name}"


CONVERSION_EVENTS = ("lead", "first_visit")
# A goal identifier as Metrica takes it: Latin letters, digits and _ . - (a Cyrillic
# display name is refused; marketing-apis.md A).
_GOAL = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


@dataclass(frozen=True)
class ConversionSink:
    """A configured conversion sink: an instance of a conversion-sink kind (registry.py).

    Which events go is configuration: ``events`` from ``lead`` (the lead itself, at its
    creation) and ``first_visit`` (the first visit of the lead's patient: an appointment
    with status ``completed`` and the lead's phone, starting within ``visit_window_days``
    after the lead, with its ``amount`` as revenue). ``goals`` maps each event to the
    service's goal identifier. Nothing older than ``lookback_days`` goes (a new sink does
    not replay the clinic's history). ``send_hashed_phones``: leads without a click id may
    go by the md5 of their phone, where the kind can do that; off by default, because it
    sends personal data (hashed, but still the patient's) out of the clinic
    (docs/integrations.md says when a clinic may turn it on).
    """

    name: str
    kind: str
    title: str
    connection: str
    events: tuple[str, ...] = CONVERSION_EVENTS
    goals: Mapping[str, str] = dataclass_field(default_factory=dict, hash=False)
    visit_window_days: int = 30
    lookback_days: int = 21
    send_hashed_phones: bool = False
    counter_id: str | None = None
    currency: str = "RUB"

    @property
    def spec(self) -> ConversionSinkKind:
        return CONVERSION_SINK_KINDS[self.kind]

    @property
    def dag_id(self) -> str:
        return f"send_conversions_{self.name}"


@dataclass(frozen=True)
class IntegrationsConfig:
    clinic_timezone: str
    aggregators: tuple[Aggregator, ...]
    lead_sources: tuple[LeadSource, ...]
    cost_sources: tuple[CostSource, ...] = ()
    conversion_sinks: tuple[ConversionSink, ...] = ()

    def conversion_sink(self, name: str) -> ConversionSink:
        found = next((s for s in self.conversion_sinks if s.name == name), None)
        if found is None:
            raise KeyError(f"no conversion sink {name!r} in the integrations config")
        return found

    def cost_source(self, name: str) -> CostSource:
        found = next((s for s in self.cost_sources if s.name == name), None)
        if found is None:
            raise KeyError(f"no cost source {name!r} in the integrations config")
        return found

    def lead_source(self, name: str) -> LeadSource:
        found = next((s for s in self.lead_sources if s.name == name), None)
        if found is None:
            raise KeyError(f"no lead source {name!r} in the integrations config")
        return found

    @property
    def demand_aggregator(self) -> str | None:
        """The aggregator whose export rules count ``report.doctor_demand``'s free slots:
        the first instance of the registry's demand-rules kind (None: the default rules)."""
        return next((a.name for a in self.aggregators if a.spec.sets_demand_rules), None)

    def source_channels(self) -> dict[str, str]:
        """Lead source -> the marketing channel of all its leads, for sources that fix one."""
        return {s.name: s.channel for s in self.lead_sources if s.channel is not None}

    def aggregator(self, name: str) -> Aggregator:
        found = next((a for a in self.aggregators if a.name == name), None)
        if found is None:
            raise KeyError(f"no aggregator {name!r} in the integrations config")
        return found


def _kind(where: str, entry: dict[str, Any], kinds: Mapping[str, Any]) -> str:
    kind = entry.get("kind")
    if kind not in kinds:
        raise ConfigError(f"{where}: kind must be one of {', '.join(kinds)} (got {kind!r})")
    return kind


def _title(where: str, entry: dict[str, Any], default: str) -> str:
    title = entry.get("title", default)
    if not isinstance(title, str) or not title.strip():
        raise ConfigError(f"{where}: title must be a non-empty text")
    return title.strip()


def _interval(where: str, entry: dict[str, Any], minimum: int) -> timedelta:
    minutes = entry.get("interval_minutes")
    if not isinstance(minutes, int) or isinstance(minutes, bool) or minutes < minimum:
        raise ConfigError(f"{where}: interval_minutes must be a whole number >= {minimum}")
    return timedelta(minutes=minutes)


def _flag(where: str, entry: dict[str, Any], key: str, default: bool) -> bool:
    value = entry.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: {key} must be true or false")
    return value


def _bytes(where: str, entry: dict[str, Any], key: str) -> int | None:
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1_000:
        raise ConfigError(f"{where}: {key} must be a whole number of bytes, at least 1000")
    return value


def _initial_days(where: str, days: Any) -> int:
    if not isinstance(days, int) or isinstance(days, bool) or not 0 <= days <= 366:
        raise ConfigError(f"{where}: initial_days must be a whole number from 0 to 366")
    return days


def _days_back(where: str, entry: dict[str, Any], default: int) -> int:
    days = entry.get("days_back", default)
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 90:
        raise ConfigError(f"{where}: days_back must be a whole number from 1 to 90")
    return days


def _channel(where: str, entry: dict[str, Any], default: str | None) -> str | None:
    channel = entry.get("channel", default)
    if channel is not None and channel not in CHANNELS:
        raise ConfigError(
            f"{where}: channel must be one of {', '.join(CHANNELS)} (got {channel!r}), "
            "or left out to let the leads' tags decide"
        )
    return channel


def _name(where: str, name: Any) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"{where}: names are lowercase letters, digits and _ ({name!r})")
    return name


def parse_config(data: dict[str, Any]) -> IntegrationsConfig:
    aggregators = []
    for name, entry in (data.get("aggregators") or {}).items():
        name = _name("aggregators", str(name))
        where = f"aggregators.{name}"
        kind = _kind(where, entry, AGGREGATOR_KINDS)
        aggregators.append(
            Aggregator(
                name,
                kind,
                _title(where, entry, AGGREGATOR_KINDS[kind].title or name),
                entry.get("connection", name),
                _interval(where, entry, 1),
                _flag(where, entry, "publish_on_change", True),
                _flag(where, entry, "gzip", False),
                _bytes(where, entry, "byte_budget_per_hour"),
                _bytes(where, entry, "max_request_bytes"),
            )
        )
    sources = []
    default_days = _initial_days("lead_initial_days", data.get("lead_initial_days", 7))
    for name, entry in (data.get("lead_sources") or {}).items():
        name, where = _name("lead_sources", str(name)), f"lead_sources.{name}"
        kind = _kind(where, entry, LEAD_SOURCE_KINDS)
        pushed = LEAD_SOURCE_KINDS[kind].push
        sources.append(
            LeadSource(
                name,
                kind,
                _title(where, entry, LEAD_SOURCE_KINDS[kind].title or name),
                entry.get("connection", name),
                None if pushed else _interval(where, entry, 1),
                _initial_days(where, entry.get("initial_days", default_days)),
                _channel(where, entry, LEAD_SOURCE_KINDS[kind].channel),
            )
        )
    # Shorthand for clinic websites (the registry's sites kind): source and connection
    # site_<name>.
    for entry in data.get("sites") or []:
        site = _name("sites", entry.get("name"))
        name = f"site_{site}"
        where = f"sites.{site}"
        sources.append(
            LeadSource(
                name,
                SITES_KIND.name,
                _title(where, entry, f"Сайт «{site}»"),
                name,
                _interval(where, entry, 1),
                _initial_days(where, entry.get("initial_days", default_days)),
                _channel(where, entry, SITES_KIND.channel),
            )
        )
    costs = []
    for name, entry in (data.get("cost_sources") or {}).items():
        name, where = _name("cost_sources", str(name)), f"cost_sources.{name}"
        kind = _kind(where, entry, COST_SOURCE_KINDS)
        costs.append(
            CostSource(
                name,
                kind,
                _title(where, entry, COST_SOURCE_KINDS[kind].title or name),
                entry.get("connection", name),
                _days_back(where, entry, COST_SOURCE_KINDS[kind].revisit_days),
                _flag(where, entry, "include_vat", True),
            )
        )
    sinks = [
        _conversion_sink(_name("conversion_sinks", str(name)), entry)
        for name, entry in (data.get("conversion_sinks") or {}).items()
    ]
    for role, names in (
        ("aggregators", [a.name for a in aggregators]),
        ("conversion sinks", [s.name for s in sinks]),
        ("lead sources", [s.name for s in sources]),
        ("cost sources", [c.name for c in costs]),
    ):
        if len(names) != len(set(names)):
            raise ConfigError(f"two {role} share a name")
    # A connection has one type, so the instances sharing it must speak one service's protocol
    # (НаПоправку's schedule and bookings, 32top's IDENT timetable and tickets).
    conn_types: dict[str, str] = {}
    for instance in [*aggregators, *sources, *costs, *sinks]:
        conn_type = instance.spec.connection.name
        if conn_types.setdefault(instance.connection, conn_type) != conn_type:
            raise ConfigError(
                f"connection {instance.connection!r} is shared by integrations of different "
                f"services ({conn_types[instance.connection]} and {conn_type}): give each its own"
            )
    return IntegrationsConfig(
        clinic_timezone=data.get("clinic_timezone", "Europe/Moscow"),
        aggregators=tuple(aggregators),
        lead_sources=tuple(sources),
        cost_sources=tuple(costs),
        conversion_sinks=tuple(sinks),
    )


def _conversion_sink(name: str, entry: dict[str, Any]) -> ConversionSink:
    where = f"conversion_sinks.{name}"
    kind = _kind(where, entry, CONVERSION_SINK_KINDS)
    events = entry.get("events", list(CONVERSION_EVENTS))
    if (
        not isinstance(events, list)
        or not events
        or len(set(events)) != len(events)
        or not set(events) <= set(CONVERSION_EVENTS)
    ):
        raise ConfigError(
            f"{where}: events must be a list of {', '.join(CONVERSION_EVENTS)} (got {events!r})"
        )
    goals = entry.get("goals") or {}
    if not isinstance(goals, dict) or not set(goals) <= set(events):
        raise ConfigError(f"{where}: goals must map events of this sink to goal identifiers")
    goals = {event: goals.get(event, event) for event in events}
    for event, goal in goals.items():
        if not isinstance(goal, str) or not _GOAL.match(goal):
            raise ConfigError(
                f"{where}: goal of {event} must be the goal's identifier in Latin letters, "
                f"digits, _ . or - (got {goal!r}), not its display name"
            )
    counter = entry.get("counter_id")
    if CONVERSION_SINK_KINDS[kind].needs_counter:
        if not isinstance(counter, int | str) or not str(counter).isdigit():
            raise ConfigError(f"{where}: counter_id must be the counter's number")
        counter = str(counter)
    elif counter is not None:
        raise ConfigError(f"{where}: kind {kind} has no counter_id")
    currency = entry.get("currency", "RUB")
    if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
        raise ConfigError(f"{where}: currency must be an ISO 4217 code such as RUB")
    return ConversionSink(
        name,
        kind,
        _title(where, entry, CONVERSION_SINK_KINDS[kind].title or name),
        entry.get("connection", name),
        tuple(events),
        goals,
        _whole(where, entry, "visit_window_days", 30, 1, 90),
        _whole(where, entry, "lookback_days", 21, 1, 90),
        _flag(where, entry, "send_hashed_phones", False),
        counter,
        currency,
    )


def _whole(where: str, entry: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = entry.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(f"{where}: {key} must be a whole number from {low} to {high}")
    return value


def config_path() -> Path:
    return Path(os.environ.get(CONFIG_PATH_VARIABLE) or DEFAULT_CONFIG_PATH)


def load_config(path: Path | None = None) -> IntegrationsConfig:
    """The integrations config from ``path``, else ``$IDENT_INTEGRATIONS_CONFIG``, else
    ``include/integrations.yaml``; read once per process and file."""
    return _load_config(path or config_path())


@lru_cache(maxsize=4)
def _load_config(path: Path) -> IntegrationsConfig:
    return parse_config(yaml.safe_load(path.read_text(encoding="utf-8")) or {})


def _clock_aligned(interval: timedelta) -> bool:
    minutes = interval.total_seconds() / 60
    return minutes == int(minutes) and 60 % int(minutes) == 0


def next_tick(now: datetime, interval: timedelta) -> datetime:
    """When the timer of :func:`run_schedule` next fires after ``now`` (for an interval
    that does not divide an hour, at most ``interval`` later)."""
    if not _clock_aligned(interval):
        return now + interval
    step = interval.total_seconds()
    return datetime.fromtimestamp((now.timestamp() // step + 1) * step, tz=UTC)


def run_schedule(interval: timedelta, *, also_on: list | None = None):
    """A timetable firing every ``interval`` (clock-aligned when it divides an hour),
    optionally also whenever any one of the ``also_on`` assets is updated (a plain list
    would mean all of them)."""
    from airflow.sdk import (
        AssetAny,
        AssetOrTimeSchedule,
        CronTriggerTimetable,
        DeltaTriggerTimetable,
    )

    minutes = int(interval.total_seconds() // 60)
    if _clock_aligned(interval):
        timetable = CronTriggerTimetable(f"*/{minutes} * * * *", timezone="UTC")
    else:
        timetable = DeltaTriggerTimetable(interval)
    if not also_on:
        return timetable
    return AssetOrTimeSchedule(timetable=timetable, assets=AssetAny(*also_on))
