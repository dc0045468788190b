"""Yandex Metrica's offline conversions and CRM orders, as shared/reference/marketing-apis.md
section A describes them (yandex.com/dev/metrika/en/management/offline-conv, the OpenAPI
pages upload_1, findById_1, findAll_1 and uploadSimpleOrders, intro/errors).

Every request needs ``Authorization: OAuth <token>``: none is 401 ``unauthorized``, another
token 403 ``invalid_token``; a counter other than the account's is 403 ``access_denied``,
an unknown uploading 404 ``not_found``. Errors are ``{"errors": [{"error_type",
"message"}], "code", "message"}``.

``POST /management/v1/counter/{id}/offline_conversions/upload``: multipart/form-data with a
part named ``file``, a UTF-8 CSV whose first line names the columns. Refused with 400: no
``file`` part, no ``Target`` or ``DateTime`` column, no identifier column (``ClientId``,
``UserId``, ``Yclid``/``yclid``, ``PurchaseId``), a ``Target`` that is not a Latin goal
identifier, a ``DateTime`` that is not Unix seconds or still in the future by the
simulator's own clock, a ``Price`` that is not a dot decimal, a ``Currency`` that is not
ISO 4217. Accepted otherwise: a goal the counter does not have, or a visitor it never saw,
is counted in ``goal_not_found_quantity`` / ``user_not_found_quantity``; a row links when
its visitor (ClientId or yclid) has a visit at most 21 days before the conversion (the
visits given by ``visits``/:meth:`add_visit`, else by ``visits_of``, the run command's
look-up of the demo's leads). The
uploading is UPLOADED, then PROCESSED (LINKAGE_FAILURE when no row linked) after
``processing_polls`` status requests (``GET .../uploading/{id}``, ``GET .../uploadings``).
``GET .../visit_join_threshold`` answers ``{"date": "YYYY-MM-DD"}``.

``POST /cdp/api/v1/counter/{id}/data/simple_orders?merge_mode=...&delimiter_type=...``:
part ``file``, columns ``id`` and ``create_date_time`` (``YYYY-MM-DD hh:mm:ss``) required
and one of ``client_ids``, ``emails``, ``phones``, ``emails_md5``, ``phones_md5``; phones
are digits with the country code (a ``+``, space or dash is refused), md5 values 32 hex
digits, e-mails lowercase; ``order_status`` one of the documented values, ``revenue`` a dot
decimal. An order's ``id`` keeps one order (SAVE updates it). The reply is an
``uploading`` with ``uploading_id`` and ``api_validation_status`` PASSED.

Kept for tests: every request with its raw body (``requests``, ``bodies``), the rows of
accepted conversions (``conversions``) and the orders by id (``orders``).
"""

from __future__ import annotations

import csv
import io
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from email.parser import BytesParser
from email.policy import HTTP
from functools import partial
from typing import Any

from ident_dev.simulators.base import SimRequest, SimResponse, SimulatorServer

DEMO_COUNTER = "44147844"
# The goals of include/integrations.yaml's yandex_metrica sink.
DEMO_GOALS = frozenset({"lead_created", "first_visit"})
LINK_WINDOW = timedelta(days=21)
IDENTIFIER_COLUMNS = ("ClientId", "UserId", "Yclid", "yclid", "PurchaseId")
ORDER_IDENTIFIERS = ("client_ids", "emails", "phones", "emails_md5", "phones_md5")
ORDER_STATUSES = {"PAID", "IN_PROGRESS", "CANCELLED", "CANCELED", "SPAM"}
GOAL_IDENTIFIER = re.compile(r"[A-Za-z0-9_.\-]+")
MD5 = re.compile(r"[0-9a-f]{32}")
CURRENCY = re.compile(r"[A-Z]{3}")
UPLOADINGS = re.compile(r"/management/v1/counter/([^/]+)/offline_conversions/uploading/(\d+)")
COUNTER = re.compile(r"/(?:management|cdp/api)/v1/counter/([^/]+)/")

