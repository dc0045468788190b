"""include/integrations.yaml: what DAGs it makes, and the mistakes it refuses."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ident_hooks.config import ConfigError, load_config, parse_config


def test_shipped_config_names_every_dag_of_the_product():
    config = load_config()
    assert {a.name for a in config.aggregators} == {
        "prodoctorov",
        "napopravku",
        "sberzdorovie",
        "32top",
    }
    sources = {s.name: s for s in config.lead_sources}
    assert {"uis", "flexbe", "napopravku", "32top", "site_main"} <= set(sources)
    assert sources["site_main"].kind == "ident_tickets"
    assert sources["site_main"].connection == "site_main"
    pulled = {name: s for name, s in sources.items() if not s.spec.push}
    assert {name for name, s in sources.items() if s.spec.push} == {
        "tilda",
        "site_form",
        "uis_calls",
    }
    assert all(s.interval is None for name, s in sources.items() if name not in pulled)
    assert all(s.interval == timedelta(minutes=2) for s in pulled.values())
    assert all(a.interval == timedelta(minutes=10) for a in config.aggregators)
    assert all(s.initial_days == 7 for s in sources.values())


def test_intervals_and_first_pull_depth_are_per_entry():
    config = parse_config(
        {
            "lead_initial_days": 3,
            "lead_sources": {"uis": {"kind": "uis", "interval_minutes": 1, "initial_days": 30}},
            "sites": [{"name": "kids", "interval_minutes": 5}],
        }
    )
    uis, kids = config.lead_sources
    assert (uis.interval, uis.initial_days) == (timedelta(minutes=1), 30)
    assert (kids.name, kids.interval, kids.initial_days) == ("site_kids", timedelta(minutes=5), 3)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"aggregators": {"yandex": {"interval_minutes": 10}}}, "kind must be one of"),
        ({"aggregators": {"yandex": {"kind": "yandex", "interval_minutes": 10}}}, "kind must be"),
        (
            {"aggregators": {"prodoctorov": {"kind": "prodoctorov", "interval_minutes": 0}}},
            "interval_minutes",
        ),
        ({"aggregators": {"a": {"kind": "ident_timetable", "title": " "}}}, "title"),
        ({"lead_sources": {"uis": {"kind": "bitrix", "interval_minutes": 2}}}, "kind must be"),
        ({"lead_sources": {"uis": {"kind": "uis", "interval_minutes": "2"}}}, "whole number"),
        ({"sites": [{"name": "Main Site", "interval_minutes": 2}]}, "lowercase"),
        (
            {"sites": [{"name": "a", "interval_minutes": 2}, {"name": "a", "interval_minutes": 2}]},
            "share a name",
        ),
        ({"lead_initial_days": -1}, "initial_days"),
        (
            {
                "aggregators": {
                    "prodoctorov": {
                        "kind": "prodoctorov",
                        "connection": "x",
                        "interval_minutes": 10,
                    }
                },
                "lead_sources": {"uis": {"kind": "uis", "connection": "x", "interval_minutes": 2}},
            },
            "shared by integrations of different services",
        ),
        ({"cost_sources": {"ads": {"kind": "google_ads"}}}, r"cost_sources\.ads: kind must be"),
        (
            {"cost_sources": {"ads": {"kind": "yandex_direct", "days_back": 0}}},
            r"cost_sources\.ads: days_back must be a whole number from 1 to 90",
        ),
        (
            {"cost_sources": {"ads": {"kind": "yandex_direct", "include_vat": "yes"}}},
            r"cost_sources\.ads: include_vat must be true or false",
        ),
        (
            {
                "cost_sources": {"ads": {"kind": "yandex_direct", "connection": "x"}},
                "lead_sources": {"uis": {"kind": "uis", "connection": "x", "interval_minutes": 2}},
            },
            "shared by integrations of different services",
        ),
    ],
)
def test_mistakes_are_refused_with_a_reason(data, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(data)


def test_a_new_aggregator_on_a_known_protocol_is_configuration_only():
    config = parse_config(
        {
            "aggregators": {
                "docdoc": {"kind": "ident_timetable", "title": "DocDoc", "interval_minutes": 5},
            },
            "lead_sources": {
                "flexbe_promo": {"kind": "flexbe", "title": "Flexbe «Акция»", "interval_minutes": 2}
            },
        }
    )
    (docdoc,) = config.aggregators
    assert (docdoc.kind, docdoc.title, docdoc.connection) == ("ident_timetable", "DocDoc", "docdoc")
    assert docdoc.spec.sends_busy and docdoc.spec.fixed_days_ahead is None
    assert config.lead_source("flexbe_promo").spec.connector_class().kind == "flexbe"
    # Titles default to the kind's, or to the name for a protocol many services speak.
    plain = parse_config(
        {
            "aggregators": {"x": {"kind": "ident_timetable", "interval_minutes": 5}},
            "lead_sources": {"uis": {"kind": "uis", "interval_minutes": 2}},
            "sites": [{"name": "kids", "interval_minutes": 2}],
        }
    )
    assert plain.aggregator("x").title == "x"
    assert [s.title for s in plain.lead_sources] == ["UIS", "Сайт «kids»"]


def test_a_lead_source_may_fix_the_marketing_channel_of_its_leads():
    config = parse_config(
        {
            "lead_sources": {
                "napopravku": {"kind": "napopravku", "interval_minutes": 2},
                "sber": {"kind": "ident_tickets", "interval_minutes": 2, "channel": "aggregator"},
                "uis": {"kind": "uis", "interval_minutes": 2},
            },
            "sites": [{"name": "kids", "interval_minutes": 2, "channel": "paid"}],
        }
    )
    # НаПоправку's bookings by their kind; the IDENT partner and the site by their entry.
    assert config.source_channels() == {
        "napopravku": "aggregator",
        "sber": "aggregator",
        "site_kids": "paid",
    }
    assert load_config().source_channels() == {"napopravku": "aggregator", "32top": "aggregator"}
    with pytest.raises(ConfigError, match=r"lead_sources\.uis: channel must be one of aggregator"):
        parse_config(
            {"lead_sources": {"uis": {"kind": "uis", "interval_minutes": 2, "channel": "ads"}}}
        )


def test_the_demand_report_follows_the_configured_instance_of_its_kind():
    assert load_config().demand_aggregator == "prodoctorov"
    renamed = parse_config(
        {"aggregators": {"pd_msk": {"kind": "prodoctorov", "interval_minutes": 10}}}
    )
    assert renamed.demand_aggregator == "pd_msk"
    assert parse_config({}).demand_aggregator is None


def test_a_cost_source_reads_three_days_back_with_vat_unless_it_says_otherwise():
    (shipped,) = load_config().cost_sources
    assert (shipped.kind, shipped.days_back, shipped.include_vat) == ("yandex_direct", 3, True)
    assert shipped.dag_id == f"import_ad_costs_{shipped.name}"
    assert shipped.spec.connection.name == "yandex_direct"
    config = parse_config(
        {
            "cost_sources": {
                "direct_agency": {
                    "kind": "yandex_direct",
                    "title": "Директ (агентство)",
                    "days_back": 7,
                    "include_vat": False,
                }
            }
        }
    )
    source = config.cost_source("direct_agency")
    assert (source.connection, source.title, source.days_back, source.include_vat) == (
        "direct_agency",
        "Директ (агентство)",
        7,
        False,
    )
