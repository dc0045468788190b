"""The checkout as an Airflow provider: built into a wheel, installed into a fresh
virtualenv beside the installed apache-airflow, found by Airflow with its connection types
and their forms — without ``plugins/`` on the path.

The fresh virtualenv sees ``.venv``'s packages (Airflow and its providers) through a
``.pth`` file, so nothing is downloaded; the wheel is installed into it with pip
(``--no-deps``: its dependencies are those packages). Airflow is asked the way a data team
would ask it — ``airflow providers list`` — and the way its UI asks: ``ProvidersManager``'s
hooks and ``HookMetaService.hook_meta_data()``, which serves ``/ui/connections/hook_meta``
to the Admin → Connections form.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import sysconfig
import time
import tomllib
import zipfile
from pathlib import Path

import pytest

from ident_hooks.registry import (
    AGGREGATOR_KINDS,
    CONNECTION_TYPES,
    CONVERSION_SINK_KINDS,
    COST_SOURCE_KINDS,
    LEAD_SOURCE_KINDS,
)

ROOT = Path(__file__).resolve().parents[1]
DISTRIBUTION = "ident-booking-platform"
# What the run command, the tests and bench/ use and a deployment never does.
DEVELOPMENT_PACKAGE = "ident_dev"
DEVELOPMENT_MODULES = {"demo", "devstack", "embedded_pg", "simulators", "airflow_stack"}

# What the installed Airflow reports, gathered in one process of the fresh virtualenv.
PROBE = """
import importlib, json, warnings
warnings.simplefilter("ignore")
import ident_hooks
from airflow.sdk import BaseOperator
from airflow.providers_manager import ProvidersManager
from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
from ident_hooks.db import load_migrations
from ident_hooks.config import load_config

manager = ProvidersManager()
hooks = {}
for conn_type, info in manager.hooks.items():
    if info is not None and info.package_name == "ident-booking-platform":
        hooks[conn_type] = {
            "class": info.hook_class_name, "name": info.hook_name,
            "conn_id_attribute": info.connection_id_attribute_name,
        }
# The operators' modules the provider info lists, and the operators each defines.
operators = {
    module: sorted(
        name for name, value in vars(importlib.import_module(module)).items()
        if isinstance(value, type) and issubclass(value, BaseOperator)
        and value.__module__ == module
    )
    for entry in manager.providers["ident-booking-platform"].data.get("operators", [])
    for module in entry["python-modules"]
}
forms = {
    meta.connection_type: meta.model_dump()
    for meta in HookMetaService.hook_meta_data()
    if meta.connection_type in hooks
}
print(json.dumps({
    "package_file": ident_hooks.__file__,
    "hooks": hooks,
    "forms": forms,
    "operators": operators,
    "migrations": len(load_migrations()),
    "aggregators": [a.name for a in load_config().aggregators],
}))
"""


def _run(command: list[str], env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """Build, install beside the running Airflow, and ask Airflow what it found."""
    work = tmp_path_factory.mktemp("provider")
    started = time.monotonic()
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(work / "dist"), str(ROOT)],
        dict(os.environ),
        work,
    )
    (wheel,) = (work / "dist").glob("*.whl")
    venv = work / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], dict(os.environ), work)
    python = venv / "bin" / "python"
    site = Path(
        _run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], {}, work
        ).strip()
    )
    # .venv is itself a venv: --system-site-packages would show the base Python, not it.
    (site / "ident_beside.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q"]
        + ["--no-deps", "--no-index", str(wheel)],
        dict(os.environ),
        work,
    )
    # No plugins/ or dags/ of the checkout anywhere: only the installed package can answer.
    empty = work / "empty"
    empty.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW", "IDENT_", "PYTHON"))
    }
    env.update(
        AIRFLOW_HOME=str(work / "airflow"),
        AIRFLOW__CORE__DAGS_FOLDER=str(empty),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(empty),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
    )
    listed = json.loads(
        _run([str(python), "-m", "airflow", "providers", "list", "-o", "json"], env, empty)
    )
    probed = json.loads(_run([str(python), "-c", PROBE], env, empty).splitlines()[-1])
    plugins = json.loads(
        _run([str(python), "-m", "airflow", "plugins", "-o", "json"], env, empty) or "[]"
    )
    return {
        "listed": listed,
        "plugins": plugins,
        "seconds": time.monotonic() - started,
        "venv": venv,
        "wheel": wheel,
        **probed,
    }


def test_airflow_lists_the_installed_provider(installed):
    ours = [p for p in installed["listed"] if p["package_name"] == DISTRIBUTION]
    assert len(ours) == 1, installed["listed"]
    version = re.search(
        r'__version__ = "(.+)"', (ROOT / "plugins/ident_hooks/__init__.py").read_text()
    )
    assert ours[0]["version"] == version[1]
    # The package came from the wheel, not from the checkout.
    assert installed["package_file"].startswith(str(installed["venv"]))
    print(f"built, installed and listed in {installed['seconds']:.1f} s")


def test_the_pages_and_the_run_listener_come_with_the_package(installed):
    """An empty plugins folder: the inbox, the reports, the status page and the listener
    are registered by the installed package's ``airflow.plugins`` entry point."""
    plugins = {plugin["name"]: plugin for plugin in installed["plugins"]}
    assert sorted(plugins) == ["ident_health", "ident_inbox", "ident_reports"]
    prefixes = {
        name: [app["url_prefix"] for app in p["fastapi_apps"]] for name, p in plugins.items()
    }
    assert prefixes == {
        "ident_health": ["/status"],
        "ident_inbox": ["/inbox"],
        "ident_reports": ["/reports"],
    }
    assert plugins["ident_health"]["listeners"] == ["ident_hooks.health.listener"]


