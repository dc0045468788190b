"""The run command: the whole platform on one machine, for trying it and for demos.

Starts the embedded PostgreSQL (unless ``ident_db`` points elsewhere), applies the
clinic migrations, loads the demo clinic into an empty database, starts the local
simulators of the external services and runs ``airflow standalone`` with this
project's ``dags/`` and ``plugins/``. Ctrl-C stops everything it started; data is
kept in ``.local/`` for the next run.

The connections it makes up (the embedded clinic database, each simulator, the push
sources' secrets, the alert channels) go into Airflow's metadata database with their own
connection types, so Admin → Connections lists every service with its form
(:class:`RunConnections`); Airflow's processes and the intake find the clinic database
there too. A connection given as an ``AIRFLOW_CONN_*``
variable, or one a person has given a secret of their own in the UI, is theirs: the run
command leaves it alone and starts no simulator for it.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import requests

from ident_dev import embedded_pg

ROOT = Path(__file__).resolve().parents[2]
# Where the run keeps its data; IDENT_LOCAL_DIR lets a second platform (or a test) run beside.
LOCAL = Path(os.environ.get("IDENT_LOCAL_DIR") or ROOT / ".local")
PGDATA = LOCAL / "pgdata"
AIRFLOW_HOME = LOCAL / "airflow"
ADMIN_USER = "admin"


def _admin_password() -> str:
    """A password made once per checkout and kept in .local (never committed)."""
    path = LOCAL / "admin-password.json"
    if path.exists():
        return json.loads(path.read_text())[ADMIN_USER]
    password = secrets.token_urlsafe(12)
    path.write_text(json.dumps({ADMIN_USER: password}))
    path.chmod(0o600)
    return password


def airflow_environment(metadata_url: str, port: int) -> dict[str, str]:
    env = dict(os.environ)
    venv_bin = str(Path(sys.executable).parent)
    env.update(
        {
            # standalone starts its components as `airflow ...` children: they need the venv.
            "PATH": f"{venv_bin}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONPATH": str(ROOT / "plugins"),
            "AIRFLOW_HOME": str(AIRFLOW_HOME),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(LOCAL / "admin-password.json"),
            "AIRFLOW__API__PORT": str(port),
            # Task processes report to the api-server; its default assumes port 8080.
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port}/execution/",
        }
    )
    return env


SIMULATED = (
    "A local simulator started by the run command (scripts/run.sh), which rewrites this "
    "connection at every start while its password is the simulator's. To use the real "
    "service, enter its address and secret here: the run command then keeps them and starts "
    "no simulator for it."
)
MADE_UP_SECRET = (
    "A secret made up by the run command (scripts/run.sh), which rewrites it at every start "
    "while it is unchanged. Enter your own to keep it."
)
EMBEDDED_DATABASE = (
    "The run command's embedded PostgreSQL, rewritten at every start. For another clinic "
    "database start the run command with AIRFLOW_CONN_IDENT_DB set."
)


class RunConnections:
    """The connections the run command makes up, kept in Airflow's metadata database.

    Read once after ``airflow db migrate``. A connection is the user's when an
    ``AIRFLOW_CONN_<ID>`` variable gives it, or when the stored one no longer holds the
    secret the run command made up (a person entered the real service's); every other is
    created or rewritten by :meth:`save` (a simulator's port changes from run to run). The
    embedded clinic database has no secret and is always the run command's.
    """

    def __init__(self) -> None:
        from airflow.models.connection import Connection
        from airflow.utils.session import create_session

        with create_session() as session:
            self._stored = {row.conn_id: row.password for row in session.query(Connection).all()}
        self.wanted: dict[str, dict] = {}

    def users(self, conn_id: str, secret: str | None = None) -> bool:
        """Whether ``conn_id`` is set by the user rather than made up by the run command."""
        if f"AIRFLOW_CONN_{conn_id.upper()}" in os.environ:
            return True
        return secret is not None and self._stored.get(conn_id, secret) != secret

    def secret(self, conn_id: str) -> str | None:
        """The secret ``conn_id`` has: the user's (as a JSON variable or in the UI), else the
        one :meth:`add` was given."""
        variable = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
        if variable:
            return json.loads(variable).get("password")
        if conn_id in self.wanted:
            return self.wanted[conn_id].get("password")
        return self._stored.get(conn_id)

    def add(self, conn_id: str, fields: dict, description: str) -> None:
        self.wanted[conn_id] = {**fields, "description": description}

    def save(self) -> None:
        """Create or rewrite every connection :meth:`add` was given."""
        from airflow.models.connection import Connection
        from airflow.utils.session import create_session

        with create_session() as session:
            for conn_id, fields in self.wanted.items():
                row = session.query(Connection).filter_by(conn_id=conn_id).one_or_none()
                if row is None:
                    session.add(Connection(conn_id=conn_id, **fields))
                    continue
                fresh = Connection(conn_id=conn_id, **fields)
                row.conn_type, row.description = fresh.conn_type, fresh.description
                row.host, row.port, row.schema = fresh.host, fresh.port, fresh.schema
                row.login, row.password, row.extra = fresh.login, fresh.password, fresh.extra


def _migrate_airflow(env: dict[str, str], log_file) -> None:
    """Airflow's metadata database, migrated before the run command writes connections
    (``airflow standalone`` finds it up to date)."""
    print("migrating Airflow's metadata database ...", flush=True)
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        check=True,
    )


def _add_push_secrets(connections: RunConnections) -> None:
    """A local secret for each push source and the intake's GetTickets key whose connection
    the user has not set, as the simulators have."""
    from ident_dev.simulators.catalog import demo_secret
    from ident_hooks.config import load_config
    from ident_hooks.intake.settings import TICKETS_CONN_ID
    from ident_hooks.registry import INTAKE_TICKETS_CONNECTION

    conn_types = {
        source.connection: source.spec.connection.name
        for source in load_config().lead_sources
        if source.spec.push
    }
    conn_types[TICKETS_CONN_ID] = INTAKE_TICKETS_CONNECTION.name
    for conn_id, conn_type in conn_types.items():
        if not connections.users(conn_id, demo_secret(conn_id)):
            fields = {"conn_type": conn_type, "password": demo_secret(conn_id)}
            connections.add(conn_id, fields, MADE_UP_SECRET)


def _start_intake(
    env: dict[str, str], port: int, log_file, connections: RunConnections
) -> tuple[subprocess.Popen, list[str]]:
    """The intake service for pushed leads, on its own port (it may face the internet).

    It reads its secrets and the clinic database from the connections (stored before it
    starts); returns the process and the addresses to print.
    """
    from ident_hooks.config import load_config

    base = f"http://localhost:{port}"
    shown = []
    for source in [s for s in load_config().lead_sources if s.spec.push]:
        secret = connections.secret(source.connection)
        if source.kind == "tilda":
            shown.append(f"{source.title}: webhook URL {base}/tilda/{source.name}/{secret}")
        elif source.kind == "uis_notification":
            shown.append(f"{source.title}: notification URL {base}/uis/{source.name}/{secret}")
        else:
            shown.append(
                f"{source.title}: POST {base}/webhook/{source.name}"
                f"  (Authorization: Bearer {secret})"
            )
    process = subprocess.Popen(
        [sys.executable, "-m", "ident_hooks.intake", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return process, shown


def _start_simulators(connections: RunConnections) -> list:
    """Start a simulator for every external service whose connection the user has not set,
    and give ``connections`` the connection that points at it."""
    from ident_dev.simulators.catalog import DemoLeadFeeder, build_simulators
    from ident_dev.simulators.fake_leads import LeadServingSimulator
    from ident_dev.simulators.yandex_metrica import YandexMetricaSimulator
    from ident_hooks import db

    with db.connect() as conn:
        doctors = conn.execute("select doctor_id, full_name from clinic.doctors").fetchall()
        branches = [r[0] for r in conn.execute("select branch_id from clinic.branches")]
    started = int(time.time())
    services = build_simulators(
        doctors, branches, seed=started, first_serial=started - 1_700_000_000
    )
    running = []
    for service in services.values():
        if isinstance(service.server, YandexMetricaSimulator):
            service.server.visits_of = _lead_visits
        if connections.users(service.conn_id, service.secret):
            continue  # the user pointed this connection at the real service
        service.server.start()
        if isinstance(service.server, LeadServingSimulator):
            service.server.generate(4, spread_seconds=2 * 86_400)  # some history to look at
        connections.add(service.conn_id, service.connection_fields, SIMULATED)
        running.append(service.server)
        print(f"simulator {service.conn_id:<12} {service.server.base_url}")
    feeder = DemoLeadFeeder(
        {k: v for k, v in services.items() if v.server in running},
        mean_gap_seconds=float(os.environ.get("IDENT_DEMO_LEAD_GAP_SECONDS", 45)),
    )
    running.append(feeder.start())
    return running


def _lead_visits(visitor: str) -> list:
    """The site visits Metrica saw of a visitor (a ClientId or a yclid), for its simulator:
    one at the creation of each of the clinic's leads that carries it."""
    from ident_hooks import db

    with db.connect() as conn:
        rows = conn.execute(
            "select created_at from integration.leads where ym_client_id = %s or yclid = %s",
            (visitor, visitor),
        ).fetchall()
    return [created_at for (created_at,) in rows]


# The demo's alert destinations: chats of the Telegram simulator, addresses at the sink.
DEMO_CHATS = {"-1001000000001": "Команда данных (демо)", "-1001000000002": "Ресепшн (демо)"}
DEMO_MAIL_LOGIN = "alerts@clinic.example"


def _start_alert_channels(env: dict[str, str], connections: RunConnections) -> list:
    """A Telegram Bot API simulator and an SMTP sink for the alerts, unless the user set
    the alert connections, and an alerts.yaml that sends to them (``IDENT_ALERTS_CONFIG``
    wins when set)."""
    import yaml

    from ident_dev.simulators.catalog import demo_secret
    from ident_dev.simulators.smtp_sink import SmtpSink
    from ident_dev.simulators.telegram import TelegramSimulator
    from ident_hooks.health.settings import DEFAULT_ALERTS_PATH, load_alerts_config

    config = load_alerts_config(DEFAULT_ALERTS_PATH)
    running = []
    telegram_token = demo_secret(config.telegram_connection)
    if not connections.users(config.telegram_connection, telegram_token):
        telegram = TelegramSimulator(token=telegram_token, chats=DEMO_CHATS).start()
        connections.add(
            config.telegram_connection,
            {
                "conn_type": "telegram",
                "password": telegram_token,
                "extra": {"base_url": f"{telegram.base_url}/bot"},
            },
            SIMULATED,
        )
        running.append(telegram)
        print(f"simulator {'telegram':<12} {telegram.base_url}")
    mail_password = demo_secret(config.email_connection)
    if not connections.users(config.email_connection, mail_password):
        sink = SmtpSink(login=DEMO_MAIL_LOGIN, password=mail_password).start()
        connections.add(
            config.email_connection,
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": sink.port,
                "login": DEMO_MAIL_LOGIN,
                "password": sink.password,
                "extra": {**sink.connection_extra(), "from_email": DEMO_MAIL_LOGIN},
            },
            SIMULATED,
        )
        running.append(sink)
        print(f"simulator {'smtp':<12} 127.0.0.1:{sink.port}")
    if "IDENT_ALERTS_CONFIG" not in os.environ:
        data = yaml.safe_load(DEFAULT_ALERTS_PATH.read_text(encoding="utf-8"))
        team_chat, desk_chat = DEMO_CHATS
        data["data_team"].update(telegram_chat_id=team_chat, emails=["data-team@clinic.example"])
        data["front_desks"]["default"].update(
            telegram_chat_id=desk_chat, emails=["reception@clinic.example"], admins=[ADMIN_USER]
        )
        path = LOCAL / "alerts.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
        env["IDENT_ALERTS_CONFIG"] = str(path)
    return running


class _DemoSync:
    """Stands in for the clinic's sync: writes ``clinic.sync_heartbeat`` every minute, as a
    practice-management system's sync would after each pass (otherwise the demo's data
    would turn stale after half an hour and its near days would be withdrawn)."""

    def __init__(self) -> None:
        import threading

        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="demo-sync", daemon=True)

    def start(self) -> _DemoSync:
        self._thread.start()
        return self

    def _beat(self) -> None:
        from ident_hooks import db

        while not self._stopped.is_set():
            try:
                with db.connect() as conn:
                    conn.execute(
                        "insert into clinic.sync_heartbeat values ('demo', now())"
                        " on conflict (source) do update set synced_at = excluded.synced_at"
                    )
            except Exception as error:  # the demo goes on; the status page will show it
                print(f"demo sync heartbeat failed: {error}", file=sys.stderr)
            self._stopped.wait(60)

    def stop(self) -> None:
        self._stopped.set()


