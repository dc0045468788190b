"""A small loopback HTTP server that the service simulators build on.

Each simulator registers routes, checks auth, records what it received and can
be told to misbehave (fail with a status, answer 429 with Retry-After, be slow)
so connectors are tested over real HTTP against the wire formats of
``shared/reference/integrations.md``, not against our own client code.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class SimRequest:
    """One request as the simulator saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes  # decoded: inflated when it came with Content-Encoding: gzip
    received_at: float = field(default_factory=time.time)
    wire_bytes: int = -1  # the body's size on the wire (-1: as ``body``)
    inflated: bool = False  # ``body`` was inflated from the wire's gzip

    def __post_init__(self) -> None:
        if self.wire_bytes < 0:
            self.wire_bytes = len(self.body)

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body else None

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default


@dataclass
class SimResponse:
    status: int = 200
    body: Any = None  # dict/list -> JSON, str -> text/plain, bytes as is
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> tuple[bytes, str]:
        if self.body is None:
            return b"", "text/plain; charset=utf-8"
        if isinstance(self.body, bytes):
            return self.body, "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode("utf-8"), "text/plain; charset=utf-8"
        return json.dumps(self.body, ensure_ascii=False).encode("utf-8"), "application/json"


@dataclass
class Fault:
    """A scripted misbehaviour applied to the next ``times`` matching requests."""

    status: int = 500
    body: Any = "simulated failure"
    times: int = 1
    delay_seconds: float = 0.0
    retry_after: str | None = None
    path_contains: str = ""


Handler = Callable[[SimRequest], SimResponse]


class SimulatorServer:
    """Threaded HTTP server on 127.0.0.1 with route table, request log and faults.

    Subclasses call ``route(method, path, handler)`` and implement ``authorize``.

    ``accepts_gzip``: request bodies with ``Content-Encoding: gzip`` are inflated, as a
    receiver behind a body parser that inflates does (Express's ``body-parser``); off, any
    content coding is refused with 415, as ``body-parser`` with ``inflate: false`` does.
    Whether the real services inflate is not public: off unless a test or the instance's
    ``gzip`` option says the receiver does.
    """

    name = "simulator"
    accepts_gzip = False

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._routes: dict[tuple[str, str], Handler] = {}
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self.requests: list[SimRequest] = []
        self._httpd = ThreadingHTTPServer((host, port), self._make_handler())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- configuration -------------------------------------------------
    def route(self, method: str, path: str, handler: Handler) -> None:
        self._routes[(method.upper(), path.rstrip("/"))] = handler

    def serve_routes_of(self, other: SimulatorServer) -> None:
        """Answer ``other``'s routes here, through ``other`` (its auth, faults, records)."""
        for method, path in other._routes:
            self.route(method, path, other.dispatch)

    def authorize(self, request: SimRequest) -> SimResponse | None:
        """Return an error response when the request is not authorised."""
        return None

    def inject(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def received(self, path_contains: str = "") -> list[SimRequest]:
        with self._lock:
            return [r for r in self.requests if path_contains in r.path]

    # -- lifecycle -----------------------------------------------------
    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> SimulatorServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self.name}-sim",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:  # shutdown() waits for a serve loop that must exist
            self._httpd.shutdown()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- request handling ----------------------------------------------
    def _take_fault(self, request: SimRequest) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.path_contains in request.path and fault.times > 0:
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def dispatch(self, request: SimRequest) -> SimResponse:
        with self._lock:
            self.requests.append(request)
        fault = self._take_fault(request)
        if fault is not None:
            if fault.delay_seconds:
                time.sleep(fault.delay_seconds)
            if fault.status:
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                return SimResponse(fault.status, fault.body, headers)
        refused = self._decode(request)
        if refused is not None:
            return refused
        denied = self.authorize(request)
        if denied is not None:
            return denied
        handler = self._routes.get((request.method, request.path.rstrip("/")))
        if handler is None:
            return SimResponse(404, {"message": f"no route {request.method} {request.path}"})
        try:
            return handler(request)
        except (ValueError, KeyError, TypeError) as exc:
            return SimResponse(422, {"message": f"invalid payload: {exc}"})

    def _decode(self, request: SimRequest) -> SimResponse | None:
        """Inflate a gzipped body in place, or the refusal of its content coding."""
        coding = request.headers.get("content-encoding", "identity").strip().lower()
        if coding == "identity" or request.inflated:  # a mounted route's server: done
            return None
        if coding != "gzip" or not self.accepts_gzip:
            # body-parser's answer (raw-body, inflate false or an unknown coding).
            return SimResponse(415, f'unsupported content encoding "{coding}"')
        try:
            request.body = gzip.decompress(request.body)
        except (OSError, EOFError, zlib.error):
            return SimResponse(400, "invalid gzip body")
        request.inflated = True
        return None

    def _make_handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Keep-alive replies would otherwise wait ~40 ms for a delayed ACK.
            disable_nagle_algorithm = True

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = SimRequest(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query, keep_blank_values=True),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                response = server.dispatch(request)
                payload, content_type = response.encode()
                self.send_response(response.status)
                headers = {"Content-Type": content_type, **response.headers}
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                try:
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test): nobody is listening

            do_GET = do_POST = do_PUT = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                return

        return _Handler