def test_every_service_has_its_connection_type_and_hook(installed):
    used = (
        {kind.connection.name for kind in AGGREGATOR_KINDS.values()}
        | {kind.connection.name for kind in LEAD_SOURCE_KINDS.values()}
        | {kind.connection.name for kind in COST_SOURCE_KINDS.values()}
        | {kind.connection.name for kind in CONVERSION_SINK_KINDS.values()}
    )
    assert used <= set(installed["hooks"])
    assert set(installed["hooks"]) == set(CONNECTION_TYPES)
    assert {
        "prodoctorov",
        "napopravku",
        "ident_http",
        "uis_data_api",
        "flexbe",
        "tilda_webhook",
        "intake_webhook",
        "uis_notification",
        "intake_tickets",
        "yandex_direct",
        "yandex_metrica",
    } == set(installed["hooks"])
    for conn_type, connection in CONNECTION_TYPES.items():
        hook = installed["hooks"][conn_type]
        assert hook["class"] == f"ident_hooks.hooks.{connection.hook_class_name}"
        assert hook["name"] == connection.hook_name
        expected_attribute = "http_conn_id" if connection.outgoing else "conn_id"
        assert hook["conn_id_attribute"] == expected_attribute


def test_each_form_is_labelled_for_its_service(installed):
    forms = installed["forms"]
    prodoctorov = forms["prodoctorov"]["standard_fields"]
    assert prodoctorov["password"]["title"] == "API token"
    assert prodoctorov["host"] == {
        "hidden": False,
        "title": "Base URL",
        "placeholder": "https://api.prodoctorov.ru",
    }
    assert prodoctorov["login"]["hidden"] and prodoctorov["port"]["hidden"]
    assert prodoctorov["url_schema"]["hidden"]
    napopravku = forms["napopravku"]["standard_fields"]
    assert napopravku["host"]["placeholder"] == "https://rta-api.napopravku.ru/api/v1"
    assert napopravku["password"]["title"] == "RTA API token"
    assert forms["uis_data_api"]["standard_fields"]["host"]["placeholder"] == (
        "https://dataapi.uiscom.ru"
    )
    assert forms["flexbe"]["standard_fields"]["password"]["title"] == "API key"
    ident = forms["ident_http"]["standard_fields"]
    assert ident["password"]["title"] == "Integration key (IDENT-Integration-Key)"
    # A service that calls us has no address: only its secret is asked for.
    tilda = forms["tilda_webhook"]["standard_fields"]
    assert tilda["host"]["hidden"] and tilda["login"]["hidden"]
    assert tilda["password"]["title"] == "Webhook secret"
    assert forms["intake_webhook"]["standard_fields"]["password"]["title"] == "Bearer token"
    assert forms["intake_tickets"]["standard_fields"]["host"]["hidden"]
    direct = forms["yandex_direct"]
    assert direct["standard_fields"]["password"]["title"] == "OAuth token"
    assert direct["standard_fields"]["host"]["placeholder"] == "https://api.direct.yandex.com"
    assert direct["extra_fields"]["Client-Login"]["schema"]["title"].startswith("Client-Login")

    for conn_type, connection in CONNECTION_TYPES.items():
        extra = forms[conn_type]["extra_fields"] or {}
        if connection.outgoing:
            # A service connection's extras: the timeout and the headers its service wants
            # (HttpHook sends every other key as a header too).
            assert set(extra) == {"timeout", *connection.header_fields}, conn_type
            assert extra["timeout"]["schema"]["title"] == "Timeout, seconds"
            assert "integer" in extra["timeout"]["schema"]["type"]
        else:
            assert extra == {}, conn_type


