"""The intake app under a real uvicorn on a free loopback port, in a thread: for the intake
tests and the inbox's webhook-to-screen test."""

from __future__ import annotations

import threading
import time

import pytest
import uvicorn

from ident_dev.airflow_stack import free_port, wait_for
from ident_hooks.intake.app import IntakeSettings, create_app

STARTUP_SECONDS = 30


class RunningIntake:
    def __init__(self, settings: IntakeSettings) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> RunningIntake:
        self.thread.start()

        def running() -> None:
            if not self.thread.is_alive():
                pytest.fail("the intake app stopped before it started")

        wait_for(
            "the intake app to start",
            lambda: self.server.started,
            deadline=time.monotonic() + STARTUP_SECONDS,
            poll=0.02,
            check=running,
        )
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
