"""Web fixtures: a real Airflow api-server with this project's plugins, and inbox data.

``airflow_web`` starts ``airflow api-server`` once per session on a free loopback port,
against the session's metadata and clinic databases, with SimpleAuthManager users
``admin`` and ``anna`` whose passwords come from a file (as in production). Any plugin
page can be tested through it: ``token(user)`` for API calls, ``cookie_session(user)``
for requests that carry the UI's login cookie the way a browser does.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
import yaml

from ident_dev.airflow_stack import free_port, wait_for
from ident_hooks.leads.normalise import Lead, normalise_phone
from ident_hooks.leads.store import store_leads
from ident_hooks.reports import channels

USERS = {"admin": "admin-pass-1", "anna": "anna-pass-2"}
# The clinic's numbers the api-server knows (the marketing channel rules' numbers map): a
# call to one of them shows where it stands.
CLINIC_NUMBERS = [
    {
        "number": "+7 495 120-00-01",
        "channel": "aggregator",
        "label": "ПроДокторов: профиль клиники",
    },
    {"number": "8 (495) 120-00-02", "channel": "direct", "label": "Вывеска на фасаде"},
]
INBOX_REFRESH_SECONDS = 3  # shorter than the default 10 s to keep the browser test quick
STARTUP_TIMEOUT_SECONDS = 180


@dataclass
class AirflowWebServer:
    base_url: str
    log_path: Path
    passwords: dict[str, str]
    _tokens: dict[str, str] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return self.base_url + path

    def token(self, user: str = "admin") -> str:
        """A JWT for ``user``, as ``POST /auth/token`` issues it to the UI's login form."""
        if user not in self._tokens:
            response = requests.post(
                self.url("/auth/token"),
                json={"username": user, "password": self.passwords[user]},
                timeout=30,
            )
            response.raise_for_status()
            self._tokens[user] = response.json()["access_token"]
        return self._tokens[user]

    def bearer_session(self, user: str = "admin") -> requests.Session:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.token(user)}"
        return session

    def cookie_session(self, user: str = "admin") -> requests.Session:
        """Requests carrying the ``_token`` cookie the UI's login sets, and nothing else."""
        session = requests.Session()
        session.cookies.set("_token", self.token(user), domain="127.0.0.1", path="/")
        return session

    def page_headers(self, csrf_token: str) -> dict[str, str]:
        """The headers a page of this server sends with its own JSON actions."""
        return {
            "Origin": self.base_url,
            "Sec-Fetch-Site": "same-origin",
            "X-CSRF-Token": csrf_token,
        }

    @staticmethod
    def csrf_token_in(page_html: str) -> str:
        """The anti-forgery token a page carries in ``data-csrf-token``."""
        match = re.search(r'data-csrf-token="([^"]*)"', page_html)
        assert match, "the page carries no data-csrf-token"
        return match[1]

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def _wait_until_healthy(server: AirflowWebServer, process: subprocess.Popen) -> None:
    def running() -> None:
        if process.poll() is not None:
            pytest.fail(f"airflow api-server exited ({process.returncode}):\n{server.log_tail()}")

    wait_for(
        "airflow api-server to answer",
        lambda: requests.get(server.url("/api/v2/monitor/health"), timeout=2).ok,
        deadline=time.monotonic() + STARTUP_TIMEOUT_SECONDS,
        poll=0.5,
        check=running,
        fail=lambda message: pytest.fail(f"{message}:\n{server.log_tail()}"),
    )


