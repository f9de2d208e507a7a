"""A local receiver for Stripe webhook deliveries (std-lib http.server).

Request threads never touch SQLite. They hand each delivery to ONE writer
thread, which owns the only connection and commits small batches through
`services.replay.replay` (verify, store the raw envelope, apply to the
mirror, one transaction per batch: group commit keeps up with bursts). A
request is answered only after its batch has committed, so every 2xx Stripe
sees is on disk; if the store fails, the answer is 500 and Stripe retries.

Answers: 200 stored (duplicates too); 400 signature rejected (still stored,
as rejected; an identical resend gets the same 400); 404/405 wrong
path/method; 411 no Content-Length; 413 body over the limit (not read, not
stored); 500 not stored; 503 shutting down.
"""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from stripectl.errors import NetworkError
from stripectl.redact import redact
from stripectl.webhooks.delivery import Delivery

if TYPE_CHECKING:
    from stripectl.services.replay import ReplayOptions
    from stripectl.services.replay_report import EventResult
    from stripectl.store import Store

BATCH_MAX = 64
DRAIN_MAX = 16 * 1_048_576  # refused bodies up to this size are read and dropped
ACK_TIMEOUT = 30.0  # seconds a request waits for its commit before answering 500
# Rejections that mean "this request is not an authentic, fresh Stripe delivery".
_AUTH_REJECTIONS = {"expired", "future_timestamp"}
# Credentials a proxy in front of us may add: never written to the inbox.
_PRIVATE_HEADERS = {"authorization", "proxy-authorization", "cookie"}


@dataclass
class ListenerConfig:
    db_path: str
    secrets: list[str]
    host: str = "127.0.0.1"
    port: int = 4242
    path: str = "/webhooks/stripe"
    max_body: int = 1_048_576
    tolerance: int = 300
    schema: str | None = None  # PostgreSQL mirrors: the schema of its tables


@dataclass
class DeliveryLine:
    """What happened to one request: the per-delivery log line."""

    status: int
    received_at: int
    latency_ms: float
    event_id: str | None = None
    type: str | None = None
    outcome: str | None = None
    reason: str | None = None
    delivery_id: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "received_at": self.received_at,
            "event_id": self.event_id,
            "type": self.type,
            "outcome": self.outcome,
            "reason": self.reason,
            "delivery_id": self.delivery_id,
            "latency_ms": self.latency_ms,
            "error": self.error,
        }


@dataclass
class _Job:
    delivery: Delivery
    done: threading.Event = field(default_factory=threading.Event)
    result: EventResult | None = None
    error: str | None = None


class _Writer(threading.Thread):
    """The single SQLite writer: drains the queue in batches, acks after commit."""

    def __init__(self, config: ListenerConfig) -> None:
        super().__init__(name="stripectl-listener-writer", daemon=True)
        self.config = config
        self.jobs: queue.Queue[_Job | None] = queue.Queue()
        self.ready = threading.Event()
        self.startup_error: BaseException | None = None

    def run(self) -> None:
        from stripectl.services.replay import ReplayOptions
        from stripectl.store import open_store

        try:
            store = open_store(self.config.db_path, schema=self.config.schema)
        except BaseException as exc:
            self.startup_error = exc
            self.ready.set()
            return
        options = ReplayOptions(
            secrets=self.config.secrets,
            tolerance=self.config.tolerance,
            max_body_bytes=self.config.max_body,
        )
        self.ready.set()
        try:
            stopping = False
            while not stopping:
                job = self.jobs.get()
                if job is None:
                    break
                batch = [job]
                while len(batch) < BATCH_MAX:
                    try:
                        nxt = self.jobs.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        stopping = True
                        break
                    batch.append(nxt)
                self._commit(store, options, batch)
        finally:
            store.close()

    def _commit(self, store: Store, options: ReplayOptions, batch: list[_Job]) -> None:
        from stripectl.services.replay import replay

        try:
            report = replay(store, [j.delivery for j in batch], options, chunk_size=len(batch))
            if len(report.events) != len(batch):
                raise RuntimeError("replay returned a result count that does not match its input")
            for job, result in zip(batch, report.events, strict=True):
                job.result = result
                job.done.set()
        except Exception as exc:
            if len(batch) > 1:
                # One poisoned delivery must not fail its neighbours: retry alone.
                for job in batch:
                    self._commit(store, options, [job])
                return
            batch[0].error = redact(f"{type(exc).__name__}: {exc}")
            batch[0].done.set()

    def stop(self) -> None:
        self.jobs.put(None)
        self.join(timeout=ACK_TIMEOUT + 5)


def _discard(request: BaseHTTPRequestHandler, length: int) -> None:
    """Read and drop a refused body (up to a cap) so the client sees the 413.

    Closing with unread bytes makes the kernel send a reset, which most
    clients report as a connection error instead of the answer.
    """
    left = length if length <= DRAIN_MAX else 0
    try:
        while left > 0:
            chunk = request.rfile.read(min(left, 65536))
            if not chunk:
                break
            left -= len(chunk)
    except OSError:
        pass


