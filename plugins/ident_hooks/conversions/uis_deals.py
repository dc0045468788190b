"""UIS (CoMagic) end-to-end analytics: each first visit as a won deal, ``upload.deals_history``.

A lead that came from UIS — a site request of the Data API pull (``ident_hooks.leads.
sources.uis``) or a call or request UIS notified (``…uis_notification``) — whose patient
came to the clinic becomes one deal in UIS, linked to the communication the lead was, with
the visit's amount as the deal's revenue. Where each fact comes from:

* **The method** (the vendor's Data API documentation in its white-label copy
  ``callgear/callgear.github.io``, ``data_api/ca_deal/upload_deals_history/index.html``;
  the older ``novofon/novofon.github.io`` copy of the same page lacks only the
  communication fields; shared/reference/marketing-apis.md B): JSON-RPC 2.0 on the same
  endpoint and token as the lead pull (``UisSource.call``: ``POST v2.0``,
  ``params.access_token``), ``params.deals`` a list of **at most 1 000** deals
  (``MAX_DEALS_PER_CALL``). "If any deal record is invalid, the entire request fails", so
  only deals that cannot be refused are built (a numeric communication id, a time that
  has passed). The reply is ``result{data{}, metadata}``: nothing to read but the absence
  of ``error``.
* **A deal's fields** (same page, its table and examples): required ``ext_id``, ``name``,
  ``created_date_time``, ``modified_stage_date_time``, ``sales_funnel_ext_id`` and
  ``stage_ext_id``; optional ``modified_date_time``, ``closed_date_time`` ("used only when
  the deal is in a success or failed stage"), **``revenue`` (number) — the amount**, and
  ``communication_id`` (number) with ``communication_type`` (``chat``,
  ``offline_message``, ``call``, ``goal``, ``email``), each required with the other. The
  same page's example requests and ``get.deals_history``'s reply table
  (``data_api/ca_deal/get_deals_history/index.html``) spell ``revenue`` the same way. Times
  are ``YYYY-MM-DD hh:mm:ss``; ``created_date_time`` "must not be in the future".
* **Once per deal** (``data_api/ca_sales_funnel/instructions_uploading_deals/index.html``):
  "there are no separate create and update methods for deals. The first uploaded record
  creates the deal; subsequent records with the same ext_id update its history". The
  ext_id is ``visit-<appointment id>`` (``deal_ext_id``), so a re-sent visit updates its
  deal. A deal belongs to a sales funnel and a stage, which must exist in the account
  (created once with ``create.sales_funnel``: docs/integrations.md, "Deals (visits) to
  UIS"): ``SALES_FUNNEL_EXT_ID`` and its success stage ``VISIT_STAGE_EXT_ID`` — a visit is
  a won deal, closed when the patient came.
* **Linking** (the upload page): ``communication_id`` + ``communication_type`` link the
  deal to one communication; "communications created more than 30 days before the deal
  are excluded from attribution" (``link_window``: the deal is created at the visit).
  A site request's communication type is ``offline_message`` (the offline-messages
  report's ``communication_type`` is always that value,
  ``data_api/report/get_offline_messages_report/index.html``); a call's is ``call``.
* **Which id is the communication's** (*assumed*, medium for calls, low for site
  requests): the lead keeps the report's ``id`` (a site request) or the notification's
  ``call_session_id`` (``call:<id>``) or ``communication_id`` (``communication:<id>``, a
  «Заявка» notification, i.e. a site request). The reports also have a separate
  ``communication_id`` field; for calls public clients treat it as the call session's id
  (a Go Data API client's calls-report field list notes ``communication_id`` "always ==
  id"; a Python CoMagic client documents the record link as ``/talk/{call_session_id}/``
  where the vendor's page writes ``/talk/{communication_id}/``). The same equality is
  assumed for a site request's ``id``.
* **Time zone** (*assumed*, as for the lead pull): the Data API's times are the account's
  local time, taken to be the clinic's (``clinic_timezone``).
* **Errors**: HTTP 200 with ``error{code,message,data{mnemonic}}``, judged by
  ``UisSource.raise_for_error`` (a limit or an internal error is retried; a wrong token, a
  refused parameter or a missing funnel is :class:`ConversionRefused`, with the token
  redacted from the message).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

from ident_hooks.conversions import (
    ConversionConnector,
    ConversionEvent,
    ConversionRefused,
    Delivery,
    Upload,
)
from ident_hooks.errors import PermanentFailure, TransientFailure
from ident_hooks.leads.sources import SourceRefused
from ident_hooks.leads.sources.uis import UisSource
from ident_hooks.leads.sources.uis_notification import UisNotificationSource
from ident_hooks.registry import SECRET_IN_BODY

log = logging.getLogger(__name__)

RPC_METHOD = "upload.deals_history"
MAX_DEALS_PER_CALL = 1000
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
# The deal's amount: the documentation's name for a deal's revenue (module notes).
AMOUNT_FIELD = "revenue"
# The funnel the clinic creates once in UIS, with this success stage (docs/integrations.md).
SALES_FUNNEL_EXT_ID = "ident-visits"
VISIT_STAGE_EXT_ID = "visit"
# Which communication each UIS lead was, by its source kind and the prefix of its id.
SITE_REQUEST = "offline_message"
CALL = "call"
NOTIFICATION_ID_TYPES = {"call": CALL, "communication": SITE_REQUEST}
Communication = tuple[int, str]  # (communication_id, communication_type)


def communication(event: ConversionEvent) -> Communication | None:
    """The UIS communication (id, type) the event's lead was, or None when it was none."""
    if event.source_kind == UisSource.kind:
        number, kind = event.external_id, SITE_REQUEST
    elif event.source_kind == UisNotificationSource.kind:
        prefix, _, number = event.external_id.partition(":")
        kind = NOTIFICATION_ID_TYPES.get(prefix)
        if kind is None:
            return None
    else:
        return None
    return (int(number), kind) if number.isascii() and number.isdigit() else None