@pytest.fixture(scope="session")
def airflow_web(airflow_db, clinic_db_url, tmp_path_factory) -> Iterator[AirflowWebServer]:
    """A running Airflow api-server serving the plugins in plugins/, for the session."""
    folder = tmp_path_factory.mktemp("api_server")
    passwords_file = folder / "passwords.json"
    passwords_file.write_text(json.dumps(USERS), encoding="utf-8")
    channel_rules = yaml.safe_load(channels.RULES_PATH.read_text(encoding="utf-8"))
    channel_rules["numbers"] = CLINIC_NUMBERS
    channel_rules_file = folder / "marketing_channels.yaml"
    channel_rules_file.write_text(yaml.safe_dump(channel_rules, allow_unicode=True), "utf-8")
    port = free_port()
    env = os.environ.copy()
    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:admin" for u in USERS),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(24),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
            "AIRFLOW__IDENT_INBOX__REFRESH_SECONDS": str(INBOX_REFRESH_SECONDS),
            channels.RULES_PATH_VARIABLE: str(channel_rules_file),
        }
    )
    server = AirflowWebServer(f"http://127.0.0.1:{port}", folder / "api-server.log", USERS)
    with server.log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "airflow",
                "api-server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_healthy(server, process)
        yield server
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# -- inbox data -----------------------------------------------------------------------------
BRANCHES = [
    ("msk", "Москва, Тверская", "Europe/Moscow"),
    ("ekb", "Екатеринбург, Ленина", "Asia/Yekaterinburg"),
]
DOCTORS = [
    ("doc-1", "Петров Геннадий Андреевич", "стоматолог-хирург"),
    ("doc-2", "Иванова Мария Сергеевна", "ортодонт"),
]


@pytest.fixture
def inbox_conn(clinic_conn: psycopg.Connection) -> psycopg.Connection:
    """The clinic database with two branches, two doctors and no leads."""
    clinic_conn.execute("truncate integration.leads cascade")
    with clinic_conn.cursor() as cursor:
        cursor.executemany(
            "insert into clinic.branches (branch_id, name, timezone) values (%s, %s, %s)",
            BRANCHES,
        )
        cursor.executemany(
            "insert into clinic.doctors (doctor_id, full_name, specialty) values (%s, %s, %s)",
            DOCTORS,
        )
    clinic_conn.commit()
    return clinic_conn


@pytest.fixture
def add_lead(inbox_conn: psycopg.Connection):
    """``add_lead(minutes_ago=1, phone=..., **columns) -> lead_id``: store one lead (committed).

    ``minutes_ago`` sets its creation time at the source; ``phone`` is the phone as received:
    by default each lead has its own (``+7 916 123-45-67``, then ``…-68``, …), since the
    inbox shows the leads of one phone as one conversation.
    """
    added = itertools.count()

    def add(*, minutes_ago: float = 1, phone: str | None = None, **columns: Any) -> int:
        if phone is None:
            line = 4567 + next(added)
            phone = f"+7 916 123-{line // 100:02d}-{line % 100:02d}"
        row = {
            "source": "napopravku",
            "external_id": uuid.uuid4().hex,
            "created_at": datetime.now(UTC) - timedelta(minutes=minutes_ago),
            "name": "Смирнова Ольга",
            "phone_raw": phone,
            "phone_e164": normalise_phone(phone),
            "branch_id": "msk",
            "raw": json.dumps({"id": "from-test"}),
            **columns,
        }
        names = ", ".join(row)
        values = ", ".join(f"%({name})s" for name in row)
        lead_id = inbox_conn.execute(
            f"insert into integration.leads ({names}) values ({values}) returning lead_id", row
        ).fetchone()[0]
        inbox_conn.commit()
        return lead_id

    return add


@pytest.fixture
def commit_lead(inbox_conn: psycopg.Connection):
    """``commit_lead(name, phone, **fields) -> (lead_id, committed_at)``: one lead stored the
    way every intake path stores them (``store_leads``, then commit); ``committed_at`` is
    ``time.time()`` just before the commit (what is measured from it includes the commit)."""

    def commit(name: str, phone: str, **fields: Any) -> tuple[int, float]:
        lead = Lead(
            source=fields.pop("source", "flexbe"),
            external_id=uuid.uuid4().hex,
            created_at=datetime.now(UTC),
            name=name,
            phone_raw=phone,
            phone_e164=normalise_phone(phone),
            branch_id=fields.pop("branch_id", "msk"),
            raw={"id": "from-test"},
            **fields,
        )
        assert store_leads(inbox_conn, [lead]).inserted == 1
        (lead_id,) = inbox_conn.execute(
            "select lead_id from integration.leads where source = %s and external_id = %s",
            (lead.source, lead.external_id),
        ).fetchone()
        committing_at = time.time()
        inbox_conn.commit()
        return lead_id, committing_at

    return commit
