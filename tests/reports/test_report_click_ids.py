"""``report.click_ids``: per clinic day and source, how many leads (not spam) carry Metrica's
ClientID, a yclid, a gclid or any of them, built in full and incrementally."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

from hand_dataset import P1, P2, P3, P4, P5, P6, LeadSpec, insert_leads, msk

Nov2, Nov3 = date(2026, 11, 2), date(2026, 11, 3)
CID, YCLID, GCLID = "1764662400123456789", "8712893427610954231", "Cj0KCQiA_BwE"
# name -> ClientID, yclid, gclid
IDS = {
    "A": (CID, YCLID, None),
    "B": (CID, None, None),
    "C": (None, None, None),
    "D": (CID, None, None),  # spam: not counted
    "E": (None, None, GCLID),
    "F": (None, None, None),
}
LEADS = [
    LeadSpec("A", "site_main", msk("2026-11-02 09:00"), P1),
    LeadSpec("B", "site_main", msk("2026-11-02 10:00"), P2),
    LeadSpec("C", "site_main", msk("2026-11-02 11:00"), P3),
    LeadSpec("D", "site_main", msk("2026-11-02 12:00"), P4, status="spam"),
    LeadSpec("E", "uis", msk("2026-11-02 13:00"), P5),
    LeadSpec("F", "site_main", msk("2026-11-03 10:00"), P6),
]

# day, source, leads, with ClientID, with yclid, with gclid, with any, share with any
EXPECTED = [
    # A (ClientID, yclid), B (ClientID), C (none); D is spam: 2 of 3.
    (Nov2, "site_main", 3, 2, 1, 0, 2, D("0.6667")),
    (Nov2, "uis", 1, 0, 0, 1, 1, D("1.0000")),
    (Nov3, "site_main", 1, 0, 0, 0, 0, D("0.0000")),
]


def set_ids(conn, name: str, ids: tuple) -> None:
    conn.execute(
        "update integration.leads set ym_client_id = %s, yclid = %s, gclid = %s"
        " where external_id = %s",
        (*ids, name),
    )
    conn.commit()


def test_shares_of_leads_with_click_ids_per_day_and_source(empty_clinic, build, report_rows):
    insert_leads(empty_clinic, LEADS)
    for name, ids in IDS.items():
        set_ids(empty_clinic, name, ids)

    assert build().mode == "full"

    assert report_rows("click_ids") == EXPECTED


def test_a_lead_gaining_a_click_id_rebuilds_its_day_only(empty_clinic, build, report_rows):
    insert_leads(empty_clinic, LEADS)
    for name, ids in IDS.items():
        set_ids(empty_clinic, name, ids)
    build()

    set_ids(empty_clinic, "F", (None, YCLID, None))
    summary = build()

    assert (summary.mode, summary.days) == ("incremental", [Nov3.isoformat()])
    assert report_rows("click_ids") == [
        *EXPECTED[:2],
        (Nov3, "site_main", 1, 0, 1, 0, 1, D("1.0000")),
    ]
    incremental = report_rows("click_ids")
    build(full=True)
    assert report_rows("click_ids") == incremental
