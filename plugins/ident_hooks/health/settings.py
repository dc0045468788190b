"""The alerts config (``include/alerts.yaml``): health limits and where alerts go.

Read by the integration_health DAG, the status page and the inbox; cheap (one small file,
no database). Secrets are never here: the file names the Airflow connections that send.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from ident_hooks.paths import INCLUDE_DIR

DEFAULT_ALERTS_PATH = INCLUDE_DIR / "alerts.yaml"
ALERTS_PATH_VARIABLE = "IDENT_ALERTS_CONFIG"
DEFAULT_DESK = "default"


class AlertsConfigError(ValueError):
    """alerts.yaml says something that cannot work."""


@dataclass(frozen=True)
class Destination:
    """Who is told: a Telegram chat and/or e-mail addresses (both may be empty)."""

    name: str
    title: str
    telegram_chat_id: str | None = None
    emails: tuple[str, ...] = ()
    admins: tuple[str, ...] = ()

    @property
    def reachable(self) -> bool:
        return bool(self.telegram_chat_id or self.emails)


@dataclass(frozen=True)
class Limits:
    pull_intervals: int = 3
    publish_intervals: int = 2
    lead_escalation: timedelta = timedelta(minutes=5)
    escalation_lookback: timedelta = timedelta(hours=12)
    booking_warning: timedelta = timedelta(minutes=6)
    clinic_heartbeat: timedelta = timedelta(minutes=30)
    # While the heartbeat is stale, publishing offers no free time on this many days from
    # today (today included): the days a missed booking is most likely to land on.
    stale_withdraw_days: int = 2


@dataclass(frozen=True)
class AlertsConfig:
    limits: Limits = field(default_factory=Limits)
    telegram_connection: str = "ident_alerts_telegram"
    email_connection: str = "ident_alerts_smtp"
    data_team: Destination = field(
        default_factory=lambda: Destination("data_team", "Команда данных")
    )
    front_desks: dict[str, Destination] = field(
        default_factory=lambda: {DEFAULT_DESK: Destination(DEFAULT_DESK, "Ресепшн")}
    )

    def desk_for(self, branch_id: str | None) -> Destination:
        """The front desk of a branch: its own entry, else ``default``."""
        return self.front_desks.get(branch_id or "", self.front_desks[DEFAULT_DESK])

    def desks_of(self, user: str) -> list[str]:
        """The branches whose admins group ``user`` belongs to."""
        return [
            name
            for name, desk in self.front_desks.items()
            if name != DEFAULT_DESK and user in desk.admins
        ]


def _whole(where: str, value: Any, minimum: int, maximum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise AlertsConfigError(f"{where} must be a whole number from {minimum} to {maximum}")
    return value


def _destination(where: str, name: str, entry: Any, default_title: str) -> Destination:
    if not isinstance(entry, dict):
        raise AlertsConfigError(f"{where} must be a mapping")
    chat = entry.get("telegram_chat_id")
    if chat is not None and not isinstance(chat, str | int):
        raise AlertsConfigError(
            f"{where}.telegram_chat_id must be a chat id such as -1001234567890"
        )
    emails = entry.get("emails") or []
    admins = entry.get("admins") or []
    for label, values in (("emails", emails), ("admins", admins)):
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            raise AlertsConfigError(f"{where}.{label} must be a list of texts")
    if any("@" not in email for email in emails):
        raise AlertsConfigError(f"{where}.emails must be e-mail addresses")
    return Destination(
        name=name,
        title=str(entry.get("title") or default_title),
        telegram_chat_id=None if chat is None else str(chat),
        emails=tuple(emails),
        admins=tuple(admins),
    )


def parse_alerts_config(data: dict[str, Any]) -> AlertsConfig:
    limits = data.get("limits") or {}
    parsed = Limits(
        pull_intervals=_whole("limits.pull_intervals", limits.get("pull_intervals", 3), 1, 100),
        publish_intervals=_whole(
            "limits.publish_intervals", limits.get("publish_intervals", 2), 1, 100
        ),
        lead_escalation=timedelta(
            minutes=_whole(
                "limits.lead_escalation_minutes", limits.get("lead_escalation_minutes", 5), 1, 1440
            )
        ),
        escalation_lookback=timedelta(
            hours=_whole(
                "limits.escalation_lookback_hours",
                limits.get("escalation_lookback_hours", 12),
                1,
                168,
            )
        ),
        booking_warning=timedelta(
            minutes=_whole(
                "limits.booking_warning_minutes", limits.get("booking_warning_minutes", 6), 1, 9
            )
        ),
        clinic_heartbeat=timedelta(
            minutes=_whole(
                "limits.clinic_heartbeat_minutes",
                limits.get("clinic_heartbeat_minutes", 30),
                1,
                10080,
            )
        ),
        stale_withdraw_days=_whole(
            "limits.stale_withdraw_days", limits.get("stale_withdraw_days", 2), 0, 366
        ),
    )
    desks = {
        str(name): _destination(f"front_desks.{name}", str(name), entry or {}, "Ресепшн")
        for name, entry in (data.get("front_desks") or {}).items()
    }
    desks.setdefault(DEFAULT_DESK, Destination(DEFAULT_DESK, "Ресепшн"))
    return AlertsConfig(
        limits=parsed,
        telegram_connection=str(data.get("telegram_connection") or "ident_alerts_telegram"),
        email_connection=str(data.get("email_connection") or "ident_alerts_smtp"),
        data_team=_destination(
            "data_team", "data_team", data.get("data_team") or {}, "Команда данных"
        ),
        front_desks=desks,
    )


def alerts_config_path() -> Path:
    return Path(os.environ.get(ALERTS_PATH_VARIABLE) or DEFAULT_ALERTS_PATH)


def load_alerts_config(path: Path | None = None) -> AlertsConfig:
    """The alerts config from ``path``, else ``$IDENT_ALERTS_CONFIG``, else
    ``include/alerts.yaml``; read once per process and file."""
    return _load(path or alerts_config_path())


@lru_cache(maxsize=4)
def _load(path: Path) -> AlertsConfig:
    return parse_alerts_config(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
