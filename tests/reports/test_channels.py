"""The channel rules: examples a marketer would check, and SQL that agrees with Python."""

from __future__ import annotations

import itertools
import json

import psycopg
import pytest

from ident_hooks.reports.channels import (
    CHANNELS,
    ChannelRulesError,
    channel_sql,
    classify,
    load_rules,
)

# source, utm_source, utm_medium, referrer_host -> channel
EXAMPLES = [
    # An aggregator's own booking system: aggregator whatever the tags say.
    ("napopravku", None, None, None, "aggregator"),
    ("32top", "32top", "referral", "32top.ru", "aggregator"),
    ("napopravku", "google", "cpc", "google.com", "aggregator"),
    # UTM tags decide when utm_source or utm_medium is there.
    ("site_main", "yandex", "cpc", "yandex.ru", "paid"),
    ("uis", "vk", "cpc", None, "paid"),
    ("uis", "Yandex", " CPC ", None, "paid"),
    ("flexbe", "vk", "social", None, "social"),
    ("flexbe", "telegram", None, None, "social"),
    ("site_main", None, "smm", None, "social"),
    ("site_main", "prodoctorov", "referral", None, "aggregator"),
    ("site_main", "newsletter_nov", "email", None, "email"),
    ("site_main", "google", "organic", None, "organic"),
    ("site_main", "partner_site", "referral", None, "referral"),
    ("site_main", "yandex", None, "yandex.ru", "other"),
    ("site_main", "billboard", "offline", None, "other"),
    # No tags: the referrer decides.
    ("site_main", None, None, "yandex.ru", "organic"),
    ("site_main", None, None, "yandex.com.tr", "organic"),
    ("site_main", None, None, "ya.ru", "organic"),
    ("site_main", None, None, "google.com", "organic"),
    ("site_main", None, None, "google.co.uk", "organic"),
    ("site_main", None, None, "go.mail.ru", "organic"),
    ("site_main", None, None, "zen.yandex.ru", "social"),
    ("site_main", None, None, "dzen.ru", "social"),
    ("site_main", None, None, "vk.com", "social"),
    ("site_main", None, None, "m.vk.com", "social"),
    ("site_main", None, None, "away.vk.com", "social"),
    ("site_main", None, None, "ok.ru", "social"),
    ("site_main", None, None, "t.me", "social"),
    ("site_main", None, None, "prodoctorov.ru", "aggregator"),
    ("site_main", None, None, "spb.napopravku.ru", "aggregator"),
    ("site_main", None, None, "sberzdorovie.ru", "aggregator"),
    ("site_main", None, None, "docdoc.ru", "aggregator"),
    ("site_main", None, None, "32top.ru", "aggregator"),
    ("site_main", None, None, "notvk.com", "referral"),
    ("site_main", None, None, "google.example.org", "referral"),
    ("site_main", None, None, "stomatology-forum.ru", "referral"),
    # Nothing known.
    ("uis", None, None, None, "direct"),
    ("site_main", "", " ", "", "direct"),
    ("flexbe", None, None, None, "direct"),
]


@pytest.mark.parametrize(("source", "utm_source", "utm_medium", "host", "channel"), EXAMPLES)
def test_examples(source, utm_source, utm_medium, host, channel):
    assert classify(source, utm_source, utm_medium, host) == channel


def test_every_channel_is_reachable_and_described():
    assert {example[-1] for example in EXAMPLES} == set(CHANNELS)


def test_sql_and_python_agree(clinic_db_url):
    sources = ["uis", "napopravku", "site_main", "32TOP", None]
    utm_sources = [None, "", "vk", "google", "Prodoctorov", "odd'value", "zen"]
    utm_mediums = [None, "cpc", "Social", "email", "organic", "referral", "weird"]
    hosts = [None, "yandex.ru", "zen.yandex.ru", "maps.google.com", "napopravku.ru", "x.org"]
    rows = [*itertools.product(sources, utm_sources, utm_mediums, hosts)]
    rows += [example[:4] for example in EXAMPLES]
    with psycopg.connect(clinic_db_url) as conn:
        conn.execute(
            "create temp table samples (n int, source text, utm_source text,"
            " utm_medium text, referrer_host text, raw jsonb default '{}')"
        )
        with conn.cursor().copy(
            "copy samples (n, source, utm_source, utm_medium, referrer_host) from stdin"
        ) as copy:
            for n, row in enumerate(rows):
                copy.write_row((n, *row))
        from_sql = conn.execute(f"select n, {channel_sql('s')} from samples s order by n")
        assert [channel for _, channel in from_sql] == [classify(*row) for row in rows]


