"""Conversions: telling ad systems which leads became what (issue 19, "close the loop").

A conversion *sink* (``ident_hooks.registry.CONVERSION_SINK_KINDS``; instances under
``conversion_sinks:`` in ``include/integrations.yaml``) receives :class:`ConversionEvent`
rows — a lead, or the first visit of the lead's patient — picked from the clinic's data
by :mod:`ident_hooks.conversions.events`. Its connector (a :class:`ConversionConnector`)
knows one service: which events it can carry, how they are sent, and how an upload's
fate is followed afterwards. What went is remembered per sink in
``integration.conversions_sent`` (a conversion goes once), each upload's state in
``integration.conversion_uploads``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar
from zoneinfo import ZoneInfo

from ident_hooks.errors import PermanentFailure

if TYPE_CHECKING:
    from ident_hooks.config import ConversionSink
    from ident_hooks.http_client import ServiceClient


@dataclass(frozen=True)
class ConversionEvent:
    """One conversion of one lead, as the clinic's data tells it.

    ``event`` is ``lead`` (``occurred_at`` = the lead's creation) or ``first_visit``
    (``occurred_at`` = the visit's start, ``appointment_id`` and ``amount`` its own).
    The lead's identifiers travel with it so a connector can link the conversion: click
    ids, the phone in E.164 (never sent in clear), the source and its kind, the lead's id
    at the source (a UIS communication's id).
    """

    event: str
    lead_id: int
    occurred_at: datetime
    lead_created_at: datetime
    source: str
    source_kind: str | None  # None: the lead's source is no longer configured
    external_id: str
    phone_e164: str | None = None
    ym_client_id: str | None = None
    yclid: str | None = None
    gclid: str | None = None
    appointment_id: str | None = None
    amount: Decimal | None = None


@dataclass(frozen=True)
class Upload:
    """What the service said of one upload, at sending or when followed up.

    ``finished``: the service will not change it any more (processed, failed, or a
    service that answers at once). The counts are the service's own, None where it gives
    none.
    """

    upload_id: str
    channel: str
    rows_sent: int
    status: str | None = None
    finished: bool = False
    line_quantity: int | None = None
    linked_quantity: int | None = None
    goal_not_found_quantity: int | None = None
    user_not_found_quantity: int | None = None


@dataclass(frozen=True)
class Delivery:
    """Events the service accepted in one upload: they are written to the ledger."""

    upload: Upload
    events: Sequence[ConversionEvent] = field(default_factory=tuple)


class ConversionRefused(PermanentFailure):
    """The service refused an upload for a reason a retry cannot fix (a bad token, a
    goal it does not take, a file it cannot read): nothing of it is marked as sent."""


class ConversionConnector:
    """One service's way of taking conversions. Subclasses declare ``link_window`` and
    implement :meth:`deliver`; a service whose uploads are processed later implements
    :meth:`follow` as well.

    ``link_window``: the longest time from the lead (the click or call it came from) to a
    conversion the service still links; older conversions are not sent at all.
    """

    link_window: ClassVar[timedelta]
    auth: ClassVar[Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not isinstance(getattr(cls, "link_window", None), timedelta):
            raise TypeError(f"{cls.__name__} must declare link_window as a timedelta")

    @classmethod
    def client(cls, conn_id: str, **options: Any) -> ServiceClient:
        from ident_hooks.http_client import ServiceClient

        return ServiceClient(conn_id, auth=cls.auth, **options)

    def __init__(
        self, client: ServiceClient, sink: ConversionSink, *, clinic_timezone: str
    ) -> None:
        self.client = client
        self.sink = sink
        # Services that take local times take the clinic's: its counter, its UIS account.
        self.timezone = ZoneInfo(clinic_timezone)

    def earliest_linkable(self, now: datetime) -> datetime | None:
        """The oldest conversion time the service can link now (None: only
        ``link_window`` limits it)."""
        return None

    def deliver(self, events: Sequence[ConversionEvent], now: datetime) -> list[Delivery]:
        """Send what this service can carry of ``events`` (the rest is left unsent and
        comes back next run) and return what it accepted. Raises a
        :class:`~ident_hooks.errors.PermanentFailure` or
        :class:`~ident_hooks.errors.TransientFailure` for the whole call; a refusal
        after some uploads were accepted must return those and raise on the next run."""
        raise NotImplementedError

    def follow(self, upload: Upload) -> Upload:
        """The upload's state as the service now reports it."""
        return upload
