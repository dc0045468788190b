"""The integrations config (``include/integrations.yaml``): which DAGs exist, how often.

Read at DAG parse time, so it must stay cheap: one small file, no database, no network.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parents[2] / "include" / "integrations.yaml"
# A deployment (or a test) may keep its own file elsewhere.
CONFIG_PATH_VARIABLE = "IDENT_INTEGRATIONS_CONFIG"
KNOWN_AGGREGATORS = ("prodoctorov", "napopravku", "sberzdorovie", "32top")
LEAD_SOURCE_KINDS = ("uis", "flexbe", "napopravku", "ident_tickets")
_NAME = re.compile(r"^[a-z0-9_]+$")


class ConfigError(ValueError):
    """integrations.yaml says something that cannot work."""


@dataclass(frozen=True)
class Aggregator:
    name: str
    connection: str
    interval: timedelta


@dataclass(frozen=True)
class LeadSource:
    name: str  # also the `source` column of leads and the cursor's suffix
    kind: str
    connection: str
    interval: timedelta
    initial_days: int = 7  # how far back the very first pull (no cursor yet) reaches


@dataclass(frozen=True)
class IntegrationsConfig:
    clinic_timezone: str
    aggregators: tuple[Aggregator, ...]
    lead_sources: tuple[LeadSource, ...]

    def lead_source(self, name: str) -> LeadSource:
        return next(s for s in self.lead_sources if s.name == name)

    def aggregator(self, name: str) -> Aggregator:
        return next(a for a in self.aggregators if a.name == name)


def _interval(where: str, entry: dict[str, Any], minimum: int) -> timedelta:
    minutes = entry.get("interval_minutes")
    if not isinstance(minutes, int) or isinstance(minutes, bool) or minutes < minimum:
        raise ConfigError(f"{where}: interval_minutes must be a whole number >= {minimum}")
    return timedelta(minutes=minutes)


def _initial_days(where: str, days: Any) -> int:
    if not isinstance(days, int) or isinstance(days, bool) or not 0 <= days <= 366:
        raise ConfigError(f"{where}: initial_days must be a whole number from 0 to 366")
    return days


def _name(where: str, name: Any) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"{where}: names are lowercase letters, digits and _ ({name!r})")
    return name


def parse_config(data: dict[str, Any]) -> IntegrationsConfig:
    aggregators = []
    for name, entry in (data.get("aggregators") or {}).items():
        name = _name("aggregators", str(name))
        if name not in KNOWN_AGGREGATORS:
            raise ConfigError(f"aggregators: unknown aggregator {name!r}")
        where = f"aggregators.{name}"
        aggregators.append(
            Aggregator(name, entry.get("connection", name), _interval(where, entry, 1))
        )
    sources = []
    default_days = _initial_days("lead_initial_days", data.get("lead_initial_days", 7))
    for name, entry in (data.get("lead_sources") or {}).items():
        name, where = _name("lead_sources", str(name)), f"lead_sources.{name}"
        kind = entry.get("kind")
        if kind not in LEAD_SOURCE_KINDS:
            raise ConfigError(f"{where}: kind must be one of {', '.join(LEAD_SOURCE_KINDS)}")
        sources.append(
            LeadSource(
                name,
                kind,
                entry.get("connection", name),
                _interval(where, entry, 1),
                _initial_days(where, entry.get("initial_days", default_days)),
            )
        )
    for entry in data.get("sites") or []:
        site = _name("sites", entry.get("name"))
        name = f"site_{site}"
        where = f"sites.{site}"
        sources.append(
            LeadSource(
                name,
                "ident_tickets",
                name,
                _interval(where, entry, 1),
                _initial_days(where, entry.get("initial_days", default_days)),
            )
        )
    names = [s.name for s in sources]
    if len(names) != len(set(names)):
        raise ConfigError("two lead sources share a name")
    return IntegrationsConfig(
        clinic_timezone=data.get("clinic_timezone", "Europe/Moscow"),
        aggregators=tuple(aggregators),
        lead_sources=tuple(sources),
    )


def config_path() -> Path:
    return Path(os.environ.get(CONFIG_PATH_VARIABLE) or DEFAULT_CONFIG_PATH)


def load_config(path: Path | None = None) -> IntegrationsConfig:
    """The integrations config from ``path``, else ``$IDENT_INTEGRATIONS_CONFIG``, else
    ``include/integrations.yaml``; read once per process and file."""
    return _load_config(path or config_path())


@lru_cache(maxsize=4)
def _load_config(path: Path) -> IntegrationsConfig:
    return parse_config(yaml.safe_load(path.read_text(encoding="utf-8")) or {})


def run_schedule(interval: timedelta, *, also_on: list | None = None):
    """A timetable firing every ``interval`` (clock-aligned when it divides an hour),
    optionally also whenever one of the ``also_on`` assets is updated."""
    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, DeltaTriggerTimetable

    minutes = int(interval.total_seconds() // 60)
    if interval == timedelta(minutes=minutes) and 60 % minutes == 0:
        timetable = CronTriggerTimetable(f"*/{minutes} * * * *", timezone="UTC")
    else:
        timetable = DeltaTriggerTimetable(interval)
    if not also_on:
        return timetable
    return AssetOrTimeSchedule(timetable=timetable, assets=also_on)
