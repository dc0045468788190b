"""Every DAG file imports cleanly, fast, and carries what the data team relies on."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"
# What a DAG may be tagged with, so that the UI's tag filter finds a whole family: its
# function, and for an integration's DAG the registry's kind (never an instance's name,
# which is open-ended).
FUNCTION_TAGS = {
    "leads",
    "schedule",
    "costs",
    "conversions",
    "health",
    "reports",
    "marketing",
    "clinic-db",
    "maintenance",
}


@pytest.fixture(scope="module")
def dag_bag():
    from airflow.dag_processing.dagbag import DagBag

    started = time.perf_counter()
    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    bag.parse_seconds = time.perf_counter() - started
    return bag


def test_no_import_errors(dag_bag):
    assert dag_bag.import_errors == {}


def test_all_dag_files_produce_dags(dag_bag):
    files = {p.resolve() for p in DAGS_FOLDER.glob("*.py")}
    files_with_dags = {Path(d.fileloc).resolve() for d in dag_bag.dags.values()}
    assert files == files_with_dags


def test_parsing_is_fast(dag_bag):
    # The dag-processor re-parses every 30 s: no database or network work at import time.
    assert dag_bag.parse_seconds < 2.0, f"parsing dags/ took {dag_bag.parse_seconds:.2f} s"


def test_dag_tags_come_from_the_vocabulary(dag_bag):
    from ident_hooks.registry import (
        AGGREGATOR_KINDS,
        CONVERSION_SINK_KINDS,
        COST_SOURCE_KINDS,
        LEAD_SOURCE_KINDS,
    )

    vocabulary = (
        FUNCTION_TAGS
        | set(AGGREGATOR_KINDS)
        | set(LEAD_SOURCE_KINDS)
        | set(COST_SOURCE_KINDS)
        | set(CONVERSION_SINK_KINDS)
    )
    for dag_id, dag in dag_bag.dags.items():
        assert set(dag.tags) <= vocabulary, f"{dag_id}: {set(dag.tags) - vocabulary}"


def test_integration_dags_are_named_by_their_instance(dag_bag):
    from ident_hooks.config import load_config

    config = load_config()
    expected = {a.dag_id for a in config.aggregators}
    expected |= {s.dag_id for s in config.lead_sources if not s.spec.push}
    expected |= {c.dag_id for c in config.cost_sources}
    expected |= {s.dag_id for s in config.conversion_sinks}
    integration_dags = {
        d
        for d in dag_bag.dags
        if d.startswith(("publish_", "pull_", "import_ad_costs_", "send_conversions_"))
    }
    assert integration_dags == expected


def test_every_dag_is_documented_and_safe_to_operate(dag_bag):
    assert dag_bag.dags
    for dag_id, dag in dag_bag.dags.items():
        assert dag.catchup is False, dag_id
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md and len(dag.doc_md) > 200, f"{dag_id} needs a doc_md that helps"
        assert (
            "re-run" in dag.doc_md.lower()
            or "re-running" in dag.doc_md.lower()
            or ("reset" in dag.doc_md.lower())
        ), f"{dag_id}: doc_md must say how to re-run or reset it"
        for task in dag.tasks:
            assert task.owner and task.owner != "airflow", f"{dag_id}.{task.task_id} owner"
            assert task.retries >= 1, f"{dag_id}.{task.task_id} has no retries"


def test_integration_dags_run_the_operators_of_their_configured_instance(dag_bag):
    from ident_hooks.config import load_config
    from ident_hooks.operators.import_ad_costs import ImportAdCostsOperator
    from ident_hooks.operators.publish_schedule import PublishScheduleOperator
    from ident_hooks.operators.pull_leads import AcknowledgeBookingsOperator, PullLeadsOperator
    from ident_hooks.operators.send_conversions import SendConversionsOperator

    config = load_config()
    for source in config.lead_sources:
        if source.spec.push:
            continue
        dag = dag_bag.dags[source.dag_id]
        pull = dag.get_task("pull_and_store")
        assert isinstance(pull, PullLeadsOperator) and pull.source == source.name
        acknowledge = dag.task_dict.get("acknowledge_bookings")
        if source.spec.acknowledges:
            assert isinstance(acknowledge, AcknowledgeBookingsOperator), source.name
            assert acknowledge.source == source.name
            assert acknowledge.trigger_rule == "all_done"
        else:
            assert acknowledge is None, source.name
    for aggregator in config.aggregators:
        publish = dag_bag.dags[aggregator.dag_id].get_task("publish")
        assert isinstance(publish, PublishScheduleOperator)
        assert publish.aggregator == aggregator.name
    assert config.cost_sources
    for cost_source in config.cost_sources:
        imports = dag_bag.dags[cost_source.dag_id].get_task("import_costs")
        assert isinstance(imports, ImportAdCostsOperator)
        assert imports.cost_source == cost_source.name
    assert config.conversion_sinks
    for sink in config.conversion_sinks:
        dag = dag_bag.dags[sink.dag_id]
        send = dag.get_task("send_conversions")
        assert isinstance(send, SendConversionsOperator) and send.sink == sink.name
        assert set(dag.tags) == {"conversions", sink.kind} and dag.max_active_runs == 1
        assert (dag.timetable.expression, str(dag.timetable.timezone)) == (
            "20 * * * *",
            config.clinic_timezone,
        )
        assert f"sink = '{sink.name}'" in dag.doc_md  # how to resend