def deal_ext_id(event: ConversionEvent) -> str:
    return f"visit-{event.appointment_id}"


class UisDeals(ConversionConnector):
    """First visits of UIS leads as won deals in UIS (see the module's docstring for the
    source of each fact)."""

    link_window = timedelta(days=30)
    auth = SECRET_IN_BODY  # params.access_token, as for the lead pull
    channel: ClassVar[str] = "deals_history"

    def link(self, event: ConversionEvent, now: datetime) -> Communication | None:
        """The communication a first visit of a UIS lead links to, if UIS can take the
        visit now (a deal may not be created in the future); None leaves it out."""
        if event.event != "first_visit" or event.appointment_id is None or event.occurred_at > now:
            return None
        return communication(event)

    def deliver(self, events: Sequence[ConversionEvent], now: datetime) -> list[Delivery]:
        linked = {
            deal_ext_id(event): (event, link)
            for event in events
            if (link := self.link(event, now)) is not None
        }
        carried = list(linked.values())
        deliveries: list[Delivery] = []
        for start in range(0, len(carried), MAX_DEALS_PER_CALL):
            try:
                deliveries.append(self.upload(carried[start : start + MAX_DEALS_PER_CALL]))
            except (PermanentFailure, TransientFailure) as error:
                if not deliveries:
                    raise
                # What went is kept; the next run sends the rest and meets the error again.
                log.warning("UIS took %d upload(s), then: %s", len(deliveries), error)
                break
        return deliveries

    def upload(self, carried: Sequence[tuple[ConversionEvent, Communication]]) -> Delivery:
        deals = [self.deal(event, link) for event, link in carried]
        digest = hashlib.sha256("\n".join(d["ext_id"] for d in deals).encode()).hexdigest()
        upload_id = f"{RPC_METHOD}-{digest[:16]}"
        params = {"access_token": self.client.secret, "deals": deals}
        try:
            UisSource.raise_for_error(
                self.client, UisSource.call(self.client, RPC_METHOD, params, request_id=upload_id)
            )
        except SourceRefused as error:
            raise ConversionRefused(str(error)) from None
        upload = Upload(upload_id, self.channel, rows_sent=len(deals), finished=True)
        return Delivery(upload, tuple(event for event, _ in carried))

    def deal(self, event: ConversionEvent, link: Communication) -> dict[str, Any]:
        """The won deal of one visit: created, in its stage and closed when it happened."""
        communication_id, communication_type = link
        at = event.occurred_at.astimezone(self.timezone).strftime(TIME_FORMAT)
        deal: dict[str, Any] = {
            "ext_id": deal_ext_id(event),
            "name": f"Первый визит по заявке {event.lead_id}",
            "created_date_time": at,
            "modified_date_time": at,
            "modified_stage_date_time": at,
            "closed_date_time": at,
            "sales_funnel_ext_id": SALES_FUNNEL_EXT_ID,
            "stage_ext_id": VISIT_STAGE_EXT_ID,
            "communication_id": communication_id,
            "communication_type": communication_type,
        }
        if event.amount is not None:
            deal[AMOUNT_FIELD] = _number(event.amount)
        return deal


def _number(amount: Decimal) -> int | float:
    """The amount as a JSON number (whole roubles stay integers)."""
    return int(amount) if amount == amount.to_integral_value() else float(amount)
