"""What keeps strangers and floods out: secrets, a body-size limit, a rate limit."""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable

from starlette.requests import Request


def secret_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison, so the time taken tells nothing about the secret."""
    if given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class TokenBucket:
    """``burst`` requests at once, refilled at ``rate`` per second; thread-safe."""

    def __init__(
        self, rate: float, burst: int, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._monotonic = monotonic
        self._last = monotonic()
        self._lock = threading.Lock()

    def take(self) -> float:
        """0 when a request may pass, else the seconds until one may."""
        with self._lock:
            now = self._monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= 1:
                self._tokens -= 1
                return 0.0
            return (1 - self._tokens) / self.rate


class BodyTooLarge(Exception):
    def __init__(self, head: bytes, size: int, *, declared: bool) -> None:
        super().__init__(f"body over the limit ({size} bytes {'declared' if declared else 'read'})")
        self.head = head  # the body up to the limit (nothing when refused on its declared size)
        self.size = size  # the declared size, else the bytes read until the limit was passed
        self.declared = declared


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it is known to be over ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(b"", int(declared), declared=True)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(bytes(body[:limit]), len(body), declared=False)
    return bytes(body)