def test_sql_and_python_agree_on_dialled_numbers(clinic_db_url, tmp_path, monkeypatch):
    """A call's number in any spelling; only a call (call_session_id) of a call source."""
    from ident_hooks.reports import channels

    path = tmp_path / "marketing_channels.yaml"
    path.write_text(
        channels.RULES_PATH.read_text(encoding="utf-8").replace("numbers: []\n", "") + "numbers:\n"
        '  - {number: "+7 495 120-00-01", channel: aggregator, label: "ПроДокторов"}\n'
        '  - {number: "+44 20 7946 0000", channel: referral, label: "London"}\n',
        encoding="utf-8",
    )
    monkeypatch.setenv(channels.RULES_PATH_VARIABLE, str(path))
    channels._numbers.cache_clear()
    try:
        dialled = [None, "74951200001", "84951200001", "4951200001", "+7 (495) 120-00-01",
                   "74951200009", "442079460000", "+44 20 7946 0000"]  # fmt: skip
        rows = [
            (source, utm_source, number, mark)
            for source in ("uis_calls", "uis", "site_main")
            for utm_source in (None, "vk")
            for number in dialled
            for mark in ("call_session_id", "communication_id")
        ]
        with psycopg.connect(clinic_db_url) as conn:
            conn.execute(
                "create temp table samples (n int, source text, utm_source text,"
                " utm_medium text, referrer_host text, raw jsonb)"
            )
            with conn.cursor().copy("copy samples from stdin") as copy:
                for n, (source, utm_source, number, mark) in enumerate(rows):
                    raw = {mark: n} | ({} if number is None else {"virtual_phone_number": number})
                    copy.write_row((n, source, utm_source, None, None, json.dumps(raw)))
            from_sql = [
                c
                for _, c in conn.execute(f"select n, {channel_sql('s')} from samples s order by n")
            ]
        expected = [
            classify(source, utm_source, None, None, number if mark == "call_session_id" else None)
            for source, utm_source, number, mark in rows
        ]
        assert from_sql == expected
        assert expected.count("aggregator") == 2 * 4  # uis_calls, ± vk, four spellings
    finally:
        channels._numbers.cache_clear()


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ("utm:\n  - {channel: ads, utm_source: [x]}\n", "utm rule 1: channel must be one of"),
        ("utm:\n  - {channel: paid, utm_term: [x]}\n", "utm rule 1: name one tag"),
        ("utm:\n  - {channel: paid, utm_medium: [CPC]}\n", "utm rule 1: values must be plain"),
        ("referrers:\n  - {channel: social, domains: []}\n", "referrer rule 1: a non-empty list"),
        (
            'referrers:\n  - {channel: social, domains: ["x\'.ru"]}\n',
            "referrer rule 1: values must",
        ),
    ],
)
def test_mistakes_in_the_rules_file_are_refused_with_a_reason(tmp_path, rules, message):
    path = tmp_path / "marketing_channels.yaml"
    path.write_text(rules, encoding="utf-8")
    with pytest.raises(ChannelRulesError, match=f"marketing_channels.yaml: {message}"):
        load_rules(path)


def test_a_deployment_points_at_its_own_rules_file(tmp_path, monkeypatch):
    """An installed provider's include/ is not edited: $IDENT_MARKETING_CHANNELS_CONFIG names
    the file a marketer keeps."""
    path = tmp_path / "channels.yaml"
    path.write_text(
        "utm:\n  - {channel: paid, utm_medium: [cpc]}\n"
        "referrers:\n  - {channel: social, domains: [clinic-friends.ru]}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("IDENT_MARKETING_CHANNELS_CONFIG", str(path))
    utm_rules, referrer_rules = load_rules()
    assert [rule.channel for rule in utm_rules] == ["paid"]
    assert [(rule.channel, rule.domains) for rule in referrer_rules] == [
        ("social", ("clinic-friends.ru",))
    ]
