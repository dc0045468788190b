"""The plugin file stays cheap to import: every Airflow component imports it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"

_PROBE = """
import json, sys
import airflow.plugins_manager
before = set(sys.modules)
from ident_hooks.airflow_plugins import IdentInboxPlugin
plugin = IdentInboxPlugin
print(json.dumps({
    "new_modules": sorted(set(sys.modules) - before),
    "prefix": plugin.fastapi_apps[0]["url_prefix"],
    "nav": plugin.external_views[0]["href"],
}))
"""


def test_importing_the_plugin_loads_no_web_or_database_stack():
    env = {**os.environ, "PYTHONPATH": str(PLUGINS)}
    result = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True
    )
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    heavy = ("fastapi", "starlette", "jinja2", "psycopg", "pandas", "ident_hooks.inbox.app")
    assert not [m for m in probe["new_modules"] if m.split(".")[0] in heavy or m in heavy]
    assert (probe["prefix"], probe["nav"]) == ("/inbox", "/inbox/")
