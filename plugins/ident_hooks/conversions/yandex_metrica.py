"""Yandex Metrica: leads and first visits as offline conversions, or as CRM orders.

Where each fact comes from (Yandex's documentation — yandex.com/dev/metrika/en/management/
offline-conv, the OpenAPI pages offline_conversions upload_1 / findById_1 / findAll_1 and
schema/uploadSimpleOrders, intro/errors, intro/quick-start — and the public clients
GitHub pikhovkin/yametrikapy (``yametrikapy/core.py``, its issue #6) and selesnow/rym
(``R/rym_upload_offline_conversion.R``, ``R/rym_switch_offline_conversion.R``), as
summarised in shared/reference/marketing-apis.md, sections A and D):

* Base URL ``https://api-metrika.yandex.net`` (the connection's host), header
  ``Authorization: OAuth <token>`` (:data:`ident_hooks.registry.YANDEX_METRICA_OAUTH`).
* **Offline conversions**: ``POST management/v1/counter/{counter}/offline_conversions/upload``,
  multipart/form-data with one part named ``file``: a CSV in UTF-8, comma separated, the
  first line the column names. ``Target`` is the identifier of a JavaScript-event goal (its
  identifier, not its display name: a Cyrillic one was answered 400 in a yametrikapy
  issue), ``DateTime`` Unix seconds (already past at upload time, else the upload errors),
  one identifier column — ``ClientId`` (Metrica's visitor id, the ``_ym_uid`` cookie) or
  ``Yclid`` (Direct's click id; the docs spell it ``yclid`` and ``Yclid``) — and optional
  ``Price`` (dot decimal) and ``Currency`` (ISO 4217). A lead's own event has no price:
  its cells stay empty (that an empty optional cell is read as absent is our assumption).
* The query's ``client_id_type`` (``CLIENT_ID``, ``YCLID``) is what older docs and
  yametrikapy send; current docs read the type from the columns and do not list the
  parameter. It is sent anyway (an older API version needs it, a newer ignores it), and
  so ClientId rows and Yclid rows go in separate uploads.
* The reply is ``{"uploading": {id, status, source_quantity, line_quantity,
  linked_quantity, goal_not_found_quantity, user_not_found_quantity, ...}}``; an unknown
  goal or visitor is not refused but counted. ``GET .../offline_conversions/uploading/{id}``
  tells the same object later; statuses PREPARED, UPLOADED, EXPORTED, MATCHED, PROCESSED,
  LINKAGE_FAILURE (no row matched a visitor) — the last two are final. Processing takes up
  to 2 hours.
* A conversion links only to a visit at most 21 days before it (``link_window``); after
  offline conversions are enabled on a counter the window grows gradually, and ``GET
  .../offline_conversions/visit_join_threshold`` tells from when data can be linked. Its
  reply is read as ``{"date": ...}`` (rym's ``rym_allow_offline_conversion`` returns its
  ``date``; the exact format is not public): a date (midnight in the counter's time zone),
  a date-time (naive: the counter's zone) or Unix seconds are all taken.
* **CRM orders** ("simple_orders"), for leads without a ClientId or yclid, only when the
  sink's ``send_hashed_phones`` is on: ``POST cdp/api/v1/counter/{counter}/data/
  simple_orders?merge_mode=SAVE&delimiter_type=COMMA`` (SAVE: "use it when unsure"),
  multipart part ``file``. Columns ``id`` (the CRM order's id: with it a re-send updates
  the order instead of adding one — here ``<event>-<lead id>``), ``create_date_time``
  (``YYYY-MM-DD hh:mm:ss`` in the counter's time zone, which is the clinic's), one
  identifier — ``phones_md5``, the md5 of the phone's digits with the country code and no
  ``+`` (79995551111) — ``order_status`` ``PAID`` and ``revenue`` (dot decimal). The reply
  is an ``uploading`` object; public clients read ``uploading_id`` and
  ``api_validation_status``: only ``PASSED`` is taken as delivered. Such an upload is not
  followed (nothing public says how), so it is finished at once.
* Errors: ``{"errors": [{"error_type", "message"}], "code", "message"}``; 400
  invalid_parameter / missing_parameter, 401 unauthorized, 403 access_denied /
  invalid_token, 404 not_found are refused here as :class:`ConversionRefused`; 429 quota_*
  and 5xx (backend_error 503) are retried by :class:`~ident_hooks.http_client.ServiceClient`
  and end as its transient ``ServiceUnavailable``. An upload answered 5xx after the service
  kept it may thus be sent twice: nothing public says how Metrica treats a repeated line.

Never sent: the phone in clear, the patient's name or e-mail (a :class:`ConversionEvent`
holds neither) or the lead's id at its source.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from urllib3 import encode_multipart_formdata

from ident_hooks.conversions import (
    ConversionConnector,
    ConversionEvent,
    ConversionRefused,
    Delivery,
    Upload,
)
from ident_hooks.errors import PermanentFailure, TransientFailure
from ident_hooks.http_client import ServiceRejected
from ident_hooks.registry import YANDEX_METRICA_OAUTH

if TYPE_CHECKING:
    from ident_hooks.config import ConversionSink
    from ident_hooks.http_client import ServiceClient

log = logging.getLogger(__name__)

OFFLINE_CONVERSIONS = "offline_conversions"
SIMPLE_ORDERS = "simple_orders"
FINAL_STATUSES = frozenset({"PROCESSED", "LINKAGE_FAILURE"})
ORDER_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def phone_md5(phone_e164: str) -> str:
    """The md5 (hex) of a phone as Metrica normalises it: the digits with the country code."""
    digits = "".join(character for character in phone_e164 if character.isdigit())
    return hashlib.md5(digits.encode("ascii")).hexdigest()


class YandexMetricaConversions(ConversionConnector):
    """Offline conversions by ClientId or yclid, and (opt-in) CRM orders by hashed phone,
    to one Metrica counter (see the module's docstring for the source of each fact)."""

    link_window = timedelta(days=21)
    auth = YANDEX_METRICA_OAUTH
    # The identifier column of each offline-conversions upload, and its client_id_type.
    id_columns: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("ym_client_id", "ClientId", "CLIENT_ID"),
        ("yclid", "Yclid", "YCLID"),
    )

    def __init__(
        self, client: ServiceClient, sink: ConversionSink, *, clinic_timezone: str
    ) -> None:
        # The counter's time zone is set in Metrica; the clinic's counter has the clinic's.
        super().__init__(client, sink, clinic_timezone=clinic_timezone)
        if not sink.counter_id:
            raise ConversionRefused(f"conversion sink {sink.name!r} names no counter_id")

    @property
    def _management(self) -> str:
        return f"management/v1/counter/{self.sink.counter_id}/offline_conversions"

    # -- what goes where ---------------------------------------------------
    def deliver(self, events: Sequence[ConversionEvent], now: datetime) -> list[Delivery]:
        goals = self.sink.goals
        # A conversion still ahead of the clock is refused by Metrica: it waits here.
        due = [event for event in events if event.occurred_at <= now and goals.get(event.event)]
        by_client_id = [event for event in due if event.ym_client_id]
        by_yclid = [event for event in due if not event.ym_client_id and event.yclid]
        sends = [
            partial(self._upload_conversions, group, attribute, column, id_type)
            for group, (attribute, column, id_type) in zip(
                (by_client_id, by_yclid), self.id_columns, strict=True
            )
            if group
        ]
        if self.sink.send_hashed_phones:
            orders = [
                event
                for event in events
                if event.occurred_at <= now
                and not event.ym_client_id
                and not event.yclid
                and event.phone_e164
            ]
            if orders:
                sends.append(partial(self._upload_orders, orders))
        deliveries: list[Delivery] = []
        for send in sends:
            try:
                deliveries.append(send())
            except (PermanentFailure, TransientFailure) as failure:
                if not deliveries:
                    raise
                # What was accepted is recorded now; the rest comes back (and fails) next run.
                log.warning("Metrica upload failed after %d accepted: %s", len(deliveries), failure)
                break
        return deliveries

    # -- offline conversions -------------------------------------------------
    def conversions_csv(
        self, events: Sequence[ConversionEvent], attribute: str, column: str
    ) -> str:
        priced = any(event.amount is not None for event in events)
        header = ["Target", "DateTime", column] + (["Price", "Currency"] if priced else [])
        rows = []
        for event in events:
            row = [
                self.sink.goals[event.event],
                str(int(event.occurred_at.timestamp())),
                getattr(event, attribute),
            ]
            if priced:
                row += (
                    [_decimal(event.amount), self.sink.currency]
                    if event.amount is not None
                    else ["", ""]
                )
            rows.append(row)
        return _csv(header, rows)

    def _upload_conversions(
        self, events: Sequence[ConversionEvent], attribute: str, column: str, id_type: str
    ) -> Delivery:
        text = self.conversions_csv(events, attribute, column)
        reply = self._post_file(
            f"{self._management}/upload",
            text,
            params={"client_id_type": id_type, "comment": f"ident {self.sink.name}"},
            what=f"{len(events)} offline conversions by {column}",
        )
        uploading = _uploading(reply)
        return Delivery(self._upload(uploading, OFFLINE_CONVERSIONS, len(events)), tuple(events))

    # -- CRM orders by hashed phone ---------------------------------------------
    def orders_csv(self, events: Sequence[ConversionEvent]) -> str:
        priced = any(event.amount is not None for event in events)
        header = ["id", "create_date_time", "phones_md5", "order_status"]
        header += ["revenue"] if priced else []
        rows = []
        for event in events:
            local = event.occurred_at.astimezone(self.timezone)
            row = [
                f"{event.event}-{event.lead_id}",
                local.strftime(ORDER_TIME_FORMAT),
                phone_md5(event.phone_e164 or ""),
                "PAID",
            ]
            if priced:
                row.append(_decimal(event.amount) if event.amount is not None else "")
            rows.append(row)
        return _csv(header, rows)

    def _upload_orders(self, events: Sequence[ConversionEvent]) -> Delivery:
        reply = self._post_file(
            f"cdp/api/v1/counter/{self.sink.counter_id}/data/simple_orders",
            self.orders_csv(events),
            params={"merge_mode": "SAVE", "delimiter_type": "COMMA"},
            what=f"{len(events)} orders by hashed phone",
        )
        uploading = _uploading(reply)
        validation = uploading.get("api_validation_status")
        upload_id = uploading.get("uploading_id", uploading.get("id"))
        if validation != "PASSED" or upload_id is None:
            raise ConversionRefused(
                f"Yandex Metrica did not accept {len(events)} orders of counter "
                f"{self.sink.counter_id}: api_validation_status {validation!r}"
            )
        upload = Upload(
            upload_id=str(upload_id),
            channel=SIMPLE_ORDERS,
            rows_sent=len(events),
            status=validation,
            finished=True,
            line_quantity=_count(uploading.get("line_quantity")),
        )
        return Delivery(upload, tuple(events))

    # -- following an upload ------------------------------------------------------
    def follow(self, upload: Upload) -> Upload:
        if upload.channel != OFFLINE_CONVERSIONS or upload.finished:
            return upload
        reply = self._get(f"{self._management}/uploading/{upload.upload_id}")
        return self._upload(_uploading(reply), OFFLINE_CONVERSIONS, upload.rows_sent)

    def earliest_linkable(self, now: datetime) -> datetime | None:
        reply = self._get(f"{self._management}/visit_join_threshold")
        value = reply.get("date") if isinstance(reply, dict) else None
        threshold = self._moment(value)
        if threshold is None:
            log.warning("visit_join_threshold of counter %s unreadable", self.sink.counter_id)
        return threshold

    def _moment(self, value: Any) -> datetime | None:
        if isinstance(value, bool) or value is None:
            return None
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, self.timezone)
        text = str(value).strip()
        try:
            if len(text) == len("YYYY-MM-DD"):
                return datetime.combine(date.fromisoformat(text), time(), self.timezone)
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=self.timezone)

    @staticmethod
    def _upload(uploading: dict[str, Any], channel: str, rows_sent: int) -> Upload:
        status = uploading.get("status")
        return Upload(
            upload_id=str(uploading["id"]),
            channel=channel,
            rows_sent=rows_sent,
            status=status,
            finished=status in FINAL_STATUSES,
            line_quantity=_count(uploading.get("line_quantity")),
            linked_quantity=_count(uploading.get("linked_quantity")),
            goal_not_found_quantity=_count(uploading.get("goal_not_found_quantity")),
            user_not_found_quantity=_count(uploading.get("user_not_found_quantity")),
        )

    # -- the wire -------------------------------------------------------------------
    def _post_file(self, endpoint: str, text: str, *, params: dict, what: str) -> Any:
        filename = endpoint.rsplit("/", 1)[-1] + ".csv"
        body, content_type = encode_multipart_formdata(
            {"file": (filename, text.encode("utf-8"), "text/csv")}
        )
        try:
            response = self.client.request(
                "POST", endpoint, params=params, data=body, headers={"Content-Type": content_type}
            )
        except ServiceRejected as refusal:
            raise ConversionRefused(
                f"Yandex Metrica refused {what} for counter {self.sink.counter_id}: {refusal}"
            ) from None
        return _json(response)

    def _get(self, endpoint: str) -> Any:
        try:
            response = self.client.request("GET", endpoint)
        except ServiceRejected as refusal:
            raise ConversionRefused(
                f"Yandex Metrica refused a request for counter {self.sink.counter_id}: {refusal}"
            ) from None
        return _json(response)


def _json(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        raise ConversionRefused(
            f"Yandex Metrica answered HTTP {response.status_code} without JSON"
        ) from None


def _uploading(reply: Any) -> dict[str, Any]:
    uploading = reply.get("uploading", reply) if isinstance(reply, dict) else None
    if not isinstance(uploading, dict) or (
        "id" not in uploading and "uploading_id" not in uploading
    ):
        raise ConversionRefused(f"Yandex Metrica's reply names no uploading: {str(reply)[:200]}")
    return uploading


def _csv(header: list[str], rows: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def _decimal(amount: Decimal | None) -> str:
    return format(amount, "f")


def _count(value: Any) -> int | None:
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else None
