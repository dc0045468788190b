"""Real dag.test() runs of build_marketing_reports against the demo clinic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ident_dev import demo


@pytest.fixture
def clinic_with_leads(clinic_conn, airflow_db):
    conn = clinic_conn
    clinic = demo.generate(6, 10)
    demo.load(conn, clinic)
    conn.execute(
        "truncate integration.leads, report_build.lead_changes, report_build.lead_facts,"
        " report_build.appointment_phones, report.build_state, report.leads_daily,"
        " report.campaigns, report.response_time, report.doctor_demand cascade"
    )
    now = datetime.now(UTC)
    doctor = clinic.doctors[0][0]
    rows = [
        ("site_main", "s1", now - timedelta(days=2), "+79160000001", "yandex", "cpc", doctor),
        ("site_main", "s2", now - timedelta(days=2), "+79160000002", None, None, None),
        ("uis", "u1", now - timedelta(hours=3), "+79160000001", "vk", "social", doctor),
    ]
    for source, external_id, created, phone, utm_source, utm_medium, doctor_id in rows:
        conn.execute(
            "insert into integration.leads (source, external_id, created_at, phone_e164,"
            " utm_source, utm_medium, doctor_id, raw) values (%s, %s, %s, %s, %s, %s, %s, '{}')",
            (source, external_id, created, phone, utm_source, utm_medium, doctor_id),
        )
    conn.commit()
    return conn


def _run(**conf):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag().get_dag("build_marketing_reports").test(run_conf=conf or None)


def _state(conn) -> tuple:
    row = conn.execute(
        "select mode, (select coalesce(sum(leads), 0) from report.leads_daily),"
        " (select count(*) from report.response_time) from report.build_state"
    ).fetchone()
    conn.commit()
    return row


def test_runs_build_the_tables_then_only_what_changed(clinic_with_leads):
    conn = clinic_with_leads
    assert _run().state == "success"
    assert _state(conn) == ("full", 3, 2)

    conn.execute(
        "insert into integration.leads (source, external_id, created_at, phone_e164, raw)"
        " values ('flexbe', 'f1', now() - interval '1 minute', '+79160000003', '{}')"
    )
    conn.commit()
    assert _run().state == "success"
    mode, leads, _ = _state(conn)
    assert (mode, leads) == ("incremental", 4)
    doctors = conn.execute("select count(*) from report.doctor_demand where free_slots > 0")
    assert doctors.fetchone()[0] > 0
    conn.commit()


def test_the_full_rebuild_param(clinic_with_leads):
    assert _run().state == "success"
    assert _run(full_rebuild=True).state == "success"
    assert _state(clinic_with_leads)[0] == "full"
    assert _run().state == "success"
    assert _state(clinic_with_leads)[0] == "incremental"
