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
    assert all(s.interval == timedelta(minutes=2) for s in sources.values())
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
        ({"aggregators": {"yandex": {"interval_minutes": 10}}}, "unknown aggregator"),
        ({"aggregators": {"prodoctorov": {"interval_minutes": 0}}}, "interval_minutes"),
        ({"lead_sources": {"uis": {"kind": "tilda", "interval_minutes": 2}}}, "kind must be"),
        ({"lead_sources": {"uis": {"kind": "uis", "interval_minutes": "2"}}}, "whole number"),
        ({"sites": [{"name": "Main Site", "interval_minutes": 2}]}, "lowercase"),
        (
            {"sites": [{"name": "a", "interval_minutes": 2}, {"name": "a", "interval_minutes": 2}]},
            "share a name",
        ),
        ({"lead_initial_days": -1}, "initial_days"),
    ],
)
def test_mistakes_are_refused_with_a_reason(data, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(data)
