"""A small clinic's leads and appointments whose every report number is known by hand.

Times are written in the clinic's zone (Moscow) unless they carry their own offset.
The expected rows are in test_build.py, next to the arithmetic that gives them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg

MSK = ZoneInfo("Europe/Moscow")
YEKT = ZoneInfo("Asia/Yekaterinburg")
# "Now" for the builds: Wednesday; the current week starts on Monday 2026-11-02.
NOW = datetime(2026, 11, 4, 12, 0, tzinfo=MSK)

P1, P2, P3, P4, P5, P6, P7, P8 = (f"+7916000000{n}" for n in range(1, 9))


def msk(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=MSK)


@dataclass
class LeadSpec:
    """One lead; ``response``/``lag`` in seconds (None response = never taken)."""

    name: str
    source: str
    created: datetime
    phone: str | None = None
    utm: tuple[str | None, str | None, str | None] = (None, None, None)
    referrer_host: str | None = None
    branch: str | None = None
    doctor: str | None = None
    status: str = "done"
    response: int | None = None
    lag: int = 0
    requested_start: datetime | None = None


LEADS = [
    LeadSpec("L1", "uis", msk("2026-10-20 10:00"), P1, ("google", "cpc", "brand"),
             "google.com", "msk", response=120, lag=30),
    LeadSpec("L2", "site_main", msk("2026-11-02 09:00"), P1, ("yandex", "cpc", "implant"),
             "yandex.ru", "msk", "d1", response=200, lag=60),
    LeadSpec("L3", "site_main", msk("2026-11-02 09:30"), P2, ("yandex", "cpc", "implant"),
             "yandex.ru", "msk", "d1", status="in_progress", response=600, lag=10,
             requested_start=msk("2026-11-05 09:00")),
    LeadSpec("L4", "uis", msk("2026-11-02 11:00"), P3, branch="msk", status="new", lag=5),
    LeadSpec("L5", "napopravku", msk("2026-11-02 12:00"), P4, branch="msk", doctor="d2",
             response=60, lag=120),
    LeadSpec("L6", "flexbe", msk("2026-11-02 13:00"), P5, ("vk", "social", "spring"),
             status="spam", response=10, lag=3),
    LeadSpec("L7", "site_main", msk("2026-11-02 14:00"), P2, ("yandex", "cpc", "implant"),
             "yandex.ru", "msk", "d1", response=100, lag=20),
    LeadSpec("L8", "32top", msk("2026-11-03 10:00"), P6, ("32top", "referral", "catalog"),
             "32top.ru", "ekb", "d3", response=290, lag=40),
    # 23:30 in Moscow is already 01:30 next day in Yekaterinburg: the day is the clinic's.
    LeadSpec("L9", "site_main", msk("2026-11-03 23:30"), P7, referrer_host="google.ru",
             branch="ekb", response=30, lag=15),
    LeadSpec("L10", "site_main", datetime.fromisoformat("2026-11-03 22:30+00:00"), P8,
             referrer_host="zen.yandex.ru", branch="msk", status="new", lag=45),
    LeadSpec("L11", "uis", msk("2026-11-04 09:00"), None, (None, None, "autumn"),
             "example.org", "msk", response=400, lag=0),
    LeadSpec("L12", "flexbe", msk("2026-11-04 10:00"), P1, ("google", "cpc", "brand"),
             "google.com", "msk", response=50, lag=30),
]  # fmt: skip


def insert_leads(conn: psycopg.Connection, specs: list[LeadSpec]) -> None:
    for spec in specs:
        taken = None if spec.response is None else spec.created + timedelta(seconds=spec.response)
        closed = None
        if taken is not None and spec.status in ("done", "spam"):
            closed = taken + timedelta(minutes=1)
        conn.execute(
            """
            insert into integration.leads
                   (source, external_id, created_at, loaded_at, source_updated_at,
                    name, phone_raw, phone_e164, utm_source, utm_medium, utm_campaign,
                    referrer_host, branch_id, doctor_id, requested_start, raw, status,
                    taken_by, taken_at, closed_by, closed_at)
            values (%s, %s, %s, %s, %s, 'Пациент', %s, %s, %s, %s, %s, %s, %s, %s, %s,
                    '{}', %s, %s, %s, %s, %s)
            """,
            (
                spec.source,
                spec.name,
                spec.created,
                spec.created + timedelta(seconds=spec.lag),
                spec.created + timedelta(seconds=spec.lag),
                spec.phone,
                spec.phone,
                *spec.utm,
                spec.referrer_host,
                spec.branch,
                spec.doctor,
                spec.requested_start,
                spec.status,
                "admin" if taken else None,
                taken,
                "admin" if closed else None,
                closed,
            ),
        )
    conn.commit()


# appointment_id, doctor, branch, starts (Moscow), status, phone as the clinic wrote it, created
APPOINTMENTS = [
    ("A1", "d1", "msk", "2026-11-05 10:00", "scheduled", P1, msk("2026-11-03 12:00")),
    ("A2", "d1", "msk", "2026-11-05 11:00", "cancelled", P2, msk("2026-11-02 16:00")),
    ("A3", "d2", "msk", "2026-12-11 10:00", "scheduled", P4, msk("2026-12-10 10:00")),
    ("A4", "d3", "ekb", "2026-11-20 10:00", "scheduled", "8 (916) 000-00-06",
     msk("2026-11-03 15:00")),
    ("A5", "d4", "msk", "2026-11-20 10:00", "scheduled", P3, msk("2026-11-02 10:00")),
]  # fmt: skip


def insert_appointment(conn: psycopg.Connection, row: tuple) -> None:
    """``row`` as in APPOINTMENTS, optionally followed by the visit's amount."""
    appointment_id, doctor, branch, starts, status, phone, created, *amount = row
    begins = msk(starts)
    conn.execute(
        "insert into clinic.appointments (appointment_id, doctor_id, branch_id, starts_at,"
        " ends_at, status, patient_phone, created_at, amount)"
        " values (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (appointment_id, doctor, branch, begins, begins + timedelta(minutes=30), status, phone,
         created, amount[0] if amount else None),
    )  # fmt: skip
