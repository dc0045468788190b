"""The inbox never shows or sends a lead's click ids (Metrica's ClientID, yclid, gclid): they
are for matching ad conversions, not for the front desk. Over the real api-server."""

from __future__ import annotations

CLIENT_ID = "1764662400123456789"
YCLID = "8712893427610954231"
GCLID = "Cj0KCQiA7rP2BhDVARIsAK_BwE"
INBOX = "/inbox"


def test_the_inbox_json_holds_no_click_id(airflow_web, inbox_conn, commit_lead):
    lead_id, _ = commit_lead(
        "Орлова Анна",
        "+7 916 777 88 99",
        source="site_main",
        utm_source="yandex",
        landing_url=f"https://clinic.example/?utm_source=yandex&yclid={YCLID}&gclid={GCLID}",
        ym_client_id=CLIENT_ID,
        yclid=YCLID,
        gclid=GCLID,
    )
    assert inbox_conn.execute(
        "select ym_client_id, yclid, gclid from integration.leads where lead_id = %s", (lead_id,)
    ).fetchone() == (CLIENT_ID, YCLID, GCLID)
    session = airflow_web.bearer_session()

    listing = session.get(airflow_web.url(f"{INBOX}/api/leads"), timeout=30)
    taken = session.post(airflow_web.url(f"{INBOX}/api/leads/{lead_id}/take"), json={}, timeout=30)

    assert [lead["lead_id"] for lead in listing.json()["leads"]] == [lead_id]
    for response in (listing, taken):
        assert response.status_code == 200
        for shown in (CLIENT_ID, YCLID, GCLID, "ym_client_id", "yclid", "gclid", "clid"):
            assert shown not in response.text
