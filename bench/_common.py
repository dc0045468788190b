"""Shared set-up for the benchmark scripts: a clinic database to measure against.

A benchmark stops what it starts when it ends, also on Ctrl-C (SIGINT), SIGTERM and SIGHUP:
importing this module turns SIGTERM and SIGHUP into ``SystemExit``, so that ``finally``
blocks and exit handlers run as they do for Ctrl-C. The embedded PostgreSQL is one of
those: see :func:`embedded_server`.
"""

from __future__ import annotations

import atexit
import functools
import os
import pwd
import resource
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))
# ... and for the child processes a benchmark starts.
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [str(ROOT / "plugins"), os.environ.get("PYTHONPATH")])
)

from ident_dev import embedded_pg  # noqa: E402

BENCH_PGDATA = Path(os.environ.get("IDENT_BENCH_PGDATA") or ROOT / ".local" / "bench-pgdata")
# The pid of the server a benchmark started: a benchmark that finds that server running
# shares it, and the last one using it stops it.
STARTED_BY_BENCHMARK = BENCH_PGDATA / "started-by-benchmark.pid"


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


for _signal in (signal.SIGTERM, signal.SIGHUP):
    if signal.getsignal(_signal) == signal.SIG_DFL:  # not one nohup told us to ignore
        signal.signal(_signal, _exit_on_signal)


def bench_database() -> tuple[str, callable]:
    """A fresh migrated database and a function that drops it.

    On ``IDENT_BENCH_DB_URL`` (a server URL) if given, else on the embedded server in
    ``.local/bench-pgdata`` (``IDENT_BENCH_PGDATA``).
    """
    from ident_hooks.db import apply_migrations

    url, drop = empty_database("ident_bench")
    os.environ["AIRFLOW_CONN_IDENT_DB"] = embedded_pg.airflow_connection(url)

    import psycopg

    with psycopg.connect(url) as conn:
        apply_migrations(conn)
    return url, drop


def empty_database(prefix: str) -> tuple[str, callable]:
    """A new empty database ``<prefix>_<random>`` and a function that drops it, on the
    server of :func:`bench_database` (``IDENT_BENCH_DB_URL``, else the embedded one).
    It is dropped at exit too, should the benchmark be interrupted before it drops it."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    server_url = os.environ.get("IDENT_BENCH_DB_URL")
    if server_url is None:
        embedded_server()
        server_url = embedded_pg.socket_url(BENCH_PGDATA, "postgres")
    embedded_pg.ensure_database(server_url, name)
    url = urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))

    def drop() -> None:
        embedded_pg.drop_database(server_url, name)

    atexit.register(drop)  # runs before the embedded server's own exit handler stops it
    return url, drop


@functools.cache
def embedded_server():
    """The embedded server of ``BENCH_PGDATA``, started unless it is running.

    A server a benchmark started is stopped when the last benchmark process using it exits
    (pgserver counts them); a server found running that no benchmark started (by hand, by
    an older version of these scripts) is left running.
    """
    import psutil
    from pgserver.utils import DiskList

    running_pid = _server_pid(BENCH_PGDATA)
    users = DiskList(BENCH_PGDATA / ".handle_pids.json")
    if users.path.exists():
        # pgserver stops the server when the last process of this list exits; a process
        # killed before its exit handlers ran would stay in it and keep the server up.
        users.put([pid for pid in users.get() if psutil.pid_exists(pid)])
    ours = running_pid is None or _started_by_benchmark() == running_pid
    server = embedded_pg.start(BENCH_PGDATA, stop_on_exit=ours)
    if running_pid is None:
        STARTED_BY_BENCHMARK.write_text(str(server.get_pid()))
    return server


def _server_pid(pgdata: Path) -> int | None:
    """The pid of the server running on ``pgdata``: the first line of its postmaster.pid,
    which a starting server writes before the rest."""
    import psutil

    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (FileNotFoundError, ValueError):
        return None
    return pid if psutil.pid_exists(pid) else None


def _started_by_benchmark() -> int | None:
    try:
        return int(STARTED_BY_BENCHMARK.read_text())
    except (FileNotFoundError, ValueError):
        return None


def restart_embedded_server() -> None:
    """``pg_ctl restart`` with a fast shutdown (connections drop), as an outage would."""
    from pgserver._commands import POSTGRES_BIN_PATH

    server = embedded_server()
    log = str(BENCH_PGDATA / "log")
    command = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(BENCH_PGDATA), "-l", log]
    command += ["-m", "fast", "-w", "restart"]
    if os.geteuid() == 0:  # pg_ctl refuses root; pgserver runs the server as its own user
        owner = pwd.getpwuid(BENCH_PGDATA.stat().st_uid).pw_name
        command = ["runuser", "-u", owner, "--", *command]
    # No pipes: the restarted server would hold them open, and this call would never return.
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started_by_benchmark = _started_by_benchmark() == server.get_pid()
    server.ensure_postgres_running()  # the handle follows the new server, to stop it at exit
    if started_by_benchmark:
        STARTED_BY_BENCHMARK.write_text(str(server.get_pid()))


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
