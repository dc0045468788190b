"""The benchmarks stop what they start — their embedded PostgreSQL and child processes —
when interrupted (Ctrl-C, SIGTERM) too, and leave alone a server they found running.

``bench/intake_load.py`` (an embedded server, a forked uvicorn, sender threads) runs as a
user runs it, with its server's data in a folder of this test (``IDENT_BENCH_PGDATA``);
``bench/call_to_screen.py`` runs the same way and prints its figures.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import psycopg
import pytest

from ident_dev import embedded_pg

ROOT = Path(__file__).resolve().parents[1]
BENCH = [sys.executable, str(ROOT / "bench" / "intake_load.py"), "--senders", "1"]


def _bench_env(pgdata: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "IDENT_"))}
    return {**env, "IDENT_BENCH_PGDATA": str(pgdata)}


def _postmaster(pgdata: Path) -> psutil.Process | None:
    """The server running on ``pgdata`` (the first line of postmaster.pid is its pid)."""
    try:
        return psutil.Process(int((pgdata / "postmaster.pid").read_text().split("\n")[0]))
    except (FileNotFoundError, ValueError, psutil.NoSuchProcess):
        return None


def _wait_for(what: str, condition, bench: subprocess.Popen, seconds: float = 20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if bench.poll() is not None:
            pytest.fail(f"the benchmark exited ({bench.returncode}) before {what}")
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def _leads_sent(pgdata: Path) -> bool:
    """The senders are at work: a lead is stored in the benchmark's database."""
    server_url = embedded_pg.socket_url(pgdata, "postgres")
    try:
        with psycopg.connect(server_url, autocommit=True) as conn:
            names = [r[0] for r in conn.execute("select datname from pg_database")]
    except psycopg.OperationalError:  # still starting
        return False
    for name in (n for n in names if n.startswith("ident_bench_")):
        try:
            conn = psycopg.connect(embedded_pg.socket_url(pgdata, name))
        except psycopg.OperationalError:
            # An earlier interrupted run's database, dropped halfway (PostgreSQL marks it
            # invalid and refuses connections): not this run's.
            continue
        with conn:
            if conn.execute("select to_regclass('integration.leads')").fetchone()[0] is None:
                continue  # not migrated yet
            if conn.execute("select exists (select from integration.leads)").fetchone()[0]:
                return True
    return False


def _interrupt(pgdata: Path, stop: signal.Signals) -> list[psutil.Process]:
    """Run the benchmark until its senders are at work, send it ``stop``, wait for it to
    exit; the processes it had started that are still running after that."""
    bench = subprocess.Popen(
        [*BENCH, "--seconds", "60"],
        cwd=ROOT,
        env=_bench_env(pgdata),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        postmaster = _wait_for("its server to start", lambda: _postmaster(pgdata), bench)
        _wait_for("its senders to store leads", lambda: _leads_sent(pgdata), bench)
        children = psutil.Process(bench.pid).children(recursive=True)
        assert children  # the forked intake service
        bench.send_signal(stop)
        # Generous: on a busy machine the senders' last requests, the intake's shutdown,
        # dropping the database and stopping the server take a while.
        bench.wait(timeout=90)
    finally:
        if bench.poll() is None:  # the test failed: leave nothing of it running
            for process in [*psutil.Process(bench.pid).children(recursive=True), bench]:
                process.kill()
            bench.wait()
    _, alive = psutil.wait_procs([postmaster, *children], timeout=30)
    return alive


@pytest.fixture
def pgdata(tmp_path):
    """The benchmark's data folder; a server a failing run left is stopped (fast shutdown)."""
    folder = tmp_path / "bench-pgdata"
    yield folder
    left = _postmaster(folder)
    if left is not None:
        left.send_signal(signal.SIGINT)
        left.wait(10)


@pytest.mark.slow
def test_a_benchmark_stops_the_server_it_started_and_only_that(pgdata):
    found_running = embedded_pg.start(pgdata, stop_on_exit=True)
    try:
        finished = subprocess.run(
            [*BENCH, "--seconds", "0.5"],
            cwd=ROOT,
            env=_bench_env(pgdata),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert finished.returncode == 0, finished.stderr[-3000:]
        assert "duplicates 0" in finished.stdout
        assert _postmaster(pgdata).pid == found_running.get_pid()
    finally:
        found_running.cleanup()
    assert _postmaster(pgdata) is None

    assert _interrupt(pgdata, signal.SIGINT) == []  # Ctrl-C
    assert _interrupt(pgdata, signal.SIGTERM) == []


def test_the_call_to_screen_benchmark_prints_its_figures(pgdata):
    """bench/call_to_screen.py runs as a user runs it (a few calls) and prints its line."""
    if shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (scripts/test.sh installs it as root)")
    finished = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "call_to_screen.py"), "--calls", "3", "--gap", "0"],
        cwd=ROOT,
        env=_bench_env(pgdata),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    figures = re.search(
        r"^call -> screen, 3 calls: p50 (\d+) ms, p95 (\d+) ms, max (\d+) ms$",
        finished.stdout,
        re.M,
    )
    assert figures, finished.stdout
    p50, p95, most = map(int, figures.groups())
    assert 0 < p50 <= p95 <= most
    assert _postmaster(pgdata) is None  # it stopped the server it started
