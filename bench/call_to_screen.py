"""A call on screen: from UIS's POST to the intake to the call's card on an open inbox page.

    python bench/call_to_screen.py --calls 20

Over a fresh migrated clinic database it starts the intake service (``ident_hooks.intake``,
uvicorn, with the UIS call notifications source ``uis_calls``) and the inbox app
(``ident_hooks.inbox``, uvicorn, mounted at ``/inbox`` as the api-server mounts it; the
login is taken as done: Airflow's ``get_user`` answers a fixed admin, so this measures the
inbox, not Airflow's auth), each in a process of its own, and opens the inbox in a headless
Chromium (Debian's ``chromium``, through Playwright). Each caller has a patient card. Then,
one at a time, it posts a call notification as UIS does — to a number of the clinic's
numbers map (a configured aggregator profile) — and times it from just before the POST to
the moment the page's DOM has the call's row with the number's label and the caller's card
(a MutationObserver in the page notes the time; the page and this script share the
machine's clock). The call is pushed: the intake commits the lead, PostgreSQL NOTIFYs the
inbox's LISTEN connection, the page's event stream tells it to fetch the list.
Last line: ``call -> screen, <N> calls: p50 <A> ms, p95 <B> ms, max <C> ms``; the target is
p95 ≤ 2 s.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import secrets
import shutil
import socket
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from _common import bench_database

UIS_SECRET = "bench-uis-secret"
CLINIC_ZONE = ZoneInfo("Europe/Moscow")  # UIS's notification_time is the account's local time
PRODOCTOROV_NUMBER = "+7 495 120-00-01"
PRODOCTOROV_LABEL = "ПроДокторов: профиль клиники"
TARGET_P95_SECONDS = 2.0
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
SURNAMES = ["Смирнова", "Кузнецов", "Попова", "Соколов", "Лебедева", "Козлов", "Новикова"]
GIVEN_NAMES = ["Анна Сергеевна", "Игорь Петрович", "Ольга Викторовна", "Денис Андреевич"]
# Notes when the row of a call (found by the caller's phone) shows what is expected: each
# [selector, text] of the call's list has an element in the row containing the text.
APPEARANCE_RECORDER = """
window.__expected = {};   // phone as shown -> [[selector, text], ...]
window.__appeared = {};   // phone as shown -> Date.now() when the row had them all
const check = () => {
  const now = Date.now();
  for (const [phone, parts] of Object.entries(window.__expected)) {
    if (phone in window.__appeared) continue;
    for (const row of document.querySelectorAll("tr.lead")) {
      const shown = row.querySelector(".phone");
      if (shown && shown.textContent === phone && parts.every(([selector, text]) =>
          [...row.querySelectorAll(selector)].some((e) => e.textContent.includes(text)))) {
        window.__appeared[phone] = now;
      }
    }
  }
};
new MutationObserver(check).observe(document, {
  childList: true, subtree: true, characterData: true,
});
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve_intake(url: str, port: int) -> None:
    import psycopg
    import uvicorn

    from ident_hooks.intake.app import IntakeSettings, create_app
    from ident_hooks.intake.receive import IntakeSource

    settings = IntakeSettings(
        sources={"uis_calls": IntakeSource("uis_calls", "uis_notification", "UIS", UIS_SECRET)},
        connect=lambda: psycopg.connect(url, connect_timeout=3),
        timezone=CLINIC_ZONE,
        rate_per_second=1e9,
        burst=10**9,
    )
    uvicorn.run(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=3,
    )


def _serve_inbox(port: int) -> None:
    import uvicorn
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi import FastAPI

    from ident_hooks.inbox.app import create_app

    inbox = create_app()
    inbox.dependency_overrides[get_user] = lambda: SimpleAuthManagerUser(
        username="admin", role="admin"
    )
    root = FastAPI()
    root.mount("/inbox", inbox)
    uvicorn.run(
        root,
        host="127.0.0.1",
        port=port,
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=3,
    )


def _wait_until_answering(url: str, process: multiprocessing.Process) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while True:
        if not process.is_alive():
            raise SystemExit(f"the server for {url} exited ({process.exitcode})")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _seed_cards(url: str, calls: int) -> list[tuple[str, str]]:
    """A patient card for each caller: (the caller's number as UIS sends it, the card name)."""
    import psycopg

    from ident_hooks.patients.rematch import rematch

    callers = []
    with psycopg.connect(url) as conn:
        for n in range(calls):
            name = f"{SURNAMES[n % len(SURNAMES)]} {GIVEN_NAMES[n % len(GIVEN_NAMES)]}"
            number = f"7916{4000000 + n:07d}"
            conn.execute(
                "insert into clinic.patients (patient_id, full_name) values (%s, %s)",
                (f"bench-{n}", name),
            )
            conn.execute(
                "insert into clinic.patient_phones (patient_id, phone) values (%s, %s)",
                (f"bench-{n}", "8" + number[1:]),
            )
            callers.append((number, name))
        rematch(conn, now=datetime.now(CLINIC_ZONE))  # index the cards, as the DAG does
    return callers


