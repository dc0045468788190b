"""Publisher classes: each registry kind names one, and a class declares what it sends."""

from __future__ import annotations

import pytest

from ident_hooks.registry import AGGREGATOR_KINDS, IDENT_INTEGRATION_KEY
from ident_hooks.schedule.aggregators import Cut, SchedulePublisher, publisher
from ident_hooks.schedule.aggregators.ident_timetable import IdentTimetablePublisher


@pytest.mark.parametrize("kind", sorted(AGGREGATOR_KINDS))
def test_every_kind_names_a_publisher_that_sends_the_request_kinds_its_rules_name(kind):
    spec = AGGREGATOR_KINDS[kind]
    publisher_class = spec.connector_class()
    assert issubclass(publisher_class, SchedulePublisher)
    # The registry's rules speak of request kinds; the class is what sends them.
    assert spec.schedule_request in publisher_class.endpoints
    assert {*spec.skip_unchanged, *spec.resend_every} <= set(publisher_class.endpoints)


def test_a_configured_aggregator_gets_an_instance_of_its_kinds_class():
    ident_partner = publisher("32top")
    assert type(ident_partner) is IdentTimetablePublisher
    assert ident_partner.spec is AGGREGATOR_KINDS["ident_timetable"]
    assert ident_partner.client("any_connection").auth == IDENT_INTEGRATION_KEY


def test_a_publisher_missing_a_declaration_or_what_its_cut_needs_is_refused_when_defined():
    with pytest.raises(TypeError, match="does not declare cut"):

        class NoCut(SchedulePublisher):
            auth = IDENT_INTEGRATION_KEY
            endpoints = {"timetable": "PostTimeTable"}

    with pytest.raises(TypeError, match="does not implement render_timetable"):

        class NoRenderer(SchedulePublisher):
            auth = IDENT_INTEGRATION_KEY
            endpoints = {"timetable": "PostTimeTable"}
            cut = Cut.TIMETABLE

    with pytest.raises(TypeError, match="does not implement read_reply"):

        class NoReplyReader(IdentTimetablePublisher):
            reads_replies = True
