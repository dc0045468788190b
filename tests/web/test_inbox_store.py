"""The inbox's queries and actions on the clinic database, without a web server."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from ident_hooks.inbox import store
from ident_hooks.inbox.store import LeadFilter, search_terms


@pytest.mark.parametrize(
    "typed",
    ["8 (916) 123-45-67", "+7 916 123 45 67", "+79161234567", "89161234567", "9161234567"],
)
def test_any_common_way_of_writing_a_phone_finds_it(typed):
    patterns = search_terms(typed).phone_patterns
    assert "%79161234567%" in patterns


@pytest.mark.parametrize("typed", ["916-123", "8 916 12", "+7 (916) 1", "45-67"])
def test_part_of_a_phone_becomes_a_digits_pattern(typed):
    digits = "".join(ch for ch in typed if ch.isdigit())
    patterns = search_terms(typed).phone_patterns
    assert any(digits in p or ("7" + digits[1:]) in p for p in patterns)
    assert search_terms(typed).name_pattern is None


def test_text_without_digits_searches_names_with_like_wildcards_escaped():
    assert search_terms("Иван").name_pattern == "%Иван%"
    assert search_terms("50%_off").phone_patterns  # has digits: a phone search
    assert search_terms("a%b_c").name_pattern == "%a\\%b\\_c%"
    assert search_terms("   ") == store.SearchTerms()


def test_the_view_shows_open_leads_newest_first_with_labels(inbox_conn, add_lead):
    older = add_lead(
        minutes_ago=9,
        source="site_main",
        doctor_id="doc-1",
        requested_start=datetime(2026, 12, 1, 9, 30, tzinfo=UTC),
        utm_source="yandex",
        utm_medium="cpc",
        utm_campaign="implants",
    )
    newer = add_lead(
        minutes_ago=1,
        source="flexbe",
        branch_id="ekb",
        utm_source="vk",
        utm_medium="social",
        doctor_name_raw="Сидоров",
    )
    add_lead(
        minutes_ago=2,
        status="done",
        taken_by="anna",
        taken_at=datetime.now(UTC),
        closed_by="anna",
        closed_at=datetime.now(UTC),
    )
    rows = inbox_conn.execute(
        "select lead_id, source_label, campaign, doctor_name, branch_name, branch_timezone,"
        " waiting_seconds from integration.open_leads"
    ).fetchall()
    assert [r[0] for r in rows] == [newer, older]
    assert rows[0][1:6] == (
        "Flexbe",
        "vk / social",
        "Сидоров",
        "Екатеринбург, Ленина",
        "Asia/Yekaterinburg",
    )
    assert rows[1][1:5] == (
        "Сайт «main»",
        "yandex / implants",
        "Петров Геннадий Андреевич",
        "Москва, Тверская",
    )
    assert 9 * 60 - 5 <= rows[1][6] <= 9 * 60 + 5


def test_list_filters_by_branch_source_and_phone(inbox_conn, add_lead):
    moscow = add_lead(source="uis", phone="8 (916) 555-12-34")
    yekaterinburg = add_lead(source="napopravku", branch_id="ekb", phone="+7 343 200-00-00")

    def ids(**kwargs):
        rows, total = store.list_open_leads(inbox_conn, LeadFilter(**kwargs))
        assert total == len(rows)
        return [r["lead_id"] for r in rows]

    assert ids() == [yekaterinburg, moscow]
    assert ids(branch_id="ekb") == [yekaterinburg]
    assert ids(source="uis") == [moscow]
    assert ids(search="+7 916 5551234") == [moscow]
    assert ids(search="555-12") == [moscow]
    assert ids(search="8 343") == [yekaterinburg]
    assert ids(search="Смирнова") == [yekaterinburg, moscow]
    assert ids(search="000 000 000") == []


def test_list_says_how_many_match_beyond_the_limit(inbox_conn, add_lead):
    for minutes in range(5):
        add_lead(minutes_ago=minutes)
    rows, total = store.list_open_leads(inbox_conn, LeadFilter(), limit=2)
    assert (len(rows), total) == (2, 5)
    assert "total" not in rows[0]


def test_options_list_branches_and_sources_with_labels(inbox_conn, add_lead):
    add_lead(branch_id="spb", source="site_kids")  # neither in the clinic's tables nor config
    branches = store.branch_options(inbox_conn)
    assert [(o.value, o.label) for o in branches] == [
        ("spb", "spb"),  # sorted by label: unknown ids show as they are
        ("ekb", "Екатеринбург, Ленина"),
        ("msk", "Москва, Тверская"),
    ]
    sources = store.source_options(inbox_conn, ["uis", "napopravku"])
    assert {(o.value, o.label) for o in sources} == {
        ("uis", "UIS"),
        ("napopravku", "НаПоправку"),
        ("site_kids", "site_kids"),  # never configured: no title to show
    }


def test_taking_records_who_when_and_the_response_time(inbox_conn, add_lead):
    lead_id = add_lead(minutes_ago=3, loaded_at=datetime.now(UTC) - timedelta(minutes=2))
    state = store.take_lead(inbox_conn, lead_id, "anna")
    assert (state.status, state.taken_by) == ("in_progress", "anna")
    response, lag = inbox_conn.execute(
        "select response_seconds, load_lag_seconds from integration.leads where lead_id = %s",
        (lead_id,),
    ).fetchone()
    assert 175 <= response <= 190
    assert 55 <= lag <= 65
    assert store.take_lead(inbox_conn, lead_id, "anna").taken_by == "anna"  # a double click
    with pytest.raises(store.LeadUnavailable) as refused:
        store.take_lead(inbox_conn, lead_id, "admin")
    assert refused.value.state.taken_by == "anna"


def test_closing_an_untaken_lead_takes_it_at_the_same_moment(inbox_conn, add_lead):
    lead_id = add_lead()
    state = store.close_lead(inbox_conn, lead_id, "admin", "spam", "  дубль заявки  ")
    assert (state.status, state.taken_by, state.closed_by) == ("spam", "admin", "admin")
    assert state.taken_at == state.closed_at
    comment = inbox_conn.execute(
        "select close_comment from integration.leads where lead_id = %s", (lead_id,)
    ).fetchone()[0]
    assert comment == "дубль заявки"
    with pytest.raises(store.LeadUnavailable):
        store.close_lead(inbox_conn, lead_id, "anna", "done")
    with pytest.raises(store.LeadNotFound):
        store.take_lead(inbox_conn, 987654321, "anna")


def test_closing_someone_elses_lead_keeps_who_took_it(inbox_conn, add_lead):
    lead_id = add_lead()
    store.take_lead(inbox_conn, lead_id, "anna")
    state = store.close_lead(inbox_conn, lead_id, "admin", "done")
    assert (state.taken_by, state.closed_by, state.status) == ("anna", "admin", "done")
    assert state.closed_at >= state.taken_at


def test_two_admins_taking_one_lead_at_once_one_wins(clinic_db_url, inbox_conn, add_lead):
    lead_ids = [add_lead() for _ in range(20)]
    outcomes: dict[str, list] = {"anna": [], "admin": []}
    start = threading.Barrier(2)

    def take_all(user: str) -> None:
        with psycopg.connect(clinic_db_url) as conn:
            start.wait()
            for lead_id in lead_ids:
                try:
                    outcomes[user].append(store.take_lead(conn, lead_id, user).taken_by)
                except store.LeadUnavailable as refused:
                    outcomes[user].append(f"refused:{refused.state.taken_by}")

    threads = [threading.Thread(target=take_all, args=(user,)) for user in outcomes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for anna, admin in zip(outcomes["anna"], outcomes["admin"], strict=True):
        assert sorted([anna, admin]) in (["anna", "refused:anna"], ["admin", "refused:admin"])
