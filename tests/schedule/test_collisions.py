"""The double-booking window, measured: leads from an aggregator for time already taken."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ident_dev import demo
from ident_dev.simulators.napopravku import NapopravkuSimulator
from ident_hooks.config import load_config
from ident_hooks.leads.normalise import make_lead
from ident_hooks.leads.store import store_leads
from ident_hooks.registry import record_instances
from ident_hooks.reports.build import build_reports
from ident_hooks.schedule.aggregators import publisher
from ident_hooks.schedule.publish import publish_schedule

NOW = datetime(2026, 12, 2, 5, 50, tzinfo=UTC)  # 08:50 in Moscow, a Wednesday


@pytest.fixture
def clinic(clinic_conn):
    demo.load(clinic_conn, demo.generate(6, 10, now=NOW))
    clinic_conn.execute(
        "truncate integration.leads, integration.publish_state, integration.schedule_state,"
        " integration.lead_collisions, integration.doctor_publications,"
        " integration.publish_budget cascade"
    )
    record_instances(clinic_conn, load_config())
    clinic_conn.commit()
    return clinic_conn


@pytest.fixture
def client(started, service_connection):
    server = started(NapopravkuSimulator(token="t", clock=lambda: NOW))
    conn_id = service_connection("collisions", f"{server.base_url}/api/v1", "t")
    return publisher("napopravku").client(conn_id, backoff_seconds=0, sleep=lambda _: None)


def two_free_slots(conn) -> list[tuple]:
    """Two half-hour stretches of one doctor's work two days ahead with no appointment."""
    rows = conn.execute(
        """
        select w.doctor_id, w.branch_id, s as starts_at
          from clinic.work_intervals w,
               generate_series(w.starts_at, w.ends_at - interval '30 minutes',
                               interval '30 minutes') s
         where w.starts_at > %s + interval '2 days'
           and not exists (select 1 from clinic.appointments a
                            where a.doctor_id = w.doctor_id and a.status <> 'cancelled'
                              and a.starts_at < s + interval '30 minutes' and a.ends_at > s)
         order by w.doctor_id, s limit 2
        """,
        (NOW,),
    ).fetchall()
    conn.commit()
    return rows


def lead(external_id: str, slot: tuple, created_at: datetime, source: str = "napopravku"):
    doctor_id, branch_id, starts_at = slot
    return make_lead(
        source=source,
        external_id=external_id,
        created_at=created_at,
        raw={"id": external_id},
        name="Анна",
        phone="+7 916 123-45-67",
        doctor_id=doctor_id,
        branch_id=branch_id,
        requested_start=starts_at,
        requested_end=starts_at + timedelta(minutes=30),
    )


def test_a_lead_for_time_booked_before_it_is_a_collision_the_report_counts(clinic, client):
    publish_schedule("napopravku", conn=clinic, client=client, now=NOW)
    taken, free = two_free_slots(clinic)
    booked_at = NOW + timedelta(minutes=3)
    clinic.execute(
        "insert into clinic.appointments"
        " (appointment_id, doctor_id, branch_id, starts_at, ends_at, created_at)"
        " values ('taken-first', %s, %s, %s, %s, %s)",
        (taken[0], taken[1], taken[2], taken[2] + timedelta(minutes=30), booked_at),
    )
    clinic.commit()
    # The patient books the taken time at НаПоправку 2 minutes later, before any publish.
    store_leads(
        clinic,
        [
            lead("np-1", taken, booked_at + timedelta(minutes=2)),
            lead("np-2", free, booked_at + timedelta(minutes=2)),
        ],
    )
    # A site form naming a doctor and time is not an aggregator's lead.
    store_leads(clinic, [lead("site-1", taken, booked_at, source="site_form")])
    clinic.commit()

    rows = clinic.execute(
        "select c.aggregator, l.external_id, c.taken, c.appointment_id, c.taken_since,"
        " c.schedule_sent_at from integration.lead_collisions c"
        " join integration.leads l using (lead_id) order by l.external_id"
    ).fetchall()
    clinic.commit()
    assert rows == [
        ("napopravku", "np-1", True, "taken-first", booked_at, NOW),
        ("napopravku", "np-2", False, None, None, NOW),
    ]

    build_reports(clinic, clinic_timezone="Europe/Moscow", now=NOW + timedelta(minutes=10))
    report = clinic.execute(
        "select week::text, aggregator, title, leads_with_time, collisions, known_to_aggregator,"
        " median_taken_minutes from report.schedule_collisions"
    ).fetchall()
    clinic.commit()
    assert report == [("2026-11-30", "napopravku", "НаПоправку", 2, 1, 0, 2)]


def test_a_collision_after_the_aggregator_had_the_schedule_is_counted_as_known(clinic, client):
    publish_schedule("napopravku", conn=clinic, client=client, now=NOW)
    taken, _free = two_free_slots(clinic)
    clinic.execute(
        "insert into clinic.appointments"
        " (appointment_id, doctor_id, branch_id, starts_at, ends_at, created_at)"
        " values ('taken-first', %s, %s, %s, %s, %s)",
        (taken[0], taken[1], taken[2], taken[2] + timedelta(minutes=30), NOW),
    )
    clinic.commit()
    sent = publish_schedule(
        "napopravku", conn=clinic, client=client, now=NOW + timedelta(minutes=1)
    )
    assert sent.mode == "changes"
    store_leads(clinic, [lead("np-3", taken, NOW + timedelta(minutes=5))])
    clinic.commit()
    (known,) = clinic.execute(
        "select schedule_sent_at >= taken_since from integration.lead_collisions"
    ).fetchone()
    clinic.commit()
    assert known is True
