"""An ASGI app that builds the real one on its first request.

Every Airflow component (scheduler, dag-processor, triggerer, workers) imports the files in
``plugins/``, but only the api-server serves their web apps. Mounting this stand-in keeps
FastAPI, Jinja and Airflow's API security out of the other components' start-up.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from importlib import import_module
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class LazyASGIApp:
    """Delegates to ``factory()`` (a "module:function" path), called once, on first use."""

    def __init__(self, factory: str) -> None:
        self.factory = factory
        self._app: Callable[[Scope, Receive, Send], Awaitable[None]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            # No await between the check and the assignment: one event loop builds it once.
            module_name, function_name = self.factory.split(":")
            self._app = getattr(import_module(module_name), function_name)()
        await self._app(scope, receive, send)

    def __repr__(self) -> str:
        return f"LazyASGIApp({self.factory!r})"
