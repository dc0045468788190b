"""Click ids of pushed leads over real HTTP into the leads table: Tilda's ``_ym_uid`` cookie
when the clinic switched cookie sending on (and nothing when it did not), the site webhook's
optional ``ym_client_id``/``yclid``/``gclid`` and its landing URL; a ClientID that is not a
plausible one is dropped while the lead is stored. The bodies are what
``ident_dev.simulators.fake_leads`` renders as Tilda and a clinic's site send them."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from ident_dev.simulators.fake_leads import FakeLeadFactory, tilda_form, webhook_body
from tests.intake.conftest import SITE_SECRET, TILDA_SECRET, leads

CREATED = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
CLIENT_ID = "1764662400123456789"
YCLID = "8712893427610954231"


def click_ids(lead: dict) -> tuple:
    return lead["ym_client_id"], lead["yclid"], lead["gclid"]


def post_tilda(intake, form: dict) -> None:
    response = httpx.post(f"{intake.url}/tilda/tilda/{TILDA_SECRET}", data=form)
    assert response.status_code == 200, response.text


def post_site(intake, body: dict) -> None:
    headers = {"Authorization": f"Bearer {SITE_SECRET}"}
    response = httpx.post(f"{intake.url}/webhook/site_form", json=body, headers=headers)
    assert response.status_code == 200, response.text


def visitor(**overrides):
    """A generated lead from a page with Metrica's tag, reached by a Direct click."""
    lead = FakeLeadFactory(seed=3).make(CREATED)
    lead.utm = {"utm_source": "yandex", "utm_medium": "cpc", "utm_campaign": "implant"}
    lead.landing_url = f"https://clinic.example/?utm_source=yandex&yclid={YCLID}"
    lead.ym_client_id, lead.yclid = CLIENT_ID, YCLID
    for name, value in overrides.items():
        setattr(lead, name, value)
    return lead


def test_tilda_with_cookie_sending_on_gives_the_client_id(intake, intake_db):
    form = tilda_form(visitor(), "467251:1", send_cookies=True)
    assert f"_ym_uid={CLIENT_ID}" in form["COOKIES"]

    post_tilda(intake, form)

    (lead,) = leads(intake_db)
    assert click_ids(lead) == (CLIENT_ID, None, None)
    assert (lead["utm_source"], lead["utm_campaign"]) == ("yandex", "implant")  # TILDAUTM
    assert "_ym_uid" not in (lead["comment"] or "")


def test_tilda_without_cookie_sending_gives_no_client_id(intake, intake_db):
    form = tilda_form(visitor(), "467251:2", send_cookies=False)
    assert "COOKIES" not in form

    post_tilda(intake, form)

    (lead,) = leads(intake_db)
    assert click_ids(lead) == (None, None, None)


def test_tilda_cookies_of_a_page_without_metrica_give_no_client_id(intake, intake_db):
    form = tilda_form(visitor(ym_client_id=None), "467251:3", send_cookies=True)
    assert "TILDAUTM=" in form["COOKIES"] and "_ym_uid" not in form["COOKIES"]

    post_tilda(intake, form)

    (lead,) = leads(intake_db)
    assert click_ids(lead) == (None, None, None)


def test_tilda_garbage_ym_uid_is_dropped_and_the_lead_stored(intake, intake_db):
    form = tilda_form(visitor(), "467251:4", send_cookies=True)
    form["COOKIES"] = form["COOKIES"].replace(f"_ym_uid={CLIENT_ID}", "_ym_uid=deadbeef")

    post_tilda(intake, form)

    (lead,) = leads(intake_db)
    assert click_ids(lead) == (None, None, None)
    assert lead["phone_raw"] == form["Phone"]


def test_site_webhook_takes_the_optional_fields(intake, intake_db):
    body = {**webhook_body(visitor(), "site-1"), "gclid": "Cj0KCQiA_BwE", "yclid": "42"}

    post_site(intake, body)

    (lead,) = leads(intake_db)
    assert click_ids(lead) == (CLIENT_ID, "42", "Cj0KCQiA_BwE")  # own fields beat the URL


def test_site_webhook_reads_yclid_from_the_landing_url(intake, intake_db):
    body = webhook_body(visitor(), "site-2")
    assert "yclid" not in body and body["ym_client_id"] == CLIENT_ID

    post_site(intake, body)

    (lead,) = leads(intake_db)
    assert click_ids(lead) == (CLIENT_ID, YCLID, None)


def test_site_webhook_garbage_client_id_is_dropped_and_the_lead_stored(intake, intake_db):
    body = {**webhook_body(visitor(), "site-3"), "ym_client_id": "GA1.2.3.4"}

    post_site(intake, body)

    (lead,) = leads(intake_db)
    assert click_ids(lead) == (None, YCLID, None)
    assert lead["external_id"] == "site-3"
