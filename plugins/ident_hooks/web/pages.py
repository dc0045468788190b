"""Each page's FastAPI app and its rendering over the kit's base template and stylesheet.

A page package holds ``templates/<page>.html`` (``{% extends "base.html" %}``) and
``static/`` with its icon, its stylesheet and script; the kit's ``static/base.css`` is
served beside them, at ``static/base.css`` of every page.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.exceptions import HTTPException as StarletteHTTPException

from ident_hooks.web.security import PAGE_CSP, add_security_headers, login_redirect_handler

HERE = Path(__file__).resolve().parent


def page_app(title: str, router: APIRouter, folder: Path, *, pages: Iterable[Callable]) -> FastAPI:
    """The app of the page package in ``folder``, titled ``title`` (its heading): ``router``,
    its static files over the kit's, the login redirect for ``pages`` (endpoint functions) and
    the security headers on every response."""
    app = FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.templates = Environment(
        loader=FileSystemLoader([folder / "templates", HERE / "templates"]),
        autoescape=select_autoescape(["html"]),  # HTML is escaped unless a template says so
        trim_blocks=True,
        lstrip_blocks=True,
    )
    app.include_router(router)
    static = StaticFiles(directory=folder / "static", packages=[(__package__, "static")])
    app.mount("/static", static, name="static")
    app.add_exception_handler(StarletteHTTPException, login_redirect_handler(pages))
    app.middleware("http")(add_security_headers)
    return app


def _airflow_root_url(request: Request) -> str:
    """The Airflow UI's address as seen from an app mounted at ``/<prefix>``."""
    mount_path = request.scope.get("root_path", "").rstrip("/")
    return mount_path.rsplit("/", 1)[0] + "/"


def render_page(request: Request, user: BaseUser, template: str, **context: Any) -> HTMLResponse:
    """``template`` of the app serving ``request``, for ``user``, with the page's policy."""
    html = request.app.state.templates.get_template(template).render(
        title=request.app.title,
        user_name=user.get_name(),
        airflow_url=_airflow_root_url(request),
        **context,
    )
    return HTMLResponse(html, headers={"Content-Security-Policy": PAGE_CSP})
