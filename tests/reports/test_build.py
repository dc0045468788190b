"""Every number of every report table against arithmetic done by hand (see conftest.py).

Reading guide for the dataset: P1 leaves L1 (20 Oct), L2 (2 Nov) and L12 (4 Nov) and books
A1 on 3 Nov — L1 and L2 convert (within 30 days after), L12 does not (A1 is before it);
L2 and L12 are repeats of earlier P1 leads. P2 leaves L3 and L7 on 2 Nov (L7 a repeat) and
books A2, which was cancelled. P6's appointment was written as "8 (916) 000-00-06" and
still converts L8. L6 is spam. L11 has no valid phone.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta
from decimal import Decimal as D

from hand_dataset import (
    APPOINTMENTS,
    LEADS,
    MSK,
    NOW,
    P1,
    P3,
    LeadSpec,
    insert_appointment,
    insert_leads,
    msk,
)

Oct20, Nov2, Nov3, Nov4 = (
    date(2026, 10, 20),
    date(2026, 11, 2),
    date(2026, 11, 3),
    date(2026, 11, 4),
)

# day, branch, source, channel, utm_source, utm_medium, utm_campaign, referrer_host,
# leads, unique patients, repeat, answered in 5 min, median response, converted, rate, spam
LEADS_DAILY = [
    (Oct20, "msk", "uis", "paid", "google", "cpc", "brand", "google.com",
     1, 1, 0, 1, D("120.0"), 1, D("1.0000"), 0),
    # L2 (200 s), L3 (600 s), L7 (100 s): median 200; P1 and P2; L2 and L7 repeat; L2 converts.
    (Nov2, "msk", "site_main", "paid", "yandex", "cpc", "implant", "yandex.ru",
     3, 2, 2, 2, D("200.0"), 1, D("0.3333"), 0),
    # L4: never taken; P3 booked A5 an hour *before* the lead: not a conversion.
    (Nov2, "msk", "uis", "direct", None, None, None, None,
     1, 1, 0, 0, None, 0, D("0.0000"), 0),
    # L5: an aggregator's booking; P4 booked A3 38 days later: too late to count.
    (Nov2, "msk", "napopravku", "aggregator", None, None, None, None,
     1, 1, 0, 1, D("60.0"), 0, D("0.0000"), 0),
    (Nov2, None, "flexbe", "social", "vk", "social", "spring", None,
     0, 0, 0, 0, None, 0, None, 1),
    # L8: from 32top's booking system; utm tags do not change that.
    (Nov3, "ekb", "32top", "aggregator", "32top", "referral", "catalog", "32top.ru",
     1, 1, 0, 1, D("290.0"), 1, D("1.0000"), 0),
    (Nov3, "ekb", "site_main", "organic", None, None, None, "google.ru",
     1, 1, 0, 1, D("30.0"), 0, D("0.0000"), 0),
    # L10: 22:30 UTC on 3 Nov is 4 Nov in Moscow.
    (Nov4, "msk", "site_main", "social", None, None, None, "zen.yandex.ru",
     1, 1, 0, 0, None, 0, D("0.0000"), 0),
    # L11: utm_campaign alone is not a tag set; the referrer decides.
    (Nov4, "msk", "uis", "referral", None, None, "autumn", "example.org",
     1, 0, 0, 0, D("400.0"), 0, D("0.0000"), 0),
    (Nov4, "msk", "flexbe", "paid", "google", "cpc", "brand", "google.com",
     1, 1, 1, 1, D("50.0"), 0, D("0.0000"), 0),
]  # fmt: skip

# campaign, source, medium, channel, first day, last day, then the measures as above
CAMPAIGNS = [
    # L1 (120 s, converts) and L12 (50 s, repeat): median (50 + 120) / 2.
    ("brand", "google", "cpc", "paid", Oct20, Nov4, 2, 1, 1, 2, D("85.0"), 1, D("0.5000"), 0),
    ("implant", "yandex", "cpc", "paid", Nov2, Nov2, 3, 2, 2, 2, D("200.0"), 1, D("0.3333"), 0),
    ("spring", "vk", "social", "social", Nov2, Nov2, 0, 0, 0, 0, None, 0, None, 1),
    ("catalog", "32top", "referral", "aggregator", Nov3, Nov3,
     1, 1, 0, 1, D("290.0"), 1, D("1.0000"), 0),
    ("autumn", None, None, "referral", Nov4, Nov4, 1, 0, 0, 0, D("400.0"), 0, D("0.0000"), 0),
]  # fmt: skip

# day, branch, leads, answered, in 5 min, median and p90 response, median and p90 load lag,
# open. percentile_cont interpolates: p90 of n sorted values sits at 0.9 * (n - 1).
RESPONSE_TIME = [
    (Oct20, "msk", 1, 1, 1, D("120.0"), D("120.0"), D("30.0"), D("30.0"), 0),
    # L2 200, L3 600, L5 60, L7 100 (L4 not taken): median (100 + 200) / 2 = 150;
    # p90 at 2.7 -> 200 + 0.7 * 400 = 480. Lags 5, 10, 20, 60, 120: median 20;
    # p90 at 3.6 -> 60 + 0.6 * 60 = 96. Open: L3 (in progress) and L4 (new).
    (Nov2, "msk", 5, 4, 3, D("150.0"), D("480.0"), D("20.0"), D("96.0"), 2),
    (Nov2, None, 0, 0, 0, None, None, None, None, 0),  # L6, spam only
    # L8 290, L9 30: median 160, p90 30 + 0.9 * 260 = 264; lags 40, 15: 27.5, 37.5.
    (Nov3, "ekb", 2, 2, 2, D("160.0"), D("264.0"), D("27.5"), D("37.5"), 0),
    # L11 400, L12 50 (L10 new): median 225, p90 365; lags 0, 30, 45: 30 and 42.
    (Nov4, "msk", 3, 2, 1, D("225.0"), D("365.0"), D("30.0"), D("42.0"), 1),
]

# week, doctor, leads, free slots, leads per free slot
DOCTOR_DEMAND = [
    # d1: Mon 09:00-10:00 = 2 slots; Thu 09:00-12:00 minus A1 (10:00) minus the time open
    # lead L3 holds (09:00), the cancelled A2 holds nothing = 4 slots. Leads L2, L3, L7.
    (Nov2, "d1", 3, 6, D("0.5000")),
    # d2: Fri 14:00-16:00 in one-hour slots (its ПроДокторов rule) = 2. Lead L5.
    (Nov2, "d2", 1, 2, D("0.5000")),
    # d3: lead L8 this week, work only next Monday: 09:00-11:00 Yekaterinburg time = 4.
    (Nov2, "d3", 1, 0, None),
    (date(2026, 11, 9), "d3", 0, 4, D("0.0000")),
    # d4 works but is hidden from ПроДокторов and nobody asked for them: no row.
]

TABLES = {
    "leads_daily": LEADS_DAILY,
    "campaigns": CAMPAIGNS,
    "response_time": RESPONSE_TIME,
    "doctor_demand": DOCTOR_DEMAND,
}


def _everything(report_rows) -> dict[str, list[tuple]]:
    return {name: report_rows(name) for name in TABLES}


def test_every_number_equals_the_hand_computed_one(clinic, build, report_rows):
    summary = build()
    assert (summary.mode, summary.reason) == ("full", "first build")
    for name, expected in TABLES.items():
        assert Counter(report_rows(name)) == Counter(expected), name


def test_second_run_changes_nothing(clinic, build, report_rows):
    build()
    before = _everything(report_rows)
    summary = build()
    assert summary.mode == "incremental"
    assert (summary.lead_changes, summary.appointments_changed, summary.leads_changed) == (0, 0, 0)
    assert summary.days == [] and summary.campaigns == 0
    assert _everything(report_rows) == before


def test_leads_arriving_in_batches_end_where_a_full_build_does(empty_clinic, build, report_rows):
    build()
    insert_leads(empty_clinic, LEADS[:5])
    insert_appointment(empty_clinic, APPOINTMENTS[4])
    empty_clinic.commit()
    assert build().mode == "incremental"
    insert_leads(empty_clinic, LEADS[5:])
    for row in APPOINTMENTS[:4]:
        insert_appointment(empty_clinic, row)
    empty_clinic.commit()
    summary = build()
    assert summary.mode == "incremental"
    for name, expected in TABLES.items():
        assert Counter(report_rows(name)) == Counter(expected), name


def test_late_lead_updates_its_own_day_only(clinic, build, report_rows):
    build()
    before = _everything(report_rows)
    late = LeadSpec(
        "late", "site_main", msk("2026-11-03 18:00"), "+79169999999",
        ("yandex", "cpc", "implant"), "yandex.ru", "msk", "d1", response=240, lag=86_400,
    )  # fmt: skip
    insert_leads(clinic, [late])

    summary = build()
    assert summary.mode == "incremental"
    assert summary.days == ["2026-11-03"]
    after = _everything(report_rows)
    for name in ("leads_daily", "response_time"):
        unchanged = [row for row in before[name] if row[0] != Nov3]
        assert [row for row in after[name] if row[0] != Nov3] == unchanged, name
    assert (Nov3, "msk", "site_main", "paid", "yandex", "cpc", "implant", "yandex.ru",
            1, 1, 0, 1, D("240.0"), 0, D("0.0000"), 0) in after["leads_daily"]  # fmt: skip
    assert (Nov3, "msk", 1, 1, 1, D("240.0"), D("240.0"), D("86400.0"), D("86400.0"), 0) in (
        after["response_time"]
    )
    implant = next(row for row in after["campaigns"] if row[0] == "implant")
    assert implant[4:11] == (Nov2, Nov3, 4, 3, 2, 3, D("220.0"))  # 100, 200, 240, 600
    assert (Nov2, "d1", 4, 6, D("0.6667")) in after["doctor_demand"]


def test_leads_without_utm_or_referrer_land_in_direct(empty_clinic, build, report_rows):
    bare = [
        LeadSpec(f"bare{n}", source, msk("2026-11-04 08:00"), f"+7916111000{n}", branch="msk")
        for n, source in enumerate(["uis", "flexbe", "site_main", "site_promo"])
    ]
    # A campaign name alone is not a tag set: still nothing known about the channel.
    bare.append(LeadSpec("named", "uis", msk("2026-11-04 09:00"), utm=(None, None, "winter")))
    insert_leads(empty_clinic, bare)
    build()
    rows = {(row[2], row[6]): row[3] for row in report_rows("leads_daily")}
    assert rows == {
        ("uis", None): "direct",
        ("flexbe", None): "direct",
        ("site_main", None): "direct",
        ("site_promo", None): "direct",
        ("uis", "winter"): "direct",
    }


def test_inbox_actions_move_response_time_and_open_leads(clinic, build, report_rows):
    build()
    # The admin takes the new lead L4 (2 Nov, 11:00) three minutes after it came in.
    clinic.execute(
        "update integration.leads set status = 'in_progress', taken_by = 'admin',"
        " taken_at = created_at + interval '3 minutes' where external_id = 'L4'"
    )
    clinic.commit()
    summary = build()
    assert summary.days == ["2026-11-02"]
    rows = {(row[0], row[1]): row for row in report_rows("response_time")}
    # Taken now: 60, 100, 180, 200, 600 -> median 180, p90 at 3.6 -> 200 + 0.6 * 400 = 440.
    assert rows[(Nov2, "msk")] == (Nov2, "msk", 5, 5, 4, D("180.0"), D("440.0"), D("20.0"),
                                   D("96.0"), 2)  # fmt: skip

    # Marking it spam takes it out of every measure but spam_leads.
    clinic.execute("update integration.leads set status = 'spam' where external_id = 'L4'")
    clinic.commit()
    build()
    rows = {(row[0], row[1]): row for row in report_rows("response_time")}
    assert rows[(Nov2, "msk")][2:5] == (4, 4, 3)
    direct = [row for row in report_rows("leads_daily") if row[3] == "direct"]
    assert direct == [(Nov2, "msk", "uis", "direct", None, None, None, None,
                       0, 0, 0, 0, None, 0, None, 1)]  # fmt: skip


def test_appointments_made_or_cancelled_later_change_conversions(clinic, build, report_rows):
    build()
    # P2 books again (not cancelled) on 5 Nov: L3 and L7 (2 Nov) both convert.
    insert_appointment(
        clinic,
        ("A6", "d1", "msk", "2026-11-10 10:00", "scheduled", P2_RAW, msk("2026-11-05 09:00")),
    )
    clinic.commit()
    summary = build(now=NOW + timedelta(days=1))
    assert summary.appointments_changed == 1
    assert summary.days == ["2026-11-02"]
    implant = next(row for row in report_rows("leads_daily") if row[6] == "implant")
    assert implant[13:15] == (3, D("1.0000"))

    # A1 is cancelled: L1 and L2 lose their conversion, on 20 Oct and 2 Nov.
    clinic.execute(
        "update clinic.appointments set status = 'cancelled' where appointment_id = 'A1'"
    )
    clinic.commit()
    summary = build(now=NOW + timedelta(days=1))
    assert summary.days == ["2026-10-20", "2026-11-02"]
    brand = next(row for row in report_rows("campaigns") if row[0] == "brand")
    assert brand[11:13] == (0, D("0.0000"))

    # A5 is deleted by the clinic: nothing converted by it, nothing changes.
    clinic.execute("delete from clinic.appointments where appointment_id = 'A5'")
    clinic.commit()
    summary = build(now=NOW + timedelta(days=1))
    assert summary.appointments_changed == 1 and summary.days == []


P2_RAW = "+7 916 000-00-02"


def test_a_lead_that_changes_its_phone_or_goes_away_updates_its_neighbours(
    clinic, build, report_rows
):
    build()
    # L1 (20 Oct) made L2 (2 Nov) a repeat; once L1's phone changes, L2 is a first lead.
    clinic.execute(
        "update integration.leads set phone_e164 = '+79167777777' where external_id = 'L1'"
    )
    clinic.commit()
    summary = build()
    assert summary.days == ["2026-10-20", "2026-11-02"]
    implant = next(row for row in report_rows("leads_daily") if row[6] == "implant")
    assert implant[10] == 1  # only L7 is a repeat now

    clinic.execute("delete from integration.leads where external_id = 'L12'")
    clinic.commit()
    summary = build()
    assert summary.days == ["2026-11-04"]
    brand = next(row for row in report_rows("campaigns") if row[0] == "brand")
    assert brand[4:8] == (Oct20, Oct20, 1, 1)


def test_truncating_the_leads_table_triggers_a_full_rebuild(clinic, build, report_rows):
    build()
    clinic.execute("truncate integration.leads cascade")
    clinic.commit()
    summary = build()
    assert (summary.mode, summary.reason) == ("full", "the leads table was emptied")
    assert report_rows("leads_daily") == report_rows("campaigns") == []
    assert report_rows("response_time") == []


def test_changed_definitions_or_time_zone_trigger_a_full_rebuild(clinic, build, clinic_db_url):
    import psycopg

    from ident_hooks.reports.build import build_reports

    build()
    clinic.execute("update report.build_state set definitions_hash = 'older rules'")
    clinic.commit()
    assert build().reason == "report definitions changed"
    with psycopg.connect(clinic_db_url) as conn:
        summary = build_reports(conn, clinic_timezone="Asia/Yekaterinburg", now=NOW)
    assert summary.reason.startswith("clinic time zone changed")
    assert build().mode == "full"  # and back


def test_full_rebuild_on_request_gives_the_same_tables(clinic, build, report_rows):
    build()
    insert_leads(clinic, [LeadSpec("L13", "uis", msk("2026-11-04 11:00"), P3, branch="msk")])
    build()
    incremental = _everything(report_rows)
    summary = build(full=True)
    assert (summary.mode, summary.reason) == ("full", "asked for")
    assert _everything(report_rows) == incremental


def test_repeat_and_conversion_windows_are_thirty_days(empty_clinic, build, report_rows):
    first = msk("2026-10-01 10:00")
    insert_leads(
        empty_clinic,
        [
            LeadSpec("a", "uis", first, P1),
            LeadSpec("b", "uis", first + timedelta(days=30), P1),  # exactly 30 days: repeat
            LeadSpec("c", "uis", first + timedelta(days=61), P1),  # 31 days after b: not
        ],
    )
    for n, created in enumerate(
        [first + timedelta(days=30, seconds=1), first + timedelta(days=91)]
    ):
        insert_appointment(
            empty_clinic, (f"X{n}", "d1", "msk", "2026-12-20 10:00", "scheduled", P1, created)
        )
    empty_clinic.commit()
    build(now=datetime(2027, 1, 10, tzinfo=MSK))
    rows = {row[0]: row for row in report_rows("leads_daily")}
    # a: X0 is 30 days + 1 s later: too late. b: X0 one second later: converts.
    # c: X1 exactly 30 days later: converts.
    assert [(rows[day][10], rows[day][13]) for day in sorted(rows)] == [(0, 0), (1, 1), (0, 1)]


def test_a_database_with_nothing_in_it_builds_empty_tables(bare_database, build, report_rows):
    assert build().mode == "full"
    assert build().mode == "incremental"
    assert [report_rows(name) for name in TABLES] == [[], [], [], []]


def test_report_schema_holds_no_patient_names_or_phones_and_explains_every_column(clinic_conn):
    columns = clinic_conn.execute(
        """
        select c.table_name, c.column_name,
               col_description(format('report.%I', c.table_name)::regclass, c.ordinal_position)
          from information_schema.columns c
         where c.table_schema = 'report'
        """
    ).fetchall()
    assert len({table for table, *_ in columns}) == 12
    assert not [c for c in columns if "phone" in c[1] or "name" in c[1]]
    assert not [c[:2] for c in columns if not c[2]]
    tables = clinic_conn.execute(
        "select c.relname, obj_description(c.oid, 'pg_class') from pg_class c"
        " join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = 'report' and c.relkind = 'r'"
    ).fetchall()
    assert len(tables) == 12 and all(comment for _, comment in tables)
