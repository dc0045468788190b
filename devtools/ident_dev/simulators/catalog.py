"""Which simulator stands in for which Airflow connection — one place for tests and the demo.

``build_simulators`` makes one loopback server per connection of the integrations config,
chosen by the kind of the instances that use it, and returns, for each connection id,
the server and the Airflow connection (JSON) that points at it with the simulator's
credentials. A new kind is one factory in :data:`LEAD_SIMULATORS`,
:data:`AGGREGATOR_SIMULATORS`, :data:`COST_SIMULATORS` or :data:`CONVERSION_SIMULATORS`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ident_dev.simulators.base import SimulatorServer


def demo_secret(conn_id: str) -> str:
    """The credential a connection's simulator accepts; it protects nothing real."""
    return f"{conn_id}-demo-key"


@dataclass
class SimulatedService:
    """One connection's simulator. ``timetable`` is the schedule receiver of a partner that
    speaks both IDENT directions on one base URL (32top: GetTickets and PostTimeTable).
    ``conn_type`` is the service's connection type in the registry (``http`` reads the same
    fields)."""

    conn_id: str
    server: SimulatorServer
    secret: str
    path: str = ""
    timetable: SimulatorServer | None = None
    conn_type: str = "http"

    @property
    def connection_fields(self) -> dict[str, str]:
        """The Airflow connection that points at the simulator, as its fields."""
        return {
            "conn_type": self.conn_type,
            "host": self.server.base_url + self.path,
            "password": self.secret,
        }

    @property
    def airflow_connection(self) -> str:
        return json.dumps(self.connection_fields)

    @property
    def env_var(self) -> str:
        return f"AIRFLOW_CONN_{self.conn_id.upper()}"


@dataclass(frozen=True)
class _Context:
    secret: str
    doctors: list[tuple[str, str]]
    branch_ids: tuple[str, ...]
    seed: int
    common: dict[str, Any]
    # The connection also takes a schedule: the partner is an aggregator (32top), whose
    # tickets name only the doctor's surname and the start time.
    also_aggregator: bool
    # The config's instance the simulator serves, where its settings shape the service (a
    # conversion sink's counter and goals).
    instance: Any = None


def _uis(c: _Context) -> tuple[SimulatorServer, str]:
    from ident_dev.simulators.uis import UisSimulator
    from ident_hooks.conversions.uis_deals import SALES_FUNNEL_EXT_ID, VISIT_STAGE_EXT_ID

    # The account has the sales funnel docs/integrations.md has a clinic create once for
    # the visits sent as deals.
    funnels = {SALES_FUNNEL_EXT_ID: ["new", VISIT_STAGE_EXT_ID, "lost"]}
    simulator = UisSimulator(
        access_token=c.secret, seed=c.seed, doctors=c.doctors, sales_funnels=funnels, **c.common
    )
    return simulator, ""


def _flexbe(c: _Context) -> tuple[SimulatorServer, str]:
    from ident_dev.simulators.flexbe import FlexbeSimulator

    return FlexbeSimulator(api_key=c.secret, seed=c.seed, doctors=c.doctors, **c.common), ""


def _napopravku(c: _Context) -> tuple[SimulatorServer, str]:
    from ident_dev.simulators.napopravku import NapopravkuSimulator

    simulator = NapopravkuSimulator(
        token=c.secret, clinic_ids=c.branch_ids, seed=c.seed, doctors=c.doctors, **c.common
    )
    return simulator, "/api/v1"


def _ident_tickets(c: _Context) -> tuple[SimulatorServer, str]:
    from ident_dev.simulators.ident_tickets import IdentTicketsSimulator

    style = "32top" if c.also_aggregator else "site"
    simulator = IdentTicketsSimulator(
        key=c.secret, style=style, seed=c.seed, doctors=c.doctors, **c.common
    )
    return simulator, ""


def _prodoctorov(c: _Context) -> tuple[SimulatorServer, str]:
    from ident_dev.simulators.prodoctorov import ProdoctorovSimulator

    return ProdoctorovSimulator(token=c.secret), ""


def _ident_timetable(c: _Context) -> tuple[SimulatorServer, str]:
    from ident_dev.simulators.ident_timetable import IdentTimetableSimulator

    return IdentTimetableSimulator(key=c.secret), ""


def _yandex_direct(c: _Context) -> tuple[SimulatorServer, str]:
    from ident_dev.simulators.yandex_direct import YandexDirectSimulator

    return YandexDirectSimulator(token=c.secret, seed=c.seed), ""


def _yandex_metrica(c: _Context) -> tuple[SimulatorServer, str]:
    from ident_dev.simulators.yandex_metrica import YandexMetricaSimulator

    sink = c.instance
    simulator = YandexMetricaSimulator(
        token=c.secret, counter_id=sink.counter_id, goals=set(sink.goals.values())
    )
    return simulator, ""


