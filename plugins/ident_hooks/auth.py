"""Where a service takes its secret, applied to every request of a session.

Apart from the HTTP client so that the registry (which names each vendor's style) can be
read without the client, its hooks and their retry machinery.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

import requests
import requests.auth

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class AuthStyle:
    """Where a service expects the secret.

    ``header`` + ``header_format`` put it in a header (``"Token {secret}"``);
    ``query_param`` puts it in the query string; ``form_param`` adds it as a field
    of a form body (``application/x-www-form-urlencoded``), which keeps it out of
    URLs and so out of the service's and proxies' access logs; none of them means
    the connector places :attr:`ServiceClient.secret` in the body itself.
    ``headers`` are constant headers the service requires on every request.
    """

    header: str | None = None
    header_format: str = "{secret}"
    query_param: str | None = None
    form_param: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def needs_secret(self) -> bool:
        return any(place is not None for place in (self.header, self.query_param, self.form_param))

    def bind(self, secret: str) -> requests.auth.AuthBase:
        """The ``requests`` auth that puts ``secret`` where this style says."""
        return SecretAuth(self, secret)


class SecretAuth(requests.auth.AuthBase):
    """Adds a service's secret to every request of a session, so the code that builds
    requests never touches it."""

    def __init__(self, style: AuthStyle, secret: str) -> None:
        self.style = style
        self.secret = secret

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        style = self.style
        if style.header:
            request.headers[style.header] = style.header_format.format(secret=self.secret)
        if style.query_param:
            request.prepare_url(request.url, {style.query_param: self.secret})
        if style.form_param:
            _add_form_field(request, style.form_param, self.secret)
        return request

    def __repr__(self) -> str:  # never the secret
        return f"SecretAuth({self.style!r})"


def _add_form_field(request: requests.PreparedRequest, name: str, value: str) -> None:
    """Append ``name=value`` to the request's form body (creating one when it has none)."""
    content_type = request.headers.get("Content-Type", "")
    if request.body and not content_type.startswith(FORM_CONTENT_TYPE):
        # A JSON or raw body has no place for a form field; the connector chose the wrong style.
        raise TypeError(f"the secret goes in the form field {name!r}, but the body is not a form")
    body = request.body or ""
    if isinstance(body, bytes):
        body = body.decode("ascii")  # a URL-encoded form is ASCII
    encoded = urlencode({name: value})
    request.body = f"{body}&{encoded}" if body else encoded
    request.headers["Content-Type"] = FORM_CONTENT_TYPE
    request.prepare_content_length(request.body)
