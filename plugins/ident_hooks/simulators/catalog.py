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
    "uis": "uis-demo-token",
    "flexbe": "flexbe-demo-key",
    "napopravku": "napopravku-demo-token",
    "32top": "32top-demo-key",
    "site": "site-demo-key",
}


@dataclass
class SimulatedService:
    conn_id: str
    server: SimulatorServer
    secret: str
    path: str = ""

    @property
    def airflow_connection(self) -> str:
        return json.dumps(
            {"conn_type": "http", "host": self.server.base_url + self.path, "password": self.secret}
        )

    @property
    def env_var(self) -> str:
        return f"AIRFLOW_CONN_{self.conn_id.upper()}"


def build_lead_simulators(
    doctors: Iterable[tuple[str, str]],
    branch_ids: Iterable[str],
    site_names: Iterable[str] = ("main",),
    *,
    seed: int = 0,
    **common: Any,
) -> dict[str, SimulatedService]:
    """Lead-source simulators keyed by connection id (not started)."""
    from ident_hooks.simulators.flexbe import FlexbeSimulator
    from ident_hooks.simulators.ident_tickets import IdentTicketsSimulator
    from ident_hooks.simulators.napopravku import NapopravkuSimulator
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
            "32top",
            IdentTicketsSimulator(
                key=DEMO_SECRETS["32top"], style="32top", seed=seed + 4, **kwargs
            ),
            DEMO_SECRETS["32top"],
        ),
    ]
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