def _shown_phone(number: str) -> str:
    digits = number[1:]
    return f"+7 {digits[:3]} {digits[3:6]}-{digits[6:8]}-{digits[8:]}"


def _channel_rules(folder: Path) -> Path:
    import yaml

    from ident_hooks.reports.channels import RULES_PATH

    rules = yaml.safe_load(RULES_PATH.read_text(encoding="utf-8"))
    rules["numbers"] = [
        {"number": PRODOCTOROV_NUMBER, "channel": "aggregator", "label": PRODOCTOROV_LABEL}
    ]
    path = folder / "marketing_channels.yaml"
    path.write_text(yaml.safe_dump(rules, allow_unicode=True), encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument(
        "--gap", type=float, default=0.5, help="seconds between one call on screen and the next"
    )
    args = parser.parse_args()
    if args.calls < 2:
        parser.error("--calls: at least 2, for a p95")
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("Debian's chromium is needed (apt-get install chromium)")

    import httpx
    from playwright.sync_api import sync_playwright

    url, drop = bench_database()
    folder = Path(tempfile.mkdtemp(prefix="call_to_screen_"))
    os.environ.update(
        {
            "AIRFLOW_HOME": str(folder / "airflow"),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(24),
            "IDENT_MARKETING_CHANNELS_CONFIG": str(_channel_rules(folder)),
        }
    )
    callers = _seed_cards(url, args.calls)
    intake_port, inbox_port = _free_port(), _free_port()
    fork = multiprocessing.get_context("fork")
    # daemon: should anything stop this process before its finally, multiprocessing's own
    # exit handler still terminates the servers
    servers = [
        fork.Process(target=_serve_intake, args=(url, intake_port), daemon=True),
        fork.Process(target=_serve_inbox, args=(inbox_port,), daemon=True),
    ]
    try:
        for server in servers:
            server.start()
        intake = f"http://127.0.0.1:{intake_port}"
        inbox = f"http://127.0.0.1:{inbox_port}/inbox/"
        _wait_until_answering(f"{intake}/health", servers[0])
        _wait_until_answering(f"{inbox}static/inbox.js", servers[1])

        latencies = []
        with sync_playwright() as playwright, httpx.Client(timeout=5) as client:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            context = browser.new_context(locale="ru-RU", timezone_id="Europe/Moscow")
            context.add_init_script(APPEARANCE_RECORDER)
            page = context.new_page()
            page.goto(inbox)
            page.locator("#status").filter(has_text="мгновенно").wait_for(timeout=30_000)
            for n, (number, name) in enumerate(callers):
                shown = _shown_phone(number)
                page.evaluate(
                    "([phone, texts]) => { window.__expected[phone] = texts; }",
                    [shown, [[".call-dialled", PRODOCTOROV_LABEL], [".patient-state", name]]],
                )
                notification = {
                    "notification_mnemonic": "incoming_call",
                    "notification_name": "Входящий звонок на виртуальный номер",
                    "notification_time": datetime.now(CLINIC_ZONE).strftime("%Y-%m-%d %H:%M:%S"),
                    "call_session_id": 900000 + n,
                    "contact_phone_number": number,
                    "contact_full_name": name,
                    "virtual_phone_number": "74951200001",
                    "scenario_name": "Основной",
                }
                started = time.time()
                answer = client.post(
                    f"{intake}/uis/uis_calls/{UIS_SECRET}",
                    content=json.dumps(notification, ensure_ascii=False).encode(),
                    headers={"Content-Type": "application/json"},
                )
                answer.raise_for_status()
                page.wait_for_function("phone => phone in window.__appeared", arg=shown)
                latencies.append(page.evaluate("phone => window.__appeared[phone]", shown) / 1000)
                latencies[-1] -= started
                page.wait_for_timeout(args.gap * 1000)
            browser.close()
    finally:
        for server in servers:
            if server.pid is not None:
                server.terminate()
                server.join(10)
                if server.is_alive():
                    server.kill()
                    server.join()
        drop()
        shutil.rmtree(folder, ignore_errors=True)

    latencies.sort()
    p50 = statistics.median(latencies)
    p95 = statistics.quantiles(latencies, n=20, method="inclusive")[-1]
    verdict = "within" if p95 <= TARGET_P95_SECONDS else "OVER"
    print(f"target: p95 <= {TARGET_P95_SECONDS:.0f} s ({verdict})", file=sys.stderr)
    print(
        f"call -> screen, {len(latencies)} calls: p50 {p50 * 1000:.0f} ms,"
        f" p95 {p95 * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