def _answer_as(result: EventResult) -> tuple[str, str | None]:
    """(outcome, reason) to answer and log: an identical resend of a delivery
    stored as rejected is answered as the first time, not as a 200 duplicate
    (else a forger learns nothing from the first 400 and gets a 200 next)."""
    if result.outcome == "duplicate" and result.rejected_before is not None:
        return "rejected", result.rejected_before
    return result.outcome, result.reason


def _status_for(result: EventResult) -> int:
    outcome, reason = _answer_as(result)
    if outcome == "rejected" and (not result.verified or reason in _AUTH_REJECTIONS):
        return 400
    return 200


class _Server(ThreadingHTTPServer):
    # Non-daemon request threads + block_on_close: server_close() waits for
    # in-flight requests, which is what a graceful shutdown needs.
    daemon_threads = False
    block_on_close = True
    listener: Listener


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # one request per connection: nothing idles at shutdown
    timeout = 30  # a client that stalls mid-body cannot pin a thread forever
    server_version = "stripectl-listen"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the per-delivery callback is the log

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            pass  # the client went away; what was stored stays stored

    def do_GET(self) -> None:
        self._answer(405 if self._on_path() else 404, {"error": "POST webhook deliveries here"})

    do_PUT = do_DELETE = do_PATCH = do_GET

    def _on_path(self) -> bool:
        return urlsplit(self.path).path == self.server.listener.config.path

    def do_POST(self) -> None:
        listener = self.server.listener
        started = time.perf_counter()
        received_at = int(time.time())
        if not self._on_path():
            self._answer(404, {"error": "not found"})
            return
        line = listener.handle(self, received_at)
        line.latency_ms = round((time.perf_counter() - started) * 1000, 1)
        body: dict[str, Any] = {"status": line.status}
        if line.outcome:
            body.update(outcome=line.outcome, event_id=line.event_id, reason=line.reason)
        if line.error:
            # Internal detail stays in the local log line, not in the answer.
            body["error"] = "not stored; retry later" if line.status >= 500 else line.error
        self._answer(line.status, body)
        listener.report(line)


class Listener:
    def __init__(
        self, config: ListenerConfig, on_delivery: Callable[[DeliveryLine], None] | None = None
    ) -> None:
        self.config = config
        self.on_delivery = on_delivery
        self._writer = _Writer(config)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._print_lock = threading.Lock()
        self._closing = False

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = self.config.host if ":" not in self.config.host else f"[{self.config.host}]"
        return f"http://{host}:{self.port}{self.config.path}"

    def start(self) -> None:
        """Open the store, bind the socket, serve in a background thread."""
        self._writer.start()
        self._writer.ready.wait()
        if self._writer.startup_error is not None:
            raise self._writer.startup_error
        try:
            server_cls = _Server6 if ":" in self.config.host else _Server
            self._server = server_cls((self.config.host, self.config.port), _Handler)
        except OSError as exc:
            self._writer.stop()
            raise NetworkError(
                f"cannot listen on {self.config.host}:{self.config.port}: {exc.strerror or exc}",
                hint="another process may hold the port: pick another --port or stop it",
            ) from exc
        self._server.listener = self
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},  # how fast stop() is noticed
            name="stripectl-listener",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, finish in-flight requests, then close the store."""
        self._closing = True
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()  # joins request threads
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._writer.stop()

    def handle(self, request: BaseHTTPRequestHandler, received_at: int) -> DeliveryLine:
        line = DeliveryLine(status=500, received_at=received_at, latency_ms=0.0)
        if self._closing:
            line.status, line.error = 503, "shutting down"
            return line
        if "chunked" in (request.headers.get("Transfer-Encoding") or "").lower():
            line.status, line.error = 411, "chunked bodies are not accepted: send Content-Length"
            return line
        raw_length = request.headers.get("Content-Length")
        if raw_length is None:
            line.status, line.error = 411, "Content-Length required"
            return line
        if not raw_length.strip().isdigit():
            line.status, line.error = 400, "bad Content-Length"
            return line
        length = int(raw_length)
        if length > self.config.max_body:
            request.close_connection = True
            _discard(request, length)
            line.status, line.error = (
                413,
                f"body of {length} bytes > --max-body {self.config.max_body}",
            )
            return line
        body = request.rfile.read(length) if length else b""
        if len(body) < length:
            line.status, line.error = 400, f"body ended after {len(body)} of {length} bytes"
            return line
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _PRIVATE_HEADERS}
        job = _Job(Delivery(source="listener", body=body, headers=headers, received_at=received_at))
        self._writer.jobs.put(job)
        if not job.done.wait(ACK_TIMEOUT) or job.result is None:
            line.error = job.error or "timed out waiting for the store"
            return line
        res = job.result
        line.status = _status_for(res)
        line.outcome, line.reason = _answer_as(res)
        line.event_id, line.type, line.delivery_id = res.event_id, res.type, res.delivery_id
        return line

    def report(self, line: DeliveryLine) -> None:
        if self.on_delivery is None:
            return
        # A broken terminal must not fail deliveries.
        with self._print_lock, contextlib.suppress(Exception):
            self.on_delivery(line)
