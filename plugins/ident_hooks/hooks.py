"""Airflow hooks for this provider's connection types, one per entry of
``ident_hooks.registry.CONNECTION_TYPES``, made from the registry so that a new kind needs
no hand-written class here.

The hooks carry what Airflow's connection UI and ``ProvidersManager`` read (``conn_type``,
``conn_name_attr``, ``default_conn_name``, ``hook_name``, modelled on
``providers/dbt/cloud/src/airflow/providers/dbt/cloud/hooks/dbt.py`` in apache/airflow);
the form itself (labels, placeholders, hidden fields, the timeout field) is declared in
``ident_hooks.provider`` because Airflow 3.2+ reads it from the provider info, not from the
hook (``airflow/providers_manager.py``, ``_load_ui_metadata``).

* A service we call (``ConnectionType.outgoing``) gets a :class:`ServiceHook`, an
  ``HttpHook`` on the same fields as before (Host = base URL, Password = the secret,
  extra ``timeout``). A connector's :class:`ident_hooks.http_client.ServiceClient` is
  built on the hook of its kind's connection type (``ServiceClient(conn_id, auth=...,
  hook_class=HOOKS[kind.connection.name])``); the hook reads a connection of any
  conn_type, so connections made as ``http`` keep working.
* A service that calls us (pushed leads, the intake's GetTickets) gets a
  :class:`SecretHook`: its connection only holds the secret the caller must present.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.http.hooks.http import HttpHook
from airflow.sdk import BaseHook

from ident_hooks.registry import CONNECTION_TYPES, ConnectionType


class ServiceHook(HttpHook):
    """An external service's HTTP connection; GET unless told otherwise (``HttpHook``'s
    default is POST)."""

    def __init__(self, http_conn_id: str | None = None, method: str = "GET", **kwargs: Any):
        conn_id = http_conn_id or self.default_conn_name
        super().__init__(method=method, http_conn_id=conn_id, **kwargs)


class SecretHook(BaseHook):
    """A connection holding only the secret a caller of the intake service must present."""

    conn_name_attr = "conn_id"

    def __init__(self, conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id or self.default_conn_name

    def get_conn(self) -> str:
        """The secret (the connection's password); empty when none is set."""
        return self.get_connection(self.conn_id).password or ""


def _hook_class(connection: ConnectionType) -> type[BaseHook]:
    base = ServiceHook if connection.outgoing else SecretHook
    return type(
        connection.hook_class_name,
        (base,),
        {
            "__module__": __name__,
            "__doc__": f"Connections of type ``{connection.name}``: {connection.hook_name}.",
            "conn_type": connection.name,
            "default_conn_name": connection.name,
            "hook_name": connection.hook_name,
        },
    )


HOOKS: dict[str, type[BaseHook]] = {
    name: _hook_class(connection) for name, connection in CONNECTION_TYPES.items()
}
# Airflow imports each hook by its dotted name (``ident_hooks.hooks.ProdoctorovHook``).
globals().update({hook.__name__: hook for hook in HOOKS.values()})