def test_the_provider_lists_its_operators(installed):
    assert installed["operators"] == {
        "ident_hooks.operators.pull_leads": ["AcknowledgeBookingsOperator", "PullLeadsOperator"],
        "ident_hooks.operators.publish_schedule": ["PublishScheduleOperator"],
        "ident_hooks.operators.import_ad_costs": ["ImportAdCostsOperator"],
        "ident_hooks.operators.send_conversions": ["SendConversionsOperator"],
    }


def test_the_installed_package_finds_its_migrations_and_config(installed):
    assert installed["migrations"] == len(list((ROOT / "include/sql/migrations").glob("*.sql")))
    assert installed["aggregators"] == ["prodoctorov", "napopravku", "sberzdorovie", "32top"]


def test_runtime_dependencies_are_pinned_by_the_runtime_lock_only():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime, development = (
        dict(
            line.lower().split("==")
            for line in (ROOT / lock).read_text().splitlines()
            if "==" in line and not line.startswith("#")
        )
        for lock in ("requirements.txt", "requirements-dev.txt")
    )
    # A package both need is pinned alike: the development lock is resolved against the other.
    assert {name: development[name] for name in development.keys() & runtime.keys()} == {
        name: runtime[name] for name in development.keys() & runtime.keys()
    }
    for requirement in project["dependencies"]:
        name = re.match(r"[A-Za-z0-9_.-]+", requirement)[0].lower()
        assert name in runtime, requirement
    for tool in ("pytest", "pgserver", "playwright", "hypothesis", "ruff", "time-machine"):
        assert tool not in runtime and tool in development, tool
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines()
    instructions = "\n".join(line for line in dockerfile if not line.startswith("#"))
    assert "requirements.txt" in instructions and "requirements-dev" not in instructions


def test_the_wheel_holds_no_development_tooling(installed):
    with zipfile.ZipFile(installed["wheel"]) as wheel:
        modules = [Path(name) for name in wheel.namelist() if name.endswith(".py")]
    assert Path("ident_hooks/registry.py") in modules
    assert [module for module in modules if module.parts[0] != "ident_hooks"] == []
    development = [
        module
        for module in modules
        if {module.stem, *module.parts} & (DEVELOPMENT_MODULES | {DEVELOPMENT_PACKAGE})
    ]
    assert development == []


def _development_references(path: Path) -> list[str]:
    """Where a module imports the development package, or names it to a subprocess or to
    importlib (``"-m", "ident_dev.…"``); docstrings may mention it."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    docstrings = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names = [] if id(node) in docstrings else [node.value]
        else:
            continue
        for name in names:
            if name == DEVELOPMENT_PACKAGE or name.startswith(DEVELOPMENT_PACKAGE + "."):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
    return found


def test_the_runtime_code_never_uses_the_development_package():
    runtime = sorted((ROOT / "plugins").rglob("*.py")) + sorted((ROOT / "dags").rglob("*.py"))
    assert ROOT / "plugins/ident_hooks/registry.py" in runtime
    assert [ref for path in runtime for ref in _development_references(path)] == []
    # The check itself sees what it looks for.
    assert _development_references(ROOT / "devtools/ident_dev/devstack.py")
    # And the development tooling left the provider's package entirely.
    package = ROOT / "plugins/ident_hooks"
    left = [
        path.relative_to(ROOT)
        for path in package.rglob("*.py")
        if {path.stem, *path.relative_to(package).parts[:-1]} & DEVELOPMENT_MODULES
    ]
    assert left == []


def test_the_development_package_is_pinned_by_the_development_lock_and_not_in_the_image():
    project = tomllib.loads((ROOT / "devtools/pyproject.toml").read_text(encoding="utf-8"))
    locked = {
        line.lower().split("==")[0]
        for lock in ("requirements.txt", "requirements-dev.txt")
        for line in (ROOT / lock).read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    for requirement in project["project"]["dependencies"]:
        name = re.match(r"[A-Za-z0-9_.-]+", requirement)[0].lower()
        assert name == DISTRIBUTION or name in locked, requirement
    assert project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == [
        DEVELOPMENT_PACKAGE
    ]
    # The production image installs the provider only.
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines()
    instructions = "\n".join(line for line in dockerfile if not line.startswith("#"))
    assert "devtools" not in instructions and "ident_dev" not in instructions
    assert "devtools" in (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
