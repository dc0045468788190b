"""The run command's connections, seen and changed the way a person does: in Admin ->
Connections of the Airflow UI, in a real browser (Debian's Chromium through Playwright).

After ``python -m ident_dev.devstack`` (what ``scripts/run.sh`` runs) is up, every
configured service is listed with its own connection type and its form is labelled for
that service. A person then switches ПроДокторов to the real service in that form; the
next start keeps it (and starts no simulator for it) while it rewrites the simulators'
connections, whose ports changed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import requests
from playwright.sync_api import expect, sync_playwright
from test_run_command import _waiter, left_behind
from web.test_inbox_browser import CHROMIUM_ARGS, _chromium

from ident_hooks.config import load_config
from ident_hooks.health.settings import DEFAULT_ALERTS_PATH, load_alerts_config
from ident_hooks.registry import INTAKE_TICKETS_CONNECTION

ROOT = Path(__file__).resolve().parents[1]
REAL_HOST = "https://api.prodoctorov.ru"


def _expected_connections() -> dict[str, str]:
    """Every connection the shipped configuration uses, with its type."""
    config = load_config()
    alerts = load_alerts_config(DEFAULT_ALERTS_PATH)
    expected = {
        instance.connection: instance.spec.connection.name
        for instance in [
            *config.aggregators,
            *config.lead_sources,
            *config.cost_sources,
            *config.conversion_sinks,
        ]
    }
    expected.update(
        {
            "ident_db": "postgres",
            "intake_tickets": INTAKE_TICKETS_CONNECTION.name,
            alerts.telegram_connection: "telegram",
            alerts.email_connection: "smtp",
        }
    )
    return expected


class RunCommand:
    """``python -m ident_dev.devstack`` on free ports with its own data folder."""

    def __init__(self, local: Path, output: Path) -> None:
        from ident_dev.airflow_stack import free_port

        self.port, self.intake_port = free_port(), free_port()
        self.local, self.output = local, output
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AIRFLOW", "IDENT_"))
        }
        env.update(IDENT_LOCAL_DIR=str(local), IDENT_DEMO_LEAD_GAP_SECONDS="60")
        with output.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ident_dev.devstack", "--port", str(self.port)]
                + ["--intake-port", str(self.intake_port)],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait = _waiter(self.process, output, local)
        self.base = f"http://127.0.0.1:{self.port}"

    def up(self) -> RunCommand:
        self.wait("the UI", lambda: b"Airflow UI:" in self.output.read_bytes(), 300)
        password = json.loads((self.local / "admin-password.json").read_text())["admin"]
        self.token = requests.post(
            f"{self.base}/auth/token", json={"username": "admin", "password": password}, timeout=10
        ).json()["access_token"]
        return self

    def connections(self) -> dict[str, dict]:
        listed = requests.get(
            f"{self.base}/api/v2/connections",
            params={"limit": 100},
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
        )
        assert listed.ok, listed.text
        return {c["connection_id"]: c for c in listed.json()["connections"]}

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.mark.slow
def test_admin_connections_lists_every_service_with_its_form(tmp_path):
    chromium = _chromium()
    local = tmp_path / "local"
    expected = _expected_connections()
    run = RunCommand(local, tmp_path / "first.out")
    try:
        run.up()
        first = run.connections()
        assert {conn_id: first[conn_id]["conn_type"] for conn_id in expected} == expected
        assert first["prodoctorov"]["host"].startswith("http://127.0.0.1:")

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            context = browser.new_context(
                base_url=run.base, viewport={"width": 1440, "height": 900}
            )
            context.add_cookies([{"name": "_token", "value": run.token, "url": run.base}])
            page = context.new_page()
            page.set_default_timeout(30_000)
            try:
                page.goto("/connections")
                listed = page.get_by_test_id("table-cell-connection_id")
                for conn_id in expected:
                    expect(listed.get_by_text(conn_id, exact=True)).to_be_visible(timeout=60_000)
                row = page.get_by_role("row").filter(
                    has=listed.get_by_text("prodoctorov", exact=True)
                )
                row.get_by_role("button", name="Edit Connection").click()
                dialog = page.get_by_role("dialog")
                host = dialog.get_by_label("Base URL")
                expect(host).to_have_attribute("placeholder", REAL_HOST, timeout=30_000)
                token = dialog.get_by_label("API token")
                expect(token).to_be_visible()
                for unused in ("Login", "Port", "Schema"):
                    expect(dialog.get_by_label(unused, exact=True)).to_have_count(0)
                # A person switches ПроДокторов to the real service.
                host.fill(REAL_HOST)
                token.fill("the-real-token")
                dialog.get_by_role("button", name="Extra Fields", exact=True).click()
                expect(dialog.get_by_label("Timeout, seconds")).to_be_visible()
                dialog.get_by_role("button", name="Save").click()
                expect(dialog).to_be_hidden(timeout=30_000)
            except BaseException:
                page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
                raise
            finally:
                browser.close()
        assert run.connections()["prodoctorov"]["host"] == REAL_HOST
        # Stored the way Airflow stores what a person enters: encrypted with its Fernet key.
        metadata = f"postgresql://postgres@/airflow?host={local / 'pgdata'}"
        with psycopg.connect(metadata) as conn:
            plain = conn.execute(
                "select conn_id from connection where password is not null and not is_encrypted"
            ).fetchall()
        assert plain == []
    finally:
        run.stop()
    assert run.process.returncode == 0, run.output.read_text()[-2000:]
    assert left_behind(local) == []

    # The next start: on top of what exists, nothing fails; the simulators moved.
    again = RunCommand(local, tmp_path / "second.out")
    try:
        again.up()
        second = again.connections()
        assert {conn_id: second[conn_id]["conn_type"] for conn_id in expected} == expected
        assert second["prodoctorov"]["host"] == REAL_HOST
        printed = again.output.read_text()
        assert "simulator prodoctorov" not in printed
        (flexbe,) = re.findall(r"^simulator flexbe +(\S+)$", printed, re.MULTILINE)
        assert second["flexbe"]["host"] == flexbe
    finally:
        again.stop()
    assert again.process.returncode == 0, again.output.read_text()[-2000:]
    assert left_behind(local) == []