def _wait_for_ui(port: int, process: subprocess.Popen, timeout: float = 240) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=2).ok:
                return True
        except requests.RequestException:
            pass
        time.sleep(2)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("IDENT_UI_PORT", 8080)))
    parser.add_argument(
        "--intake-port",
        type=int,
        default=int(os.environ.get("IDENT_INTAKE_PORT", 8091)),
        help="the intake service for pushed leads (Tilda, site webhooks)",
    )
    parser.add_argument(
        "--reload-demo", action="store_true", help="replace clinic data with a new demo"
    )
    parser.add_argument("--no-demo", action="store_true", help="do not load the demo clinic")
    args = parser.parse_args(argv)

    LOCAL.mkdir(parents=True, exist_ok=True)
    server = None
    stack: list[subprocess.Popen] = []
    clinic_conn = os.environ.get("AIRFLOW_CONN_IDENT_DB")
    users_clinic_database = clinic_conn is not None
    metadata_url = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
    if not clinic_conn or not metadata_url:
        started = time.monotonic()
        server = embedded_pg.start(PGDATA, stop_on_exit=True)
        admin_url = embedded_pg.socket_url(PGDATA, "postgres")
        for database in ("ident", "airflow"):
            embedded_pg.ensure_database(admin_url, database)
        print(f"embedded PostgreSQL in {PGDATA} ({time.monotonic() - started:.1f} s)")
        clinic_conn = clinic_conn or embedded_pg.airflow_connection(
            embedded_pg.socket_url(PGDATA, "ident")
        )
        metadata_url = metadata_url or (f"postgresql+psycopg://postgres@/airflow?host={PGDATA}")
    else:
        print("using the databases given by AIRFLOW_CONN_IDENT_DB and SQL_ALCHEMY_CONN")

    env = airflow_environment(metadata_url, args.port)
    os.environ.update(env)
    # This process (migrations, the demo load, the demo's sync) reaches the clinic database
    # through ident_db before it is stored; its children find it stored (env lacks it).
    os.environ["AIRFLOW_CONN_IDENT_DB"] = clinic_conn
    airflow_log = open(LOCAL / "airflow.log", "ab")  # noqa: SIM115 - lives as long as Airflow
    # First, before this process loads Airflow's configuration: the migration writes
    # airflow.cfg with its Fernet key, which then encrypts the passwords stored below.
    _migrate_airflow(env, airflow_log)
    from ident_dev import demo
    from ident_hooks import db

    with db.connect() as conn:
        applied = db.prepare_database(conn)
        print("clinic migrations: " + (", ".join(applied) if applied else "up to date"))
        if not args.no_demo:
            clinic = demo.generate()
            if demo.load(conn, clinic, replace=args.reload_demo):
                print(
                    f"demo clinic loaded: {len(clinic.doctors)} doctors, "
                    f"{len(clinic.appointments)} appointments, {len(clinic.leads)} past leads"
                )

    connections = RunConnections()
    if not users_clinic_database:
        connections.add(db.CLINIC_CONN_ID, json.loads(clinic_conn), EMBEDDED_DATABASE)
    simulated = _start_simulators(connections) + _start_alert_channels(env, connections)
    if not args.no_demo:
        simulated.append(_DemoSync().start())
    _add_push_secrets(connections)
    connections.save()
    print(f"connections (Admin → Connections): {', '.join(sorted(connections.wanted))}")
    intake, intake_addresses = _start_intake(
        env,
        args.intake_port,
        open(LOCAL / "intake.log", "ab"),  # noqa: SIM115 - lives as long as the intake
        connections,
    )
    stack.append(intake)
    password = _admin_password()
    print("starting Airflow (first start takes a minute or two) ...", flush=True)
    airflow = subprocess.Popen(
        ["airflow", "standalone"],
        env=env,
        stdout=airflow_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    stack.append(airflow)

    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    # Installed explicitly: a shell that starts us in the background ignores SIGINT.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)
    try:
        if _wait_for_ui(args.port, airflow):
            print(
                f"\nAirflow UI: http://localhost:{args.port}/  login: {ADMIN_USER}"
                f"  password: {password}\nlogs: {LOCAL / 'airflow.log'}"
                f"\nIntake (pushed leads): http://localhost:{args.intake_port}/"
                f"  log: {LOCAL / 'intake.log'}\n  "
                + "\n  ".join(intake_addresses)
                + "\nCtrl-C stops everything.\n",
                flush=True,
            )
        else:
            print(f"Airflow did not come up; see {LOCAL / 'airflow.log'}", file=sys.stderr)
            return 1
        return airflow.wait()
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
        return 0
    finally:
        for process in stack:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for process in stack:
            _stop_group(process, deadline)
        for service in simulated:
            service.stop()
        if server is not None:
            server.cleanup()


def _stop_group(leader: subprocess.Popen, deadline: float) -> None:
    """Wait until every process of ``leader``'s group (SIGTERMed) has exited, and SIGKILL
    what is left of it at ``deadline``. The leader's exit is not enough: ``airflow
    standalone`` may be gone while its scheduler, in its group, still winds down its
    workers — left behind, it would outlive the database it needs."""
    try:
        leader.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    while left := _group_members(leader.pid):
        if time.monotonic() >= deadline:
            for process in left:
                process.kill()
            break
        time.sleep(0.2)
    leader.wait()


def _group_members(pgid: int) -> list[psutil.Process]:
    """The live processes of process group ``pgid`` (zombies have exited already)."""
    members = []
    for process in psutil.process_iter(["status"]):
        try:
            if os.getpgid(process.pid) == pgid and process.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(process)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


if __name__ == "__main__":
    sys.exit(main())