# kind (registry.py) -> (context -> (server, path under its base URL))
Factory = Callable[[_Context], tuple[SimulatorServer, str]]
LEAD_SIMULATORS: dict[str, Factory] = {
    "uis": _uis,
    "flexbe": _flexbe,
    "napopravku": _napopravku,
    "ident_tickets": _ident_tickets,
}
AGGREGATOR_SIMULATORS: dict[str, Factory] = {
    "prodoctorov": _prodoctorov,
    "napopravku": _napopravku,
    "ident_timetable": _ident_timetable,
}
COST_SIMULATORS: dict[str, Factory] = {"yandex_direct": _yandex_direct}
# A uis_deals sink shares the UIS connection, which its lead simulator serves.
CONVERSION_SIMULATORS: dict[str, Factory] = {"yandex_metrica": _yandex_metrica}


def build_simulators(
    doctors: Iterable[tuple[str, str]],
    branch_ids: Iterable[str],
    *,
    config: Any = None,
    seed: int = 0,
    **common: Any,
) -> dict[str, SimulatedService]:
    """A simulator per connection of ``config`` (default: integrations.yaml), not started.

    A connection used by a lead source and an aggregator of different kinds (32top pulls
    our schedule and serves its tickets on one base URL) gets the lead simulator, with the
    schedule receiver's routes mounted on it. ``common`` goes to the lead-serving
    simulators (``clock``, ``first_serial`` ...).
    """
    from ident_hooks.config import load_config

    config = config or load_config()
    doctors, branch_ids = list(doctors), tuple(branch_ids)
    # Push sources call us (the intake service): nothing of theirs to simulate here.
    leads = {s.connection: s.kind for s in config.lead_sources if not s.spec.push}
    schedules = {aggregator.connection: aggregator.kind for aggregator in config.aggregators}
    costs = {source.connection: source.kind for source in config.cost_sources}
    conversions = {
        sink.connection: sink
        for sink in config.conversion_sinks
        if sink.kind in CONVERSION_SIMULATORS
    }
    conn_types = {
        instance.connection: instance.spec.connection.name
        for instance in [
            *config.aggregators,
            *config.lead_sources,
            *config.cost_sources,
            *config.conversion_sinks,
        ]
    }
    # An instance sends gzip only where its receiver inflates it: its simulator does.
    gzipped = {aggregator.connection for aggregator in config.aggregators if aggregator.gzip}
    services: dict[str, SimulatedService] = {}
    for number, conn_id in enumerate(dict.fromkeys([*leads, *schedules, *costs, *conversions])):
        context = _Context(
            secret=demo_secret(conn_id),
            doctors=doctors,
            branch_ids=branch_ids,
            seed=seed + number + 1,
            common=common,
            also_aggregator=conn_id in schedules,
            instance=conversions.get(conn_id),
        )
        lead_kind, schedule_kind = leads.get(conn_id), schedules.get(conn_id)
        if lead_kind is not None:
            server, path = LEAD_SIMULATORS[lead_kind](context)
        elif conn_id in costs:
            server, path = COST_SIMULATORS[costs[conn_id]](context)
        elif conn_id in conversions:
            server, path = CONVERSION_SIMULATORS[conversions[conn_id].kind](context)
        else:
            server, path = AGGREGATOR_SIMULATORS[schedule_kind](context)
        timetable = None
        if lead_kind is not None and schedule_kind is not None and schedule_kind != lead_kind:
            timetable, _ = AGGREGATOR_SIMULATORS[schedule_kind](context)
            server.serve_routes_of(timetable)
        server.accepts_gzip = conn_id in gzipped
        services[conn_id] = SimulatedService(
            conn_id, server, context.secret, path, timetable, conn_types[conn_id]
        )
    return services


class DemoLeadFeeder:
    """Makes new leads appear at the lead-source simulators now and then, for the demo.

    Each new lead is created "now" at one simulator chosen at random, so the admins' view
    and the reports fill up while the platform runs.
    """

    def __init__(
        self,
        services: dict[str, SimulatedService],
        *,
        mean_gap_seconds: float = 45.0,
        seed: int = 0,
    ) -> None:
        import random
        import threading

        from ident_dev.simulators.fake_leads import LeadServingSimulator

        self._lead_servers = [
            service.server
            for service in services.values()
            if isinstance(service.server, LeadServingSimulator)
        ]
        self._mean_gap = mean_gap_seconds
        self._rng = random.Random(seed)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-leads", daemon=True)

    def start(self) -> DemoLeadFeeder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stopped.wait(self._rng.expovariate(1 / self._mean_gap)):
            self._rng.choice(self._lead_servers).add_lead()
