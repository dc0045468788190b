"""Page rendering shared by the inbox and the report page (both mounted in the api-server)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import Request
from jinja2 import Environment, FileSystemLoader, select_autoescape


@cache
def page_templates(folder: Path) -> Environment:
    """The Jinja templates of one app; HTML is escaped unless a template says otherwise."""
    return Environment(
        loader=FileSystemLoader(folder),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def airflow_root_url(request: Request) -> str:
    """The Airflow UI's address as seen from an app mounted at ``/<prefix>``."""
    mount_path = request.scope.get("root_path", "").rstrip("/")
    return mount_path.rsplit("/", 1)[0] + "/"
