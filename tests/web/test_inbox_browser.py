"""A real browser: log in, watch a new lead arrive within the refresh interval, take it.

Drives Debian's Chromium (``chromium``; scripts/test.sh installs it where it can) through
Playwright, which never downloads a browser of its own here. Set IDENT_INBOX_SCREENSHOT to
a path to keep a screenshot of the page (docs/inbox.png is made this way).
"""

from __future__ import annotations

import os
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
# Records what the page asks of the browser: notifications shown and tones played.
RECORDER = """
window.__notifications = [];
window.__tones = 0;
class RecordingNotification {
  static permission = "granted";
  static requestPermission() { return Promise.resolve("granted"); }
  constructor(title, options) { window.__notifications.push({title, ...options}); }
  close() {}
}
window.Notification = RecordingNotification;
const createOscillator = AudioContext.prototype.createOscillator;
AudioContext.prototype.createOscillator = function () {
  window.__tones += 1;
  return createOscillator.call(this);
};
"""


def _chromium() -> str:
    found = shutil.which("chromium")
    if found:
        return found
    message = "Debian's chromium is not installed (scripts/test.sh installs it when run as root)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def browser_page(airflow_web, tmp_path):
    executable = _chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        context = browser.new_context(
            locale="ru-RU",
            timezone_id="Europe/Moscow",
            viewport={"width": 1440, "height": 820},
            base_url=airflow_web.base_url,
        )
        context.add_init_script(RECORDER)
        page = context.new_page()
        page.set_default_timeout(30_000)
        try:
            yield page
        except BaseException:
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
            raise
        finally:
            browser.close()


def _seed_a_working_morning(add_lead) -> int:
    """Three open leads: one overdue, one taken by anna, one fresh; returns the newest id."""
    now = datetime.now(UTC)
    add_lead(
        minutes_ago=14,
        source="napopravku",
        name="Кузнецов Пётр Ильич",
        phone="8 (912) 640-17-05",
        branch_id="ekb",
        doctor_id="doc-1",
        requested_start=now + timedelta(days=1, hours=2),
        requested_end=now + timedelta(days=1, hours=2, minutes=30),
    )
    add_lead(
        minutes_ago=9,
        source="uis",
        name="Орлова Анна",
        phone="+7 903 111-22-33",
        utm_source="yandex",
        utm_medium="cpc",
        utm_campaign="implants_spring",
        taken_by="anna",
        taken_at=now - timedelta(minutes=6),
        status="in_progress",
    )
    return add_lead(
        minutes_ago=3,
        source="site_main",
        name="Белова Ксения",
        phone="+7 916 505-40-30",
        comment="Болит зуб, можно сегодня?",
        utm_source="google",
        utm_medium="cpc",
    )


