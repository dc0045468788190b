"""The normaliser's rules: phones, UTM tags, referrer hosts, doctor matching, rejects."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ident_dev.simulators.ident_tickets import IdentTicketsSimulator
from ident_hooks.leads.normalise import (
    LEAD_COLUMNS,
    DoctorMatcher,
    RejectedRecord,
    clean_text,
    make_lead,
    normalise_phone,
    parse_time,
    parse_unix_time,
    record_id,
    referrer_host,
    utm_from_url,
    without_nul,
)
from ident_hooks.leads.sources import SourceSettings, parse_records
from ident_hooks.leads.sources.ident_tickets import IdentTicketsSource

MOSCOW = ZoneInfo("Europe/Moscow")


@pytest.mark.parametrize(
    "raw",
    [
        "8 (916) 123-45-67",
        "+7 (916) 123-45-67",
        "+79161234567",
        "89161234567",
        "79161234567",
        "9161234567",
        "916 123 45 67",
        "8-916-123-45-67",
        " +7 916 123 45 67 ",
        "тел.: 8 916 1234567",
        79161234567,
    ],
)
def test_common_russian_formats_become_e164(raw):
    assert normalise_phone(raw) == "+79161234567"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("8 (495) 123-45-67", "+74951234567"),
        ("8 800 555-35-35", "+78005553535"),
        ("+44 20 7946 0958", "+442079460958"),
        ("+7 701 123 4567", "+77011234567"),  # Kazakhstan shares +7
        ("8 916 123-45-67 доб. 12", "+79161234567"),
    ],
)
def test_other_valid_numbers(raw, expected):
    assert normalise_phone(raw) == expected


@pytest.mark.parametrize("raw", [None, "", "нет", "123-45", "+7 (000) 000", "89", "1" * 200, True])
def test_invalid_phones_are_none_not_rejects(raw):
    assert normalise_phone(raw) is None


@settings(max_examples=300, deadline=None)
@given(
    digits=st.text(alphabet="0123456789", min_size=9, max_size=12),
    prefix=st.sampled_from(["", "+", "8 ", "+7 ", "7"]),
    separator=st.sampled_from(["", " ", "-"]),
)
def test_fast_path_agrees_with_phonenumbers(digits, prefix, separator):
    text = prefix + separator.join([digits[:3], digits[3:6], digits[6:]])
    try:
        number = phonenumbers.parse(text, "RU")
        expected = (
            phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            if phonenumbers.is_valid_number(number)
            else None
        )
    except phonenumbers.NumberParseException:
        expected = None
    assert normalise_phone(text) == expected


def test_utm_from_url_reads_query_and_fragment():
    url = "https://clinic.ru/implant/?utm_source=yandex&utm_medium=cpc&utm_term=%D0%B7%D1%83%D0%B1&x=1"
    assert utm_from_url(url) == {"utm_source": "yandex", "utm_medium": "cpc", "utm_term": "зуб"}
    assert utm_from_url("https://clinic.ru/#utm_source=vk&utm_campaign=spring") == {
        "utm_source": "vk",
        "utm_campaign": "spring",
    }
    assert utm_from_url("https://clinic.ru/?UTM_SOURCE=google&utm_medium=") == {
        "utm_source": "google"
    }
    assert utm_from_url("https://clinic.ru/") == {}
    assert utm_from_url(None) == {}
    assert utm_from_url("http://[::1/?utm_source=x") == {}


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://WWW.Yandex.RU/search/?text=зубы", "yandex.ru"),
        ("https://www.google.com/", "google.com"),
        ("vk.com/smile_clinic", "vk.com"),
        ("https://t.me/smile", "t.me"),
        ("http://prodoctorov.ru:8080/x", "prodoctorov.ru"),
        ("android-app://com.google.android.gm/", "com.google.android.gm"),
        ("https://клиника.рф/", "клиника.рф"),
        ("", None),
        (None, None),
        ("http://[::1", None),
    ],
)
def test_referrer_host(url, host):
    assert referrer_host(url) == host


def test_doctor_matching_by_id_surname_and_initials():
    matcher = DoctorMatcher(
        [
            ("doc-1", "Петров Геннадий Андреевич"),
            ("doc-2", "Иванова Мария Сергеевна"),
            ("doc-3", "Иванова Анна Олеговна"),
            ("doc-4", "Семёнов Илья Игоревич"),
            ("doc-5", "Римская-Корсакова Ольга Павловна"),
        ]
    )
    assert matcher.match("doc-2") == "doc-2"
    assert matcher.match("unknown", "петров") == "doc-1"
    assert matcher.match(None, "Семенов") == "doc-4"  # ё = е
    assert matcher.match(None, "СЕМЁНОВ И.И.") == "doc-4"
    assert matcher.match(None, "Римская-Корсакова") == "doc-5"
    assert matcher.match(None, "Геннадий Петров") == "doc-1"
    assert matcher.match(None, "Иванова") is None  # two Ивановы
    assert matcher.match(None, "Иванова М.") == "doc-2"
    assert matcher.match(None, "Иванова Анна Олеговна") == "doc-3"
    assert matcher.match(None, "Сидоров") is None
    assert matcher.match(None, "") is None
    assert matcher.match(None, None) is None


def test_text_is_kept_verbatim_except_nul():
    tricky = "Robert'); DROP TABLE leads;-- \u202eevil\u200b 👩‍⚕️ Z̷a̷l̷g̷o̷"
    assert clean_text(tricky, "name") == tricky
    huge = "я" * 1_000_000
    assert clean_text(huge, "comment") == huge
    assert clean_text("A\x00B", "name") == "AB"
    assert clean_text("   ", "name") is None
    assert clean_text(42, "phone") == "42"
    with pytest.raises(RejectedRecord, match="name: expected text, got list"):
        clean_text(["x"], "name")
    assert without_nul({"a\x00": ["b\x00", {"c": "d\x00"}], "n": 1}) == {
        "a": ["b", {"c": "d"}],
        "n": 1,
    }


def test_ids_and_times():
    assert record_id(12) == "12"
    assert record_id(" abc ") == "abc"
    for bad in (None, "", "  ", True, 1.5, {"id": 1}):
        with pytest.raises(RejectedRecord):
            record_id(bad)
    assert parse_time("2026-11-26 10:00:00", MOSCOW, "t") == datetime(
        2026, 11, 26, 10, tzinfo=MOSCOW
    )
    assert parse_time("2026-11-26T07:00:00Z", MOSCOW, "t") == datetime(2026, 11, 26, 7, tzinfo=UTC)
    assert parse_time("26.11.2026 10:30", MOSCOW, "t") == datetime(
        2026, 11, 26, 10, 30, tzinfo=MOSCOW
    )
    assert parse_time("2026-11-26T10:00:00+05:00", MOSCOW, "t").utcoffset() == timedelta(hours=5)
    assert parse_time(None, MOSCOW, "t", required=False) is None
    with pytest.raises(RejectedRecord, match="t: unparseable time"):
        parse_time("вчера", MOSCOW, "t")
    with pytest.raises(RejectedRecord, match="missing time"):
        parse_time(None, MOSCOW, "t")
    with pytest.raises(RejectedRecord):
        parse_time(1700000000, MOSCOW, "t")
    assert parse_unix_time("1795680000", "time") == datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
    for bad in (None, "soon", True, 1e20):
        with pytest.raises(RejectedRecord):
            parse_unix_time(bad, "time")


def test_make_lead_fills_missing_utm_from_landing_url_per_tag():
    lead = make_lead(
        source="uis",
        external_id="1",
        created_at=datetime(2026, 11, 26, tzinfo=UTC),
        raw={"id": 1},
        phone="8 (916) 123-45-67",
        utm={"utm_source": "vk", "utm_medium": None},
        referrer="https://www.vk.com/wall-1",
        landing_url="https://clinic.ru/?utm_source=yandex&utm_medium=social&utm_campaign=spring",
    )
    assert (lead.utm_source, lead.utm_medium, lead.utm_campaign) == ("vk", "social", "spring")
    assert (lead.utm_term, lead.utm_content) == (None, None)
    assert lead.phone_raw == "8 (916) 123-45-67"
    assert lead.phone_e164 == "+79161234567"
    assert lead.referrer_host == "vk.com"
    assert len(lead.row()) == len(LEAD_COLUMNS) == 27
    assert LEAD_COLUMNS[0:3] == ("source", "external_id", "created_at")
    assert LEAD_COLUMNS[-1] == "raw"


def test_normalising_100k_leads_is_fast(doctors):
    simulator = IdentTicketsSimulator(doctors=doctors, seed=7)  # used only to render records
    start = datetime(2026, 11, 26, tzinfo=timezone(timedelta(hours=3)))
    records = [
        simulator.render(simulator.factory.make(start - timedelta(seconds=i)), i + 1)
        for i in range(100_000)
    ]
    began = time.perf_counter()
    batch = parse_records(
        IdentTicketsSource,
        records,
        settings=SourceSettings(source="site_main"),
        matcher=DoctorMatcher(doctors),
    )
    elapsed = time.perf_counter() - began
    print(f"normalised 100 000 leads in {elapsed:.2f} s")
    assert len(batch.leads) == 100_000 and not batch.rejects
    assert sum(lead.phone_e164 is not None for lead in batch.leads) > 90_000
    assert elapsed < 6  # ~1.2 s on an idle 2-CPU machine; generous for loaded CI
