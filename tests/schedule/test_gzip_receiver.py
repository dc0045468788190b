"""Gzipped schedules against a real HTTP framework's body parser, not only our simulators.

The receiver is Express with its ``body-parser`` (``express.json({inflate: true, limit})``),
installed from the npm registry into ``.local/npm/`` on first use. body-parser documents
both behaviours checked here: a body with ``Content-Encoding: gzip`` is inflated before it
is parsed, and ``limit`` counts the inflated body, answering 413 over it — so gzip lowers
the bytes on the wire but not a receiver's size limit.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from ident_hooks.http_client import ServiceRejected
from ident_hooks.schedule.aggregators import RequestTooLarge, publisher
from ident_hooks.schedule.publish import publish_schedule

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("express@5.1.0", "body-parser@2.2.0")
NOW = datetime(2026, 12, 2, 5, 50, tzinfo=UTC)
AGGREGATOR = "sberzdorovie"  # an IDENT PostTimeTable instance
SERVER_JS = """
const express = require('express');
const app = express();
let last = null, received = 0;
app.post('/PostTimeTable',
  express.json({limit: process.env.LIMIT, inflate: true}),
  (req, res) => { last = req.body; received += 1; res.status(200).send('ok'); });
app.get('/last', (req, res) => res.json({received, body: last}));
app.use((err, req, res, next) => res.status(err.status || 500).send(`${err.type}: ${err.message}`));
const server = app.listen(0, '127.0.0.1', () => console.log(`PORT ${server.address().port}`));
"""


def _installed() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip(
            "node and npm are needed for the Express receiver (scripts/test.sh installs them)"
        )
    where = ROOT / ".local" / "npm" / "express-receiver"
    if not (where / "node_modules" / "express").is_dir():
        where.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(where), *PACKAGES],
            check=True,
            capture_output=True,
            timeout=300,
        )
    (where / "server.js").write_text(SERVER_JS, encoding="utf-8")
    return where


@pytest.fixture(scope="module")
def express_app() -> Path:
    return _installed()


def _start(where: Path, limit: str) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        ["node", str(where / "server.js")],
        cwd=where,
        env={**os.environ, "LIMIT": limit},
        stdout=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()  # blocks until it listens (or exits)
    match = re.match(r"PORT (\d+)", line)
    if match is None:
        process.kill()
        pytest.fail(f"the Express receiver did not start: {line!r}")
    return process, f"http://127.0.0.1:{match.group(1)}"


@pytest.fixture
def express(express_app) -> Iterator:
    started = []

    def start(limit: str) -> str:
        process, url = _start(express_app, limit)
        started.append(process)
        return url

    yield start
    for process in started:
        process.kill()
        process.wait()


@pytest.fixture
def clinic(unpublished_demo):
    return unpublished_demo


def _publish(conn, url: str, service_connection):
    conn_id = service_connection(f"{AGGREGATOR}_express", url, "express-key")
    client = publisher(AGGREGATOR).client(conn_id, backoff_seconds=0, sleep=lambda _s: None)
    return publish_schedule(AGGREGATOR, conn=conn, client=client, now=NOW)


def _received(url: str) -> dict:
    return requests.get(f"{url}/last", timeout=5).json()


def test_express_inflates_and_parses_the_gzipped_timetable(
    clinic, express, aggregator_options, service_connection
):
    aggregator_options(gzip=True)
    url = express("50mb")
    summary = _publish(clinic, url, service_connection)
    received = _received(url)
    assert received["received"] == 1
    body = received["body"]
    assert set(body) == {"Doctors", "Branches", "Intervals"}
    assert len(body["Doctors"]) == summary.doctors
    assert len(body["Intervals"]) == summary.free_slots + summary.busy_cells
    # What went on the wire is a fraction of the JSON Express parsed.
    assert summary.bytes_sent * 5 < len(json.dumps(body, ensure_ascii=False).encode())


def test_express_refuses_an_inflated_body_over_its_limit_and_the_run_says_so(
    clinic, express, aggregator_options, service_connection
):
    aggregator_options(gzip=True)
    url = express("20kb")  # far above the gzipped body, below the JSON in it
    with pytest.raises(ServiceRejected) as refused:
        _publish(clinic, url, service_connection)
    message = str(refused.value)
    assert re.search(
        r"refused a body of \d+ bytes \(\d+ gzipped\) as too large \(HTTP 413", message
    )
    assert "entity.too.large" in message
    assert "set max_request_bytes of sberzdorovie in integrations.yaml" in message
    assert _received(url)["received"] == 0
    (error,) = clinic.execute(
        "select error from integration.publish_log where aggregator = %s and status = 'failed'",
        (AGGREGATOR,),
    ).fetchone()
    clinic.commit()
    assert error == message


def test_a_body_over_the_configured_limit_is_refused_before_sending(
    clinic, express, aggregator_options, service_connection
):
    aggregator_options(gzip=True, max_request_bytes=20_000)
    url = express("20kb")
    with pytest.raises(RequestTooLarge, match="more than the receiver's limit of 20000 bytes"):
        _publish(clinic, url, service_connection)
    assert _received(url)["received"] == 0