def test_a_new_lead_appears_within_the_refresh_interval_and_is_taken(
    airflow_web, browser_page, inbox_conn, add_lead
):
    page = browser_page
    seen_before = _seed_a_working_morning(add_lead)
    # This admin looked at the inbox before, when these three had arrived.
    page.context.add_init_script(
        f"localStorage.setItem('identInbox.lastSeenLeadId', '{seen_before}')"
    )

    page.goto("/inbox/")
    page.wait_for_url("**/auth/login**")  # not logged in: Airflow's own login page
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", airflow_web.passwords["admin"])
    page.click("button[type=submit]")
    page.wait_for_url("**/inbox/")
    rows = page.locator("#leads tr")
    rows.first.wait_for()
    assert rows.count() == 3
    overdue = page.locator("tr.lead", has_text="Кузнецов Пётр Ильич")
    assert "is-overdue" in overdue.get_attribute("class")
    assert "дольше 5 мин" in overdue.inner_text()
    assert "В работе anna" in page.locator("tr.lead", has_text="Орлова Анна").inner_text()

    refresh_seconds = int(page.locator("body").get_attribute("data-refresh-seconds"))
    lead_id = add_lead(
        minutes_ago=0.2, source="flexbe", name="Новикова Дарья", phone="8 (926) 700-00-01"
    )
    inserted = time.monotonic()
    new_row = page.locator(f'tr.lead[data-lead-id="{lead_id}"]')
    new_row.wait_for(timeout=(refresh_seconds + 3) * 1000)  # one interval, plus a request
    assert time.monotonic() - inserted <= refresh_seconds + 3
    assert rows.first.get_attribute("data-lead-id") == str(lead_id)  # newest first
    assert "is-unseen" in new_row.get_attribute("class")
    assert page.locator("tr.lead.is-unseen").count() == 1  # only what came since last time
    assert "+7 926 700-00-01" in new_row.inner_text()
    notifications = page.evaluate("window.__notifications")
    assert [n["title"] for n in notifications] == ["Новая заявка · Flexbe"]
    assert "Новикова Дарья" in notifications[0]["body"]
    assert page.evaluate("window.__tones") == 2
    assert page.title() == "(1) Заявки"

    take = new_row.get_by_role("button", name="Взять в работу")
    take.focus()
    page.wait_for_timeout((refresh_seconds + 1) * 1000)
    assert take.evaluate("button => document.activeElement === button")  # kept on refresh
    page.keyboard.press("Enter")
    new_row.get_by_text("В работе у вас").wait_for()
    page.get_by_text("Заявка взята в работу").wait_for()
    taken_by, response_seconds = inbox_conn.execute(
        "select taken_by, response_seconds from integration.leads where lead_id = %s",
        (lead_id,),
    ).fetchone()
    assert taken_by == "admin" and 0 < response_seconds < 60

    screenshot = os.environ.get("IDENT_INBOX_SCREENSHOT")
    if screenshot:
        page.screenshot(path=str(Path(screenshot)))


def test_search_a_lead_taken_by_someone_else_and_close_it_with_a_comment(
    airflow_web, browser_page, inbox_conn, add_lead
):
    page = browser_page
    lead_id = add_lead(name="Зайцева Вера", phone="+7 915 246-80-00")
    add_lead(name="Лебедев Игорь", phone="+7 999 135-79-11")
    page.context.add_cookies(
        [{"name": "_token", "value": airflow_web.token("admin"), "url": airflow_web.base_url}]
    )
    page.goto("/")  # the Airflow UI links to the inbox from its navigation
    nav_link = page.get_by_role("button", name="Заявки")
    assert nav_link.get_attribute("href") == "/inbox/"
    page.goto(nav_link.get_attribute("href"))
    rows = page.locator("#leads tr")
    rows.nth(1).wait_for()
    page.fill("#filter-search", "8 (915) 246")
    expect(rows).to_have_count(1)
    assert page.url.endswith("?q=8+%28915%29+246")  # the filter stays in the address
    row = page.locator(f'tr.lead[data-lead-id="{lead_id}"]')

    # Anna takes it between this admin's refreshes: the admin is told who has it.
    taken = airflow_web.bearer_session("anna").post(
        airflow_web.url(f"/inbox/api/leads/{lead_id}/take"), json={}, timeout=30
    )
    assert taken.status_code == 200
    row.get_by_role("button", name="Взять в работу").click()
    page.get_by_text("Заявка уже в работе у anna").wait_for()
    row.get_by_text("В работе anna").wait_for()

    row.get_by_role("button", name="Обработана").click()
    dialog = page.get_by_role("dialog")
    assert "Заявку ведёт anna" in dialog.inner_text()
    dialog.get_by_label("Комментарий").fill("Записана на пятницу, 10:00")
    dialog.get_by_role("button", name="Сохранить").click()
    row.wait_for(state="detached")
    assert inbox_conn.execute(
        "select status, taken_by, closed_by, close_comment from integration.leads"
        " where lead_id = %s",
        (lead_id,),
    ).fetchone() == ("done", "anna", "admin", "Записана на пятницу, 10:00")
