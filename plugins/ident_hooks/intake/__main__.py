"""``python -m ident_hooks.intake --port N``: the intake service under uvicorn.

Push sources come from include/integrations.yaml (``$IDENT_INTEGRATIONS_CONFIG``), secrets
from Airflow connections, the clinic database from the connection ``ident_db``
(``ident_hooks.db.connect``). uvicorn's access log stays off: Tilda's URL holds its secret.
"""

from __future__ import annotations

import argparse
import logging
import os

import uvicorn

from ident_hooks.config import load_config
from ident_hooks.db import CLINIC_CONN_ID, connect
from ident_hooks.intake.app import create_app
from ident_hooks.intake.settings import from_airflow


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Receive pushed leads (Tilda, site webhooks).")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--conn-id", default=CLINIC_CONN_ID, help="the clinic database")
    parser.add_argument("--max-body-kb", type=int, default=64, help="body size limit")
    parser.add_argument("--rate", type=float, default=5.0, help="requests/s per source")
    parser.add_argument("--burst", type=int, default=60, help="requests at once per source")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    # A server process beside Airflow, like its scheduler: connections are looked up in the
    # AIRFLOW_CONN_* variables, then in Airflow's metadata database, where Admin ->
    # Connections keeps them. Without this, a process outside Airflow's own components
    # reads only variables and external backends (airflow/sdk/execution_time/supervisor.py,
    # ensure_secrets_backend_loaded).
    os.environ.setdefault("_AIRFLOW_PROCESS_CONTEXT", "server")
    settings = from_airflow(
        load_config(),
        lambda: connect(args.conn_id),
        max_body_bytes=args.max_body_kb * 1024,
        rate_per_second=args.rate,
        burst=args.burst,
    )
    if not settings.sources:
        logging.warning("no push source with a secret is configured (include/integrations.yaml)")
    uvicorn.run(create_app(settings), host=args.host, port=args.port, access_log=False)


if __name__ == "__main__":
    main()