Clock = Callable[[], datetime]


class YandexMetricaSimulator(SimulatorServer):
    name = "yandex_metrica"

    def __init__(
        self,
        *,
        token: str,
        counter_id: str = DEMO_COUNTER,
        goals: Iterable[str] = DEMO_GOALS,
        visits: Mapping[str, Iterable[datetime]] | None = None,
        visits_of: Callable[[str], Iterable[datetime]] | None = None,
        join_threshold: date | None = None,
        processing_polls: int = 1,
        clock: Clock | None = None,
        **server: Any,
    ) -> None:
        super().__init__(**server)
        self.token = token
        self.counter_id = str(counter_id)
        self.goals = set(goals)
        self.clock: Clock = clock or (lambda: datetime.now(UTC))
        self.join_threshold = join_threshold
        self.visits_of = visits_of
        self.processing_polls = processing_polls
        self._data_lock = threading.Lock()
        self._visits: dict[str, list[datetime]] = {}
        for visitor, moments in (visits or {}).items():
            for moment in moments:
                self.add_visit(visitor, moment)
        self.uploadings: dict[int, dict[str, Any]] = {}
        self._polls: dict[int, int] = {}
        self.conversions: list[dict[str, str]] = []
        self.orders: dict[str, dict[str, str]] = {}
        base = f"/management/v1/counter/{self.counter_id}/offline_conversions"
        self.route("POST", f"{base}/upload", self._upload)
        self.route("GET", f"{base}/uploadings", self._uploadings)
        self.route("GET", f"{base}/visit_join_threshold", self._threshold)
        self.route(
            "POST", f"/cdp/api/v1/counter/{self.counter_id}/data/simple_orders", self._orders
        )

    # -- the counter's visitors ----------------------------------------------
    def add_visit(self, visitor: str, at: datetime) -> None:
        """A visit of ``visitor`` (a ClientId or a yclid) to the counter's site."""
        with self._data_lock:
            self._visits.setdefault(str(visitor), []).append(at)

    def _links(self, visitor: str, at: datetime) -> bool | None:
        """None: a visitor never seen; else whether a visit is within 21 days before ``at``."""
        with self._data_lock:
            visits = self._visits.get(visitor)
        if visits is None and self.visits_of is not None:
            visits = list(self.visits_of(visitor)) or None
        if visits is None:
            return None
        return any(at - LINK_WINDOW <= visit <= at for visit in visits)

    @property
    def bodies(self) -> list[bytes]:
        """Every request body received, raw."""
        return [request.body for request in self.received()]

    # -- the protocol ------------------------------------------------------------
    def authorize(self, request: SimRequest) -> SimResponse | None:
        header = request.headers.get("authorization")
        if not header:
            return _error(401, "unauthorized", "Authorization required")
        if header != f"OAuth {self.token}":
            return _error(403, "invalid_token", "Invalid oauth_token")
        counter = COUNTER.match(request.path)
        if counter is None or counter.group(1) != self.counter_id:
            return _error(403, "access_denied", "Access is denied")
        uploading = UPLOADINGS.fullmatch(request.path.rstrip("/"))
        if uploading is not None:
            number = int(uploading.group(2))
            if number not in self.uploadings:
                return _error(404, "not_found", f"Uploading {number} not found")
        return None

    def _upload(self, request: SimRequest) -> SimResponse:
        rows, refusal = _csv_file(request)
        if refusal is not None:
            return refusal
        header = rows[0]
        for required in ("Target", "DateTime"):
            if required not in header:
                return _error(400, "invalid_parameter", f"Missing mandatory column {required}")
        identifiers = [column for column in IDENTIFIER_COLUMNS if column in header]
        if not identifiers:
            return _error(
                400, "invalid_parameter", "The file has no ClientId, UserId, Yclid or PurchaseId"
            )
        now = self.clock()
        records = []
        for number, values in enumerate(rows[1:], start=2):
            if len(values) != len(header):
                return _error(400, "invalid_parameter", f"Line {number}: wrong number of values")
            record = dict(zip(header, values, strict=True))
            problem = _conversion_problem(record, now)
            if problem:
                return _error(400, "invalid_parameter", f"Line {number}: {problem}")
            records.append(record)
        linked = goal_not_found = user_not_found = 0
        for record in records:
            at = datetime.fromtimestamp(int(record["DateTime"]), UTC)
            visitor = next((record[c] for c in identifiers if record[c]), "")
            if record["Target"] not in self.goals:
                goal_not_found += 1
            elif not self._links(visitor, at):
                user_not_found += 1
            else:
                linked += 1
        with self._data_lock:
            number = len(self.uploadings) + 1
            self.uploadings[number] = uploading = {
                "id": number,
                "create_time": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "source_quantity": len(records),
                "line_quantity": len(records),
                "comment": request.arg("comment", ""),
                "type": request.arg("type", "BASIC"),
                "client_id_type": request.arg("client_id_type", "CLIENT_ID"),
                "status": "UPLOADED",
                "linked_quantity": linked,
                "goal_not_found_quantity": goal_not_found,
                "user_not_found_quantity": user_not_found,
            }
            self._polls[number] = 0
            self.conversions.extend({**record, "uploading": str(number)} for record in records)
        self.route(
            "GET",
            f"{request.path.rsplit('/', 1)[0]}/uploading/{number}",
            partial(self._uploading, number),
        )
        return SimResponse(200, {"uploading": uploading})

    def _uploading(self, number: int, request: SimRequest) -> SimResponse:
        with self._data_lock:
            self._advance(number)
            return SimResponse(200, {"uploading": dict(self.uploadings[number])})

    def _uploadings(self, request: SimRequest) -> SimResponse:
        limit = int(request.arg("limit", "10000"))
        offset = int(request.arg("offset", "0"))
        with self._data_lock:
            numbers = sorted(self.uploadings)[offset : offset + limit]
            for number in numbers:
                self._advance(number)
            return SimResponse(200, {"uploadings": [self.uploadings[n] for n in numbers]})

    def _advance(self, number: int) -> None:
        """One more status request: processing ends after ``processing_polls`` of them."""
        uploading = self.uploadings[number]
        if uploading["status"] != "UPLOADED":
            return
        self._polls[number] += 1
        if self._polls[number] >= self.processing_polls:
            uploading["status"] = "PROCESSED" if uploading["linked_quantity"] else "LINKAGE_FAILURE"

    def _threshold(self, request: SimRequest) -> SimResponse:
        threshold = self.join_threshold or (self.clock() - LINK_WINDOW).date()
        return SimResponse(200, {"date": threshold.isoformat()})

    def _orders(self, request: SimRequest) -> SimResponse:
        merge_mode = request.arg("merge_mode")
        if merge_mode not in ("SAVE", "APPEND", "UPDATE"):
            return _error(400, "invalid_parameter", "merge_mode must be SAVE, APPEND or UPDATE")
        delimiter = {"COMMA": ",", "SEMICOLON": ";", "TAB": "\t"}.get(
            request.arg("delimiter_type", "COMMA") or ""
        )
        if delimiter is None:
            return _error(400, "invalid_parameter", "Unknown delimiter_type")
        rows, refusal = _csv_file(request, delimiter)
        if refusal is not None:
            return refusal
        header = rows[0]
        for required in ("id", "create_date_time"):
            if required not in header:
                return _error(400, "invalid_parameter", f"Missing mandatory column {required}")
        if not any(column in header for column in ORDER_IDENTIFIERS):
            return _error(400, "invalid_parameter", "The file has no customer identifier column")
        records = []
        for number, values in enumerate(rows[1:], start=2):
            if len(values) != len(header):
                return _error(400, "invalid_parameter", f"Line {number}: wrong number of values")
            record = dict(zip(header, values, strict=True))
            problem = _order_problem(record)
            if problem:
                return _error(400, "invalid_parameter", f"Line {number}: {problem}")
            records.append(record)
        with self._data_lock:
            number = len(self.uploadings) + 1
            uploading = {
                "id": number,
                "uploading_id": number,
                "source_quantity": len(records),
                "line_quantity": len(records),
                "api_validation_status": "PASSED",
            }
            self.uploadings[number] = {**uploading, "status": "PROCESSED"}
            for record in records:
                self.orders[record["id"]] = record
        return SimResponse(200, {"uploading": uploading})


