"""Which simulator stands in for which Airflow connection — one place for tests and the demo.

``start_simulators`` starts one loopback server per external service and returns, for
each connection id of ``include/integrations.yaml``, the server and the Airflow
connection (JSON) that points at it with the simulator's credentials.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ident_hooks.simulators.base import SimulatorServer

# Credentials the simulators accept; they protect nothing real.
DEMO_SECRETS = {
    "prodoctorov": "prodoctorov-demo-token",
    "sberzdorovie": "sberzdorovie-demo-key",
    "uis": "uis-demo-token",
    "flexbe": "flexbe-demo-key",
    "napopravku": "napopravku-demo-token",
    "32top": "32top-demo-key",
    "site": "site-demo-key",
}


@dataclass
class SimulatedService:
    """One connection's simulator. ``timetable`` is the schedule receiver of a partner that
    speaks both IDENT directions on one base URL (32top: GetTickets and PostTimeTable)."""

    conn_id: str
    server: SimulatorServer
    secret: str
    path: str = ""
    timetable: SimulatorServer | None = None

    @property
    def airflow_connection(self) -> str:
        return json.dumps(
            {"conn_type": "http", "host": self.server.base_url + self.path, "password": self.secret}
        )

    @property
    def env_var(self) -> str:
        return f"AIRFLOW_CONN_{self.conn_id.upper()}"


def build_simulators(
    doctors: Iterable[tuple[str, str]],
    branch_ids: Iterable[str],
    site_names: Iterable[str] = ("main",),
    *,
    seed: int = 0,
    **common: Any,
) -> dict[str, SimulatedService]:
    """Every external service's simulator keyed by connection id (not started).

    ``common`` goes to the lead-serving simulators (``clock``, ``first_serial`` ...).
    """
    from ident_hooks.simulators.flexbe import FlexbeSimulator
    from ident_hooks.simulators.ident_tickets import IdentTicketsSimulator
    from ident_hooks.simulators.ident_timetable import IdentTimetableSimulator
    from ident_hooks.simulators.napopravku import NapopravkuSimulator
    from ident_hooks.simulators.prodoctorov import ProdoctorovSimulator
    from ident_hooks.simulators.uis import UisSimulator

    doctors = list(doctors)
    kwargs = {"doctors": doctors, **common}
    services = [
        SimulatedService(
            "uis",
            UisSimulator(access_token=DEMO_SECRETS["uis"], seed=seed + 1, **kwargs),
            DEMO_SECRETS["uis"],
        ),
        SimulatedService(
            "flexbe",
            FlexbeSimulator(api_key=DEMO_SECRETS["flexbe"], seed=seed + 2, **kwargs),
            DEMO_SECRETS["flexbe"],
        ),
        SimulatedService(
            "napopravku",
            NapopravkuSimulator(
                token=DEMO_SECRETS["napopravku"],
                clinic_ids=tuple(branch_ids),
                seed=seed + 3,
                **kwargs,
            ),
            DEMO_SECRETS["napopravku"],
            path="/api/v1",
        ),
        SimulatedService(
            "prodoctorov",
            ProdoctorovSimulator(token=DEMO_SECRETS["prodoctorov"]),
            DEMO_SECRETS["prodoctorov"],
        ),
        SimulatedService(
            "sberzdorovie",
            IdentTimetableSimulator(key=DEMO_SECRETS["sberzdorovie"]),
            DEMO_SECRETS["sberzdorovie"],
        ),
    ]
    # 32top pulls leads from us and takes our schedule on the same base URL and key.
    tickets = IdentTicketsSimulator(
        key=DEMO_SECRETS["32top"], style="32top", seed=seed + 4, **kwargs
    )
    timetable = IdentTimetableSimulator(key=DEMO_SECRETS["32top"])
    tickets.route("POST", "/PostTimeTable", timetable.dispatch)
    services.append(SimulatedService("32top", tickets, DEMO_SECRETS["32top"], timetable=timetable))
    for offset, name in enumerate(site_names):
        services.append(
            SimulatedService(
                f"site_{name}",
                IdentTicketsSimulator(
                    key=DEMO_SECRETS["site"], style="site", seed=seed + 10 + offset, **kwargs
                ),
                DEMO_SECRETS["site"],
            )
        )
    return {service.conn_id: service for service in services}


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

        from ident_hooks.simulators.fake_leads import LeadServingSimulator

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
