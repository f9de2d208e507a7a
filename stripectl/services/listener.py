"""A receiver for Stripe webhook deliveries on aiohttp's asyncio HTTP server.

One event loop (on a thread of its own) reads requests; it never touches
the store. Each delivery becomes a job for the single writer process
(services/listener_link.py, services/listener_writer.py), which verifies,
stores and applies batches in one transaction and one fsync each: a request
is answered 2xx only once its delivery is on disk.

Answers: 200 stored (duplicates too); 400 signature rejected (recorded as
rejected within the budget for unverified deliveries; an identical resend
gets the same 400), or a malformed request; 404/405 wrong path/method;
408 body not received in time; 411 no Content-Length; 413 body over the
limit (not stored); 500 not acknowledged (the message says whether it may
have been stored); 503 busy or shutting down (not stored). Every answer
closes its connection: nothing idles, nothing is left to drain at shutdown.

Limits (README "webhook listen: guarantees and limits"): open connections,
header and body read timeouts, body bytes in memory, stored bytes a minute
for unverified deliveries, and a drain time at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stripectl.errors import NetworkError
from stripectl.services.listener_answers import (
    DeliveryLine,
    ListenerConfig,
    ListenerStats,
    fill,
)
from stripectl.services.listener_link import Job, WriterLink
from stripectl.services.listener_writer import WriterSettings

__all__ = ["DeliveryLine", "Listener", "ListenerConfig", "ListenerStats"]

if TYPE_CHECKING:
    from aiohttp import web

    from stripectl.services.listener_limits import BodyMemory, GuardedServer

# Credentials a proxy in front of us may add: never written to the inbox.
_PRIVATE_HEADERS = {"authorization", "proxy-authorization", "cookie"}
BACKLOG = 1024  # the kernel caps it at net.core.somaxconn


class Listener:
    """start() binds and serves on a background thread; stop() drains and closes.

    `on_delivery` is called on the event loop's thread for every delivery
    answered: it must not block (the CLI hands lines to a bounded queue)."""

    def __init__(
        self, config: ListenerConfig, on_delivery: Callable[[DeliveryLine], None] | None = None
    ) -> None:
        self.config = config
        self.on_delivery = on_delivery
        self._link = WriterLink(
            WriterSettings(
                db_path=config.db_path,
                secrets=config.secrets,
                tolerance=config.tolerance,
                max_body=config.max_body,
                durable=config.durable,
                unverified_per_minute=config.unverified_per_minute,
                lock_timeout=config.lock_timeout,
                schema=config.schema,
            )
        )
        self.durability = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._bound = threading.Event()
        self._bind_error: OSError | None = None
        self._stop: asyncio.Event | None = None
        self._hurry: asyncio.Event | None = None
        self._server: GuardedServer | None = None
        self._memory: BodyMemory | None = None
        self._port = 0
        self._closing = False
        self.stats = ListenerStats()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        host = self.config.host if ":" not in self.config.host else f"[{self.config.host}]"
        return f"http://{host}:{self.port}{self.config.path}"

    def queued(self) -> int:
        """Deliveries waiting for the writer (tests watch it)."""
        return self._link.queued()

    def writing(self) -> int:
        """Deliveries in the batch being written now."""
        return self._link.writing()

    def commits(self) -> int:
        return self._link.commits

    @property
    def broken(self) -> bool:
        """The writer process is gone: nothing can be stored any more."""
        return self._link.dead

    def start(self) -> None:
        """Open the store (in the writer process), bind, serve on a background thread."""
        # How commits reach the disk, in the store's words ("synchronous=FULL").
        self.durability = self._link.start()
        self._thread = threading.Thread(target=self._run, name="stripectl-listener", daemon=True)
        self._thread.start()
        self._bound.wait()
        if self._bind_error is not None:
            self._link.kill()
            exc = self._bind_error
            raise NetworkError(
                f"cannot listen on {self.config.host}:{self.config.port}: {exc.strerror or exc}",
                hint="another process may hold the port: pick another --port or stop it",
            ) from exc

    def stop(self) -> ListenerStats:
        """Stop accepting; let requests in flight finish for up to drain_timeout,
        then drop the rest (none of them was acknowledged); let the writer
        finish its batch (at most lock_timeout + 1 s more) and close the store."""
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            assert self._stop is not None
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(self._stop.set)
            thread.join(timeout=self.config.drain_timeout + self.config.lock_timeout + 3)
        if thread is not None and thread.is_alive():
            self._link.kill()
            self.stats.store_closed = False
        self.stats.commits = self._link.commits
        self.stats.unverified_not_recorded = self._link.not_recorded
        return self.stats

    def hurry(self) -> None:
        """A second Ctrl-C: end the drain now."""
        loop = self._loop
        if loop is not None and self._hurry is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._hurry.set)

    # -- the event loop thread -------------------------------------------------

    def _run(self) -> None:
        loop = _new_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        finally:
            self._bound.set()
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self) -> None:
        from stripectl.services.listener_limits import SMALL_HEADROOM, BodyMemory, GuardedServer

        cfg = self.config
        self._stop, self._hurry = asyncio.Event(), asyncio.Event()
        self._memory = BodyMemory(max(cfg.body_memory, cfg.max_body + SMALL_HEADROOM))
        quiet = logging.getLogger("stripectl.listener.http")
        quiet.propagate = False  # aiohttp's own error logs would print tracebacks to stderr
        quiet.addHandler(logging.NullHandler())
        server = GuardedServer(
            self._handle,
            max_connections=cfg.max_connections,
            header_timeout=cfg.header_timeout,
            handler_cancellation=True,  # a dropped client cancels its wait
            # No SO_KEEPALIVE probes (a syscall per connection): every connection
            # has a deadline of its own and carries one request.
            tcp_keepalive=False,
            # aiohttp's own idle timer (also armed at accept in aiohttp >= 3.14).
            keepalive_timeout=cfg.header_timeout,
            lingering_time=2.0,  # reading and dropping the rest of a refused body
            read_bufsize=16384,  # bytes read ahead per connection before pausing it
            # 4096 (aiohttp: 8190): aiohttp's pure-Python parser (no C extension)
            # runs int() on a Content-Length of digits, and past 4300 digits that
            # raises instead of answering 400; a longer field is refused first.
            max_field_size=4096,
            max_headers=64,
            access_log=None,
            logger=quiet,
        )
        self._server = server
        loop = asyncio.get_running_loop()
        self._link.attach(loop)
        # Errors asyncio would log (with a traceback, to stderr, which may be a
        # paused terminal) are counted instead: the connection is gone either way.
        loop.set_exception_handler(self._loop_error)
        try:
            aserver = await loop.create_server(
                server, cfg.host, cfg.port, backlog=BACKLOG, reuse_address=True
            )
        except OSError as exc:
            self._bind_error = exc
            self._link.kill()
            return
        self._port = int(aserver.sockets[0].getsockname()[1])
        self._bound.set()
        watchdog = asyncio.create_task(server.watchdog())
        try:
            await self._stop.wait()
            self._closing = True
            aserver.close()  # stop accepting; connections stay open
            server.close_idle()
            deadline = loop.time() + cfg.drain_timeout
            while server.busy and loop.time() < deadline and not self._hurry.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._hurry.wait(), 0.05)
            self.stats.aborted_at_shutdown = len(server.busy)
            server.abort_all()
            await asyncio.sleep(0.05)  # let the cancelled handlers unwind
            self.stats.store_closed = await self._link.close(cfg.lock_timeout + 1)
        finally:
            watchdog.cancel()
            self.stats.refused_connections = server.refused
            self.stats.timed_out_connections = server.timed_out
            self.stats.peak_connections = server.peak
            self.stats.peak_body_bytes = self._memory.peak

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.stats.loop_errors += 1
        self.stats.last_loop_error = repr(context.get("exception") or context.get("message"))[:200]

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        from aiohttp import web

        started = time.perf_counter()
        cfg = self.config
        assert self._server is not None
        on_path = request.path == cfg.path
        if request.method != "POST" or not on_path:
            status = 405 if on_path else 404
            return _response(status, {"status": status, "error": "POST webhook deliveries to " + cfg.path})
        self._server.request_started(
            request.protocol, 2 * cfg.body_timeout + cfg.ack_timeout + 5
        )
        line = DeliveryLine(status=500, received_at=int(time.time()), latency_ms=0.0)
        answer = await self._receive(request, line)
        line.latency_ms = round((time.perf_counter() - started) * 1000, 1)
        body: dict[str, Any] = {"status": line.status}
        if line.outcome:
            body.update(outcome=line.outcome, event_id=line.event_id, reason=line.reason)
        if line.recorded is False:
            body["recorded"] = False
        if answer:
            body["error"] = answer
        resp = _response(line.status, body)
        if line.status == 503:
            resp.headers["Retry-After"] = "1"
        self._report(line)
        assert isinstance(resp, web.StreamResponse)
        return resp

    async def _receive(self, request: web.BaseRequest, line: DeliveryLine) -> str | None:
        """Fill `line`; return the error text for the client (None: no error)."""
        cfg = self.config
        if self._closing:
            line.status, line.error = 503, "shutting down: not stored; retry later"
            return line.error
        if "chunked" in request.headers.get("Transfer-Encoding", "").lower():
            line.status, line.error = 411, "chunked bodies are not accepted: send Content-Length"
            return line.error
        length = request.content_length
        if length is None:
            line.status, line.error = 411, "Content-Length required"
            return line.error
        if length > cfg.max_body:
            line.status, line.error = 413, f"body of {length} bytes > --max-body {cfg.max_body}"
            return line.error
        assert self._memory is not None
        if not await self._memory.reserve(length, cfg.body_timeout):
            line.status = 503
            line.error = "busy: too many bodies being received; not stored; retry later"
            return line.error
        try:
            if request.headers.get("Expect", "").lower() == "100-continue":
                # curl sends it for bodies over 1 KB and would wait a second for this.
                await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            return await self._receive_body(request, line, length)
        finally:
            self._memory.release(length)

    async def _receive_body(self, request: web.BaseRequest, line: DeliveryLine, length: int) -> str | None:
        cfg = self.config
        try:
            async with asyncio.timeout(cfg.body_timeout):
                body = await request.content.readexactly(length) if length else b""
        except TimeoutError:
            line.status, line.error = 408, f"body not received within {cfg.body_timeout:g} s"
            return line.error
        except asyncio.IncompleteReadError as exc:
            line.status, line.error = 400, f"body ended after {len(exc.partial)} of {length} bytes"
            return line.error
        # Plain str (aiohttp's header names are a str subclass, which marshal refuses).
        headers = {
            str(k): str(v) for k, v in request.headers.items() if k.lower() not in _PRIVATE_HEADERS
        }
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        job = Job(body, headers, line.received_at, done)
        del body
        self._link.submit(job)
        try:
            async with asyncio.timeout(cfg.ack_timeout):
                await done
        except TimeoutError:
            if self._link.cancel(job):
                line.error = (
                    f"not stored: the store did not take it within {cfg.ack_timeout:g} s; "
                    "Stripe will retry"
                )
            else:
                line.error = (
                    f"not acknowledged: not committed within {cfg.ack_timeout:g} s; it may still "
                    "be stored (a retry is then a duplicate); Stripe will retry"
                )
            return line.error
        except asyncio.CancelledError:
            self._link.cancel(job)  # the client is gone or we are shutting down: not answered
            raise
        return fill(line, job)

    def _report(self, line: DeliveryLine) -> None:
        if self.on_delivery is None:
            return
        with contextlib.suppress(Exception):  # a broken terminal must not fail deliveries
            self.on_delivery(line)


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (a pyproject dependency except on Windows):
    it took the HTTP side's CPU per request from ~420 to ~345 us in alternated
    runs of bench/listen.py's 128 clients; asyncio's own loop otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def _response(status: int, body: dict[str, Any]) -> web.Response:
    from aiohttp import web

    resp = web.Response(
        status=status, body=json.dumps(body).encode(), content_type="application/json"
    )
    resp.headers["Server"] = "stripectl-listen"  # not aiohttp's name and version
    resp.force_close()  # one request per connection
    return resp
