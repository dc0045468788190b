"""The login redirect and the security headers every page of this project shares.

Patient data is on the pages: each page and its API need an authenticated Airflow user
(``CurrentUser``: the UI's ``_token`` cookie or ``Authorization: Bearer <jwt>``); a visitor
of a page who is not logged in is sent to Airflow's login page and back, the API answers
401. Nothing is cached, framed by another site or run but the page's own script.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.core_api.security import get_user
from fastapi import Depends, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

CurrentUser = Annotated[BaseUser, Depends(get_user)]

# What every response carries: personal data is never cached or framed by other sites.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "SAMEORIGIN",
}
# The page runs only its own script and talks only to its own server.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; worker-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'self'"
)


def login_redirect_handler(
    pages: Iterable[Callable],
) -> Callable[[Request, StarletteHTTPException], Awaitable[Response]]:
    """An exception handler sending a visitor of one of ``pages`` (endpoint functions) who is
    not logged in to Airflow's login page and back; every other error is answered as usual."""
    endpoints = tuple(pages)

    async def login_or_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code in (401, 403) and request.scope.get("endpoint") in endpoints:
            path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(get_auth_manager().get_url_login(next_url=path), 303)
        return await http_exception_handler(request, exc)

    return login_or_error


async def add_security_headers(request: Request, call_next) -> Response:
    response = await call_next(request)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response
