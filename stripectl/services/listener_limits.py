"""What bounds the listener against slow and hostile clients (asyncio side).

- `BodyMemory`: bytes of request bodies being received or waiting for their
  commit, capped; a request reserves its Content-Length before reading.
- `GuardedServer`: aiohttp's connection manager plus a cap on open
  connections (over it a connection gets a 503 and is closed) and a
  deadline per connection: the request line and headers must be complete
  within `header_timeout` of the accept, a request must be answered within
  its own deadline. A watchdog aborts connections past theirs, which also
  covers a client that trickles bytes forever (slowloris).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, cast

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

_REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Retry-After: 1\r\nConnection: close\r\nContent-Length: 62\r\n\r\n"
    b'{"status": 503, "error": "too many connections; retry later"}\n'
)
assert len(_REFUSED.split(b"\r\n\r\n", 1)[1]) == 62


READ_CHUNK = 16_384
SMALL_BODY = 65_536  # Stripe's events are a few KB; larger ones are rare
SMALL_HEADROOM = 16 * 1_048_576  # of the budget, never taken by large bodies


class BodyMemory:
    """A byte budget for request bodies in memory (one event loop: no lock).

    Bodies over SMALL_BODY share all but SMALL_HEADROOM of it, so clients
    stalling large bodies cannot make ordinary deliveries wait; small ones
    cannot fill it either while the connection cap times SMALL_BODY is below
    the budget (512 x 64 KiB = 32 MiB < 64 MiB)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.large_limit = max(0, limit - SMALL_HEADROOM)
        self.used = 0
        self.large_used = 0
        self.peak = 0
        self._waiters: list[asyncio.Future[None]] = []

    def _fits(self, n: int) -> bool:
        if self.used + n > self.limit:
            return False
        return n <= SMALL_BODY or self.large_used + n <= self.large_limit

    async def reserve(self, n: int, timeout: float) -> bool:
        """Take `n` bytes, waiting up to `timeout` s for others to release them."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._fits(n):
            left = deadline - loop.time()
            if left <= 0:
                return False
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, left)
            except TimeoutError:
                return False
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
        self.used += n
        if n > SMALL_BODY:
            self.large_used += n
        self.peak = max(self.peak, self.used)
        return True

    def release(self, n: int) -> None:
        self.used -= n
        if n > SMALL_BODY:
            self.large_used -= n
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)


class _Refuse(asyncio.Protocol):
    """Over the connection cap: answer 503 (Stripe retries) and hang up.

    The answer is followed by a FIN, and what the client still sends is read
    and dropped for a moment: closing with unread bytes would make the kernel
    send a reset, which can destroy the 503 before the client reads it."""

    LINGER = 1.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance.
        transport = cast(asyncio.Transport, transport)
        transport.write(_REFUSED)
        if transport.can_write_eof():
            transport.write_eof()
        self._timer = asyncio.get_running_loop().call_later(self.LINGER, transport.abort)

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> bool:
        return False  # the client is done too: close

    def connection_lost(self, exc: Exception | None) -> None:
        self._timer.cancel()


class GuardedServer(web.Server):
    def __init__(
        self,
        handler: Any,
        *,
        max_connections: int,
        header_timeout: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, **kwargs)
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.deadlines: dict[RequestHandler, float] = {}
        self.busy: set[RequestHandler] = set()
        self._pending = 0  # created by the factory, not connected yet
        self.refused = 0
        self.timed_out = 0
        self.peak = 0

    def __call__(self) -> Any:  # the protocol factory loop.create_server calls
        if len(self.deadlines) + self._pending >= self.max_connections:
            self.refused += 1
            return _Refuse()
        self._pending += 1
        return super().__call__()

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        # asyncio's socket transport reads up to 256 KiB per recv(); what a
        # connection may hold before aiohttp pauses it is read_bufsize x 2 plus
        # one read: 16 KiB reads keep that near 48 KiB a connection.
        if hasattr(transport, "max_size"):
            transport.max_size = READ_CHUNK
        super().connection_made(handler, transport)
        self._pending = max(0, self._pending - 1)
        self.deadlines[handler] = time.monotonic() + self.header_timeout
        self.peak = max(self.peak, len(self.deadlines))

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        super().connection_lost(handler, exc)
        self.deadlines.pop(handler, None)
        self.busy.discard(handler)

    def request_started(self, handler: RequestHandler, answer_within: float) -> None:
        self.busy.add(handler)
        self.deadlines[handler] = time.monotonic() + answer_within

    def abort_overdue(self) -> None:
        now = time.monotonic()
        for handler, deadline in list(self.deadlines.items()):
            if deadline < now:
                self.timed_out += 1
                _abort(handler)

    def close_idle(self) -> None:
        """Connections that have not sent a whole request head yet: nothing
        of theirs can be lost, close them (used when shutting down)."""
        for handler in list(self.deadlines):
            if handler not in self.busy:
                _abort(handler)

    def abort_all(self) -> None:
        for handler in list(self.deadlines):
            _abort(handler)

    async def watchdog(self, every: float = 0.25) -> None:
        while True:
            await asyncio.sleep(every)
            self.abort_overdue()


def _abort(handler: RequestHandler) -> None:
    """Drop the connection at once (no lingering, no flushing to a client
    that does not read); the handler task is cancelled (handler_cancellation)."""
    transport = handler.transport
    if transport is not None:
        transport.abort()
