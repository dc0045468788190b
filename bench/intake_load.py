"""The intake service under load: concurrent senders over loopback for N seconds.

    python bench/intake_load.py --seconds 25 --senders 16

The app (``ident_hooks.intake``, uvicorn, one worker process) runs over a fresh migrated
clinic database; each sender posts new leads — Tilda forms and JSON webhooks in turn, each
with its own id — and resends one in ten as Tilda does after a timeout. A request that
fails (network error, 429, 503) is retried with the same id until it is answered 2xx, so
every lead a sender was told we took must be in the table exactly once. The rate limit is
raised out of the way: this measures the service, not the limit. Last line:
``intake: <N> req/s, p99 <L> ms, accepted <A>, stored <S>, duplicates <D>``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import socket
import statistics
import threading
import time
from zoneinfo import ZoneInfo

from _common import bench_database, restart_embedded_server

TILDA_SECRET, SITE_SECRET = "bench-tilda-secret", "bench-site-secret"


def _serve(url: str, port: int) -> None:
    import psycopg
    import uvicorn

    from ident_hooks.intake.app import IntakeSettings, create_app
    from ident_hooks.intake.receive import IntakeSource

    settings = IntakeSettings(
        sources={
            "tilda": IntakeSource("tilda", "tilda", "Tilda", TILDA_SECRET),
            "site_form": IntakeSource("site_form", "webhook", "Форма на сайте", SITE_SECRET),
        },
        connect=lambda: psycopg.connect(url, connect_timeout=3),
        timezone=ZoneInfo("Europe/Moscow"),
        rate_per_second=1e9,
        burst=10**9,
        pool_size=16,
    )
    uvicorn.run(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        access_log=False,
        log_level="warning",
        # An interrupted benchmark ends in seconds: requests still open are cut after this.
        timeout_graceful_shutdown=3,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _restart_database(after_seconds: float, stopping: threading.Event) -> None:
    """Restart the embedded server under the senders' feet (fast shutdown: connections drop)."""
    if stopping.wait(after_seconds):
        return
    began = time.perf_counter()
    restart_embedded_server()
    print(f"database restarted at {after_seconds:.0f} s ({time.perf_counter() - began:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=25)
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument(
        "--restart-db-after",
        type=float,
        default=None,
        help="restart the embedded PostgreSQL this many seconds in (a database outage)",
    )
    args = parser.parse_args()

    import httpx
    import psycopg

    url, drop = bench_database()
    port = _free_port()
    # daemon: should anything stop this process before its finally, multiprocessing's own
    # exit handler still terminates the server
    server = multiprocessing.get_context("fork").Process(
        target=_serve, args=(url, port), daemon=True
    )
    server.start()
    base = f"http://127.0.0.1:{port}"
    stopping = threading.Event()  # set when the run ends early (Ctrl-C, SIGTERM, an error)
    threads: list[threading.Thread] = []
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{base}/health", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

        latencies: list[float] = []
        answers: dict[int, int] = {}  # HTTP status (0: no answer) -> count
        accepted: set[tuple[str, str]] = set()
        lock = threading.Lock()
        stop_at = time.monotonic() + args.seconds

        def send(client: httpx.Client, kind: str, lead_id: str) -> None:
            """Until the lead is answered 2xx, as a sender that wants it kept would."""
            while not stopping.is_set():
                started = time.perf_counter()
                try:
                    if kind == "tilda":
                        response = client.post(
                            f"/tilda/tilda/{TILDA_SECRET}",
                            data={
                                "Name": "Нагрузка",
                                "Phone": "+79160000000",
                                "tranid": lead_id,
                                "formid": "bench",
                            },
                        )
                    else:
                        response = client.post(
                            "/webhook/site_form",
                            json={"id": lead_id, "name": "Нагрузка", "phone": "+79160000001"},
                            headers={"Authorization": f"Bearer {SITE_SECRET}"},
                        )
                    status = response.status_code
                except httpx.TransportError:
                    status = 0
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    answers[status] = answers.get(status, 0) + 1
                if 200 <= status < 300:
                    with lock:
                        accepted.add(("tilda" if kind == "tilda" else "site_form", lead_id))
                    return
                time.sleep(0.05)

        def sender(number: int) -> None:
            with httpx.Client(base_url=base, timeout=5) as client:
                serial = 0
                while time.monotonic() < stop_at and not stopping.is_set():
                    serial += 1
                    kind = "tilda" if serial % 2 else "webhook"
                    lead_id = f"{number}:{serial}"
                    send(client, kind, lead_id)
                    if serial % 10 == 0:
                        send(client, kind, lead_id)  # Tilda's retry of the same submission

        threads += [threading.Thread(target=sender, args=(n,)) for n in range(args.senders)]
        if args.restart_db_after is not None:
            threads.append(
                threading.Thread(target=_restart_database, args=(args.restart_db_after, stopping))
            )
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started

        with psycopg.connect(url) as conn:
            stored, distinct = conn.execute(
                "select count(*), count(distinct (source, coalesce(raw->>'tranid', raw->>'id')))"
                " from integration.leads"
            ).fetchone()
            kept = conn.execute(
                "select count(*) from integration.intake_requests where outcome = 'stored'"
            ).fetchone()[0]
        p99 = statistics.quantiles(latencies, n=100)[98] * 1000
        print(
            f"senders {args.senders}, {wall:.1f} s, requests {len(latencies)},"
            f" requests kept as 'stored' {kept}"
        )
        print(
            "answers: " + ", ".join(f"{code or 'none'}: {n}" for code, n in sorted(answers.items()))
        )
        print(
            f"intake: {len(latencies) / wall:.0f} req/s, p99 {p99:.1f} ms,"
            f" accepted {len(accepted)}, stored {stored}, duplicates {stored - distinct}"
        )
    finally:
        stopping.set()
        for thread in threads:
            if thread.is_alive():
                thread.join()
        server.terminate()
        server.join(10)
        if server.is_alive():
            server.kill()
            server.join()
        drop()


if __name__ == "__main__":
    main()
