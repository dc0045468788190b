"""Click ids (Metrica's ClientID, yclid, gclid) from the pulled sources into the leads table.

Over real loopback HTTP from the UIS and Flexbe simulators, whose leads carry the ids the way
the services do (see ``ident_dev.simulators.fake_leads``): UIS reports ``ym_client_id``,
``yclid`` and ``gclid`` (both documentation copies list them), Flexbe ``utm.ym_client_id``;
a click id missing from the fields is read from the landing URL's query. A ClientID that is
not a plausible one is dropped while the lead is stored.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest

from ident_dev.simulators.flexbe import FlexbeSimulator
from ident_dev.simulators.uis import UisSimulator
from ident_hooks.leads.normalise import DoctorMatcher, make_lead, metrica_client_id
from ident_hooks.leads.sources import SourceSettings, parse_records
from ident_hooks.leads.sources.flexbe import FlexbeSource
from ident_hooks.leads.sources.uis import FIELDS, UisSource
from ident_hooks.leads.store import store_leads

MOSCOW = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 12, 2, 11, 0, tzinfo=UTC)
DAY_START = datetime(2026, 12, 2, tzinfo=MOSCOW)
CLIENT_ID = "1764662400123456789"
YCLID = "8712893427610954231"
GCLID = "Cj0KCQiA7rP2BhDVARIsAK_BwE"


@pytest.fixture
def leads_conn(clinic_conn: psycopg.Connection) -> psycopg.Connection:
    clinic_conn.execute("truncate integration.leads, integration.lead_rejects cascade")
    clinic_conn.commit()
    return clinic_conn


def pull(conn: psycopg.Connection, connector, client, source: str) -> None:
    """One pull as the DAG does it: fetch the period, parse, store, commit."""
    settings = SourceSettings(source=source)
    records = list(connector.fetch(client, DAY_START, NOW, settings=settings))
    batch = parse_records(connector, records, settings=settings, matcher=DoctorMatcher([]))
    assert not batch.rejects
    store_leads(conn, batch.leads)
    conn.commit()


def stored(conn: psycopg.Connection, source: str) -> dict[str, tuple]:
    rows = conn.execute(
        "select external_id, ym_client_id, yclid, gclid from integration.leads where source = %s",
        (source,),
    )
    return {row[0]: row[1:] for row in rows}


def test_uis_asks_for_the_click_id_fields_and_stores_them(running, doctors, client_for, leads_conn):
    uis = running(UisSimulator(doctors=doctors, seed=7, clock=lambda: NOW))
    sent = {
        "with_fields": uis.add_lead(
            NOW - timedelta(hours=3), ym_client_id=CLIENT_ID, yclid=YCLID, gclid=None
        ),
        # The report left yclid empty: the landing page's query still has it.
        "from_url": uis.add_lead(
            NOW - timedelta(hours=2),
            ym_client_id=None,
            yclid=None,
            gclid=None,
            entrance_page=f"https://clinic.example/implant?utm_source=google&gclid={GCLID}",
        ),
        "garbage": uis.add_lead(
            NOW - timedelta(hours=1), ym_client_id="GA1.2.3", yclid=None, gclid=None
        ),
    }
    assert {"ym_client_id", "yclid", "gclid"} <= set(FIELDS)

    pull(leads_conn, UisSource, client_for(uis, "uis", "uis-token"), "uis")

    rows = stored(leads_conn, "uis")
    assert rows[str(sent["with_fields"]["id"])] == (CLIENT_ID, YCLID, None)
    assert rows[str(sent["from_url"]["id"])] == (None, None, GCLID)
    assert rows[str(sent["garbage"]["id"])] == (None, None, None)  # stored, no ClientID


def test_uis_simulated_traffic_carries_click_ids_into_the_columns(
    running, doctors, client_for, leads_conn
):
    uis = running(UisSimulator(doctors=doctors, seed=11, clock=lambda: NOW))
    records = [uis.add_lead(NOW - timedelta(minutes=5 * n)) for n in range(1, 80)]

    pull(leads_conn, UisSource, client_for(uis, "uis", "uis-token"), "uis")

    rows = stored(leads_conn, "uis")
    assert len(rows) == len(records)
    client_ids = [row[0] for row in rows.values() if row[0]]
    assert len(client_ids) > len(rows) // 2
    assert all(metrica_client_id(value) == value for value in client_ids)
    paid_yandex = [r for r in records if "utm_source=yandex&utm_medium=cpc" in r["entrance_page"]]
    with_yclid = [r for r in paid_yandex if rows[str(r["id"])][1]]
    assert paid_yandex and len(with_yclid) > len(paid_yandex) // 2
    for record in with_yclid:  # from the field or from the landing URL, the same id
        assert f"yclid={rows[str(record['id'])][1]}" in record["entrance_page"]


def test_flexbe_client_id_from_utm_and_click_ids_from_the_landing_url(
    running, doctors, client_for, leads_conn
):
    flexbe = running(FlexbeSimulator(doctors=doctors, seed=5, clock=lambda: NOW))
    utm = {
        "utm_source": "yandex",
        "utm_medium": "cpc",
        "utm_campaign": "implant",
        "url": f"https://promo.clinic.example/?utm_source=yandex&yclid={YCLID}",
        "ym_client_id": CLIENT_ID,
    }
    with_ids = flexbe.add_lead(NOW - timedelta(hours=2), utm=utm)
    garbage = flexbe.add_lead(
        NOW - timedelta(hours=1),
        utm={**utm, "url": "https://promo.clinic.example/", "ym_client_id": "undefined"},
    )

    pull(leads_conn, FlexbeSource, client_for(flexbe, "flexbe", "flexbe-key"), "flexbe")

    rows = stored(leads_conn, "flexbe")
    assert rows[str(with_ids["id"])] == (CLIENT_ID, YCLID, None)
    assert rows[str(garbage["id"])] == (None, None, None)


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("1764662400123456789", "1764662400123456789"),  # 19 digits, as _ym_uid usually is
        (" 17646624001234567890 ", "17646624001234567890"),  # 20 digits, spaces trimmed
        ("1764662400", "1764662400"),  # the shortest: the first visit's Unix seconds alone
        ("176466240", None),  # too short to hold them
        ("99999999999999999999", None),  # past 2**64 - 1
        ("0764662400123456789", None),
        ("1764662400.1234", None),
        ("GA1.2.1234567890.1764662400", None),  # Google Analytics' client id, not Metrica's
        ("undefined", None),
        ("١٧٦٤٦٦٢٤٠٠١٢٣٤٥٦٧٨٩", None),  # digits, but not ASCII ones
        (None, None),
    ],
)
def test_a_client_id_is_kept_only_when_it_is_a_plausible_one(value, kept):
    assert metrica_client_id(value) == kept
    lead = make_lead(
        source="s", external_id="1", created_at=NOW, raw={}, phone="+79161234567",
        ym_client_id=value,
    )  # fmt: skip
    assert (lead.ym_client_id, lead.phone_e164) == (kept, "+79161234567")


def test_click_ids_fall_back_to_the_landing_url_as_utm_tags_do():
    url = f"https://clinic.example/?utm_source=yandex&yclid={YCLID}#gclid={GCLID}"
    from_url = make_lead(source="s", external_id="1", created_at=NOW, raw={}, landing_url=url)
    own = make_lead(
        source="s", external_id="2", created_at=NOW, raw={}, landing_url=url, yclid="1", gclid="2"
    )
    assert (from_url.yclid, from_url.gclid, from_url.utm_source) == (YCLID, GCLID, "yandex")
    assert (own.yclid, own.gclid) == ("1", "2")  # the source's own fields win
