"""Cross-site request forgery checks for the inbox's actions (the login redirect and the
headers of every page are ``ident_hooks.web.security``).

The browser sends Airflow's ``_token`` login cookie with every request to the api-server,
including requests another site's page makes it send. So an action authenticated by that
cookie must prove it comes from the inbox page itself:

* its body is JSON (``Content-Type: application/json``), which an HTML form cannot send;
* it carries ``X-CSRF-Token``, a value only the inbox page knows: an HMAC of the user's
  name under the api-server's ``[api] secret_key``, rendered into the page for that user;
* the browser's own ``Sec-Fetch-Site`` and ``Origin`` headers, when present, say the request
  comes from this very site.

A request with an ``Authorization: Bearer`` header is not ambient (a browser never adds one
by itself), so scripts with a token need only the JSON body.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from urllib.parse import urlsplit

CSRF_HEADER = "X-CSRF-Token"
_PURPOSE = b"ident-inbox-csrf\x00"


def csrf_token(secret_key: str, username: str) -> str:
    """The token the inbox page of ``username`` sends with its actions."""
    message = _PURPOSE + username.encode("utf-8")
    return hmac.new(secret_key.encode("utf-8"), message, hashlib.sha256).hexdigest()


def csrf_problem(
    *,
    secret_key: str,
    username: str,
    headers: dict[str, str],
    trusted_hosts: Iterable[str],
) -> str | None:
    """Why a cookie-authenticated action must be refused, or None when it is the page's own.

    ``headers`` are the request's headers with lowercase names; ``trusted_hosts`` the
    ``host[:port]`` values this server answers as (its Host header, a proxy's forwarded host,
    the configured base URL's host).
    """
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        return "actions accept only application/json"
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site != "same-origin":
        return f"cross-site request (Sec-Fetch-Site: {fetch_site})"
    origin = headers.get("origin")
    if origin is not None:
        origin_host = urlsplit(origin).netloc.lower()
        if not origin_host or origin_host not in {h.lower() for h in trusted_hosts if h}:
            return f"request from another origin ({origin})"
    sent = headers.get(CSRF_HEADER.lower(), "")
    if not hmac.compare_digest(sent.encode("utf-8"), csrf_token(secret_key, username).encode()):
        return f"missing or wrong {CSRF_HEADER} header"
    return None
