"""report.campaign_roi against arithmetic done by hand: costs, visits, new patients, ROMI.

Two Yandex Direct campaigns over two weeks (W1 = 2 Nov, W2 = 9 Nov 2026), their costs
imported into report.ad_costs the way the cost import stores them, and leads tagged with
a campaign's name or its id. Visits are completed appointments of the lead's phone.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime
from decimal import Decimal as D

import pytest
from hand_dataset import MSK, LeadSpec, insert_appointment, insert_leads, msk

from ident_hooks.costs import CampaignDay
from ident_hooks.costs.store import replace_days

W1, W2 = date(2026, 11, 2), date(2026, 11, 9)
ROI_NOW = datetime(2026, 12, 15, 12, 0, tzinfo=MSK)
Q1, Q2, Q3, Q4, Q5, Q6, Q7, Q8 = (f"+7926000000{n}" for n in range(1, 9))
DIRECT = ("yandex", "cpc")

LEADS = [
    # W1, campaign 101 "implant": by name, by id, by name (a returning patient), spam.
    LeadSpec("Ra", "site_main", msk("2026-11-02 10:00"), Q1, (*DIRECT, "implant")),
    LeadSpec("Rb", "site_main", msk("2026-11-03 11:00"), Q2, (*DIRECT, "101")),
    LeadSpec("Rc", "flexbe", msk("2026-11-03 12:00"), Q3, (*DIRECT, "implant")),
    LeadSpec("Rd", "flexbe", msk("2026-11-04 09:00"), Q4, (*DIRECT, "implant"), status="spam"),
    # W1, campaign 202 "brand": by name (visit too late), by id.
    LeadSpec("Re", "uis", msk("2026-11-02 15:00"), Q5, (*DIRECT, "brand")),
    LeadSpec("Rf", "uis", msk("2026-11-04 10:00"), Q6, (*DIRECT, "202")),
    # W2, campaign 101: Q1 comes back; Q7 leaves two leads before one visit.
    LeadSpec("Rg", "site_main", msk("2026-11-09 10:00"), Q1, (*DIRECT, "implant")),
    LeadSpec("Rh", "site_main", msk("2026-11-10 09:00"), Q7, (*DIRECT, "implant")),
    LeadSpec("Ri", "uis", msk("2026-11-11 09:00"), Q7, (*DIRECT, "101")),
    # W2, a campaign nobody imported costs for.
    LeadSpec("Rj", "flexbe", msk("2026-11-10 12:00"), Q8, ("vk", "social", "spring")),
]

# appointment_id, doctor, branch, starts, status, phone, created, amount
APPOINTMENTS = [
    ("V1", "d1", "msk", "2026-11-05 10:00", "completed", Q1, msk("2026-11-02 11:00"), D("3000")),
    ("V2s", "d1", "msk", "2026-11-04 10:00", "scheduled", Q2, msk("2026-11-03 12:00"), None),
    ("V2", "d1", "msk", "2026-11-06 10:00", "completed", Q2, msk("2026-11-03 12:00"), None),
    ("V0", "d1", "msk", "2026-10-01 10:00", "completed", Q3, msk("2026-09-20 10:00"), D("700")),
    ("V3", "d1", "msk", "2026-11-07 10:00", "completed", Q3, msk("2026-11-03 13:00"), D("5000")),
    ("V4", "d1", "msk", "2026-11-05 12:00", "completed", Q4, msk("2026-11-04 10:00"), D("1000")),
    ("V5", "d1", "msk", "2026-12-10 10:00", "completed", Q5, msk("2026-12-01 10:00"), D("800")),
    ("V10", "d1", "msk", "2026-11-20 10:00", "scheduled", Q5, msk("2026-11-03 10:00"), None),
    ("V6", "d1", "msk", "2026-11-08 10:00", "completed", Q6, msk("2026-11-04 11:00"), D("2000")),
    ("V7", "d1", "msk", "2026-11-12 10:00", "completed", Q1, msk("2026-11-09 11:00"), D("4000")),
    ("V8", "d1", "msk", "2026-11-13 10:00", "completed", Q7, msk("2026-11-11 10:00"), D("2500")),
    ("V9", "d1", "msk", "2026-11-11 10:00", "completed", Q8, msk("2026-11-10 13:00"), D("1500")),
]  # fmt: skip


def _day(text: str, campaign_id: int, name: str, clicks: int, cost: str) -> CampaignDay:
    return CampaignDay(date.fromisoformat(text), campaign_id, name, clicks * 20, clicks, D(cost))


COSTS = [
    _day("2026-11-02", 101, "implant", 50, "1000.00"),
    _day("2026-11-03", 101, "implant", 25, "500.00"),
    _day("2026-11-04", 202, "brand", 30, "600.00"),
    _day("2026-11-09", 101, "implant", 80, "2000.00"),
    _day("2026-11-10", 202, "brand", 45, "900.00"),
]


def import_costs(conn, rows=COSTS) -> None:
    replace_days(conn, "direct", date(2026, 11, 1), date(2026, 11, 15), rows, vat_included=True)


# week, cost source, campaign id, campaign, utm_source, channel, impressions, clicks, cost,
# leads, visits, new patients, revenue, visits without amount, cost per lead, per visit,
# per new patient, ROMI
EXPECTED = [
    # Ra, Rb, Rc (Rd is spam, its visit V4 counts nowhere). Visits V1 (3000, new), V2 (no
    # amount, new; the scheduled V2s is no visit), V3 (5000; Q3 came on 1 Oct: not new).
    # Cost 1000 + 500 = 1500: per lead 1500 / 3 = 500, per visit 1500 / 3 = 500, per new
    # patient 1500 / 2 = 750; ROMI (8000 - 1500) / 1500 = 4.3333.
    (W1, "direct", 101, "implant", "yandex", "paid", 1500, 75, D("1500.00"),
     3, 3, 2, D("8000.00"), 1, D("500.00"), D("500.00"), D("750.00"), D("4.3333")),
    # Re (V5 is 38 days later: no visit), Rf (V6, 2000, new). Cost 600: per lead 300, per
    # visit and new patient 600; ROMI (2000 - 600) / 600 = 2.3333.
    (W1, "direct", 202, "brand", "yandex", "paid", 600, 30, D("600.00"),
     2, 1, 1, D("2000.00"), 0, D("300.00"), D("600.00"), D("600.00"), D("2.3333")),
    # Rg (V7, 4000: Q1's second visit, not new; Ra's window holds V7 too, but Rg is the
    # latest lead before it), Rh and Ri before V8 (2500, new): counted once, for Ri.
    # Cost 2000: per lead 2000 / 3 = 666.67, per visit 1000, per new patient 2000;
    # ROMI (6500 - 2000) / 2000 = 2.25.
    (W2, "direct", 101, "implant", "yandex", "paid", 1600, 80, D("2000.00"),
     3, 2, 1, D("6500.00"), 0, D("666.67"), D("1000.00"), D("2000.00"), D("2.2500")),
    # Cost, no leads: ROMI (0 - 900) / 900 = -1.
    (W2, "direct", 202, "brand", None, None, 900, 45, D("900.00"),
     0, 0, 0, D("0.00"), 0, None, None, None, D("-1.0000")),
    # Leads, no costs known: nothing per lead, no ROMI.
    (W2, None, None, "spring", "vk", "social", 0, 0, D("0.00"),
     1, 1, 1, D("1500.00"), 0, None, None, None, None),
]  # fmt: skip


@pytest.fixture
def roi_clinic(empty_clinic):
    insert_leads(empty_clinic, LEADS)
    for row in APPOINTMENTS:
        insert_appointment(empty_clinic, row)
    empty_clinic.commit()
    import_costs(empty_clinic)
    return empty_clinic


def roi_build(build):
    return build(now=ROI_NOW)


def test_cost_per_new_patient_and_romi_equal_the_hand_computed_ones(roi_clinic, build, report_rows):
    assert roi_build(build).mode == "full"
    assert Counter(report_rows("campaign_roi")) == Counter(EXPECTED)


def test_an_incremental_build_ends_where_a_full_one_does(empty_clinic, build, report_rows):
    roi_build(build)
    import_costs(empty_clinic)
    for row in APPOINTMENTS:
        insert_appointment(empty_clinic, row)
    empty_clinic.commit()
    assert roi_build(build).mode == "incremental"
    insert_leads(empty_clinic, LEADS)
    assert roi_build(build).mode == "incremental"
    assert Counter(report_rows("campaign_roi")) == Counter(EXPECTED)


def test_reimporting_the_same_costs_gives_the_same_rows(roi_clinic, build, report_rows):
    roi_build(build)
    import_costs(roi_clinic)
    summary = roi_build(build)
    assert (summary.mode, summary.campaign_roi_rows) == ("incremental", None)  # not rebuilt
    assert Counter(report_rows("campaign_roi")) == Counter(EXPECTED)

    # The platform revises 10 Nov and drops brand's 4 Nov: W1's brand row keeps its
    # leads and loses its cost; W2's is 300 now, ROMI (0 - 300) / 300.
    revised = [row for row in COSTS if row.campaign != "brand"]
    revised.append(_day("2026-11-10", 202, "brand", 15, "300.00"))
    import_costs(roi_clinic, revised)
    assert roi_build(build).campaign_roi_rows == 5
    brand = {row[0]: row for row in report_rows("campaign_roi") if row[3] == "brand"}
    assert brand[W1][6:] == (0, 0, D("0.00"), 2, 1, 1, D("2000.00"), 0,
                             D("0.00"), D("0.00"), D("0.00"), None)  # fmt: skip
    assert brand[W2][6:9] == (300, 15, D("300.00")) and brand[W2][-1] == D("-1.0000")


def test_a_visit_marked_completed_later_changes_its_leads_week(roi_clinic, build, report_rows):
    roi_build(build)

    def brand_w1():
        return next(r for r in report_rows("campaign_roi") if (r[0], r[3]) == (W1, "brand"))

    # Q5 came on 20 Nov after all, 18 days after Re, and paid 1200: V10 is Re's visit,
    # and a new patient's (V5 is later). Visits 2, new 2, revenue 3200; per visit and per
    # new patient 600 / 2 = 300; ROMI (3200 - 600) / 600 = 4.3333.
    roi_clinic.execute(
        "update clinic.appointments set status = 'completed', amount = 1200"
        " where appointment_id = 'V10'"
    )
    roi_clinic.commit()
    summary = roi_build(build)
    assert (summary.mode, summary.appointments_changed) == ("incremental", 1)
    assert brand_w1()[10:] == (2, 2, D("3200.00"), 0, D("300.00"), D("300.00"), D("300.00"),
                               D("4.3333"))  # fmt: skip

    # The amount is corrected: revenue 2000 + 900, ROMI (2900 - 600) / 600 = 3.8333.
    roi_clinic.execute("update clinic.appointments set amount = 900 where appointment_id = 'V10'")
    roi_clinic.commit()
    roi_build(build)
    assert brand_w1()[12] == D("2900.00") and brand_w1()[-1] == D("3.8333")

    # It really was on 5 Dec, 33 days after Re: outside the window, back to the start.
    roi_clinic.execute(
        "update clinic.appointments set starts_at = starts_at + interval '15 days',"
        " ends_at = ends_at + interval '15 days' where appointment_id = 'V10'"
    )
    roi_clinic.commit()
    roi_build(build)
    assert brand_w1() == EXPECTED[1]


def test_an_earlier_visit_found_later_makes_a_patient_returning(roi_clinic, build, report_rows):
    roi_build(build)
    # Q6 turns out to have come in 2025: V6 (8 Nov 2026) is no longer a new patient's.
    insert_appointment(
        roi_clinic,
        ("V-old", "d1", "msk", "2025-03-01 10:00", "completed", Q6, msk("2025-02-20 10:00")),
    )
    roi_clinic.commit()
    roi_build(build)
    brand = next(r for r in report_rows("campaign_roi") if (r[0], r[3]) == (W1, "brand"))
    assert brand[10:12] == (1, 0) and brand[16] is None


def test_a_later_lead_takes_over_the_visit(roi_clinic, build, report_rows):
    roi_build(build)
    # Q2 leaves a spring lead on 5 Nov, before V2 (6 Nov): V2 is that lead's now.
    insert_leads(
        roi_clinic,
        [LeadSpec("Rk", "flexbe", msk("2026-11-05 09:00"), Q2, ("vk", "social", "spring"))],
    )
    roi_build(build)
    rows = {(r[0], r[3]): r for r in report_rows("campaign_roi")}
    assert rows[W1, "implant"][9:14] == (3, 2, 1, D("8000.00"), 0)
    assert rows[W1, "spring"][9:14] == (1, 1, 1, D("0.00"), 1)