def _csv_file(
    request: SimRequest, delimiter: str = ","
) -> tuple[list[list[str]], SimResponse | None]:
    """The rows of the multipart ``file`` part, or the service's refusal."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        return [], _error(400, "missing_parameter", "Required file part 'file' is not present")
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + request.body
    )
    payload = None
    for part in message.iter_parts() if message.is_multipart() else ():
        if part.get_param("name", header="content-disposition") == "file":
            payload = part.get_payload(decode=True)
    if payload is None:
        return [], _error(400, "missing_parameter", "Required file part 'file' is not present")
    try:
        text = payload.decode("utf-8-sig")
    except UnicodeDecodeError:
        return [], _error(400, "invalid_parameter", "The file is not UTF-8")
    rows = [row for row in csv.reader(io.StringIO(text), delimiter=delimiter) if row]
    if not rows:
        return [], _error(400, "invalid_parameter", "The file is empty")
    return rows, None


def _conversion_problem(record: dict[str, str], now: datetime) -> str | None:
    if not GOAL_IDENTIFIER.fullmatch(record["Target"]):
        return f"Incorrect value in column Target: {record['Target']!r}"
    if not record["DateTime"].isdigit():
        return "Incorrect value in column DateTime"
    if int(record["DateTime"]) > now.timestamp():
        return "DateTime is in the future"
    if record.get("Price") and not _is_decimal(record["Price"]):
        return "Incorrect value in column Price"
    if record.get("Currency") and not CURRENCY.fullmatch(record["Currency"]):
        return "Incorrect value in column Currency"
    if not any(record.get(column) for column in IDENTIFIER_COLUMNS):
        return "No visitor identifier"
    return None


def _order_problem(record: dict[str, str]) -> str | None:
    if not record["id"]:
        return "Empty id"
    try:
        datetime.strptime(record["create_date_time"], "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return "Incorrect value in column create_date_time"
    if not any(record.get(column) for column in ORDER_IDENTIFIERS):
        return "No customer identifier"
    values = {column: _cell_values(record.get(column, "")) for column in ORDER_IDENTIFIERS}
    if any(not phone.isdigit() for phone in values["phones"]):
        return "Incorrect value in column phones: digits with the country code only"
    if any(email != email.lower() for email in values["emails"]):
        return "Incorrect value in column emails: lowercase only"
    for column in ("emails_md5", "phones_md5"):
        if any(not MD5.fullmatch(value) for value in values[column]):
            return f"Incorrect value in column {column}"
    if record.get("order_status") and record["order_status"] not in ORDER_STATUSES:
        return "Incorrect value in column order_status"
    for column in ("revenue", "cost"):
        if record.get(column) and not _is_decimal(record[column]):
            return f"Incorrect value in column {column}"
    return None


def _cell_values(cell: str) -> list[str]:
    return [value for value in cell.split(",") if value] if cell else []


def _is_decimal(text: str) -> bool:
    try:
        return "," not in text and Decimal(text).is_finite()
    except InvalidOperation:
        return False


def _error(status: int, error_type: str, message: str) -> SimResponse:
    return SimResponse(
        status,
        {
            "errors": [{"error_type": error_type, "message": message}],
            "code": status,
            "message": message,
        },  # fmt: skip
    )
