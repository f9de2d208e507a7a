"""The event loop's side of the writer process (services/listener_writer.py).

Requests queue `Job`s here. Whenever the writer is idle, everything queued
(up to BATCH_MAX) goes to it as one batch: group commit without a timer.
All of this runs on the event loop's thread, so a job is either still queued
(its request may cancel it: it will never be stored) or sent (it may be
stored, whatever happens next): `cancel()` tells which, truthfully.
"""

from __future__ import annotations

import asyncio
import contextlib
import marshal
import socket
import struct
from collections import deque
from typing import Any

from stripectl import errors
from stripectl.services.listener_writer import BATCH_MAX, Outcome, WriterSettings

_QUEUED, _SENT, _CANCELLED = 0, 1, 2
STARTUP_TIMEOUT = 120.0  # a fresh interpreter importing stripe, on a loaded machine


class Job:
    __slots__ = ("body", "future", "headers", "outcome", "received_at", "state")

    def __init__(
        self, body: bytes, headers: dict[str, str], received_at: int, future: asyncio.Future[None]
    ) -> None:
        self.body, self.headers, self.received_at, self.future = body, headers, received_at, future
        self.state = _QUEUED
        self.outcome: Outcome | None = None


class WriterLink:
    def __init__(self, settings: WriterSettings) -> None:
        self.settings = settings
        self.pending: deque[Job] = deque()
        self.in_flight: list[Job] | None = None
        self.commits = 0
        self.not_recorded = 0
        self.dead = False
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._proc: Any = None
        self._sock: socket.socket | None = None
        self._reader: asyncio.Task[None] | None = None
        self._sender: asyncio.Task[None] | None = None

    def start(self) -> str:
        """Start the writer process; return its durability setting, or raise
        the StripectlError it could not open the store with."""
        import dataclasses
        import subprocess
        import sys

        # A plain subprocess on one end of a socketpair (multiprocessing's spawn
        # would add a resource-tracker process and re-import __main__); a session
        # of its own: Ctrl-C in the terminal is the listener's to handle.
        ours, theirs = socket.socketpair()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "stripectl.services.listener_writer", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        theirs.close()
        self._sock = ours
        try:
            ours.sendall(_frame(marshal.dumps(dataclasses.asdict(self.settings))))
            ours.settimeout(STARTUP_TIMEOUT)
            message = marshal.loads(_recv_frame(ours))
        except TimeoutError as exc:
            self.kill()
            raise errors.StoreError("the store process did not start in time") from exc
        except (EOFError, OSError) as exc:
            self.kill()
            raise errors.StoreError("the store process exited at start") from exc
        if message[0] == "ready":
            return str(message[1])
        self._proc.wait(10)
        _, kind, text, hint = message
        cls = getattr(errors, kind, None)
        if isinstance(cls, type) and issubclass(cls, errors.StripectlError):
            raise cls(text, hint=hint)
        raise RuntimeError(text)

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """From here on the socket is the event loop's: frames are read and
        written without ever blocking it (the writer may be descheduled
        halfway through a frame on a busy machine)."""
        assert self._sock is not None
        self._loop = loop
        self._sock.setblocking(False)
        self._reader = loop.create_task(self._read_frames())

    def queued(self) -> int:
        return sum(1 for j in self.pending if j.state == _QUEUED)

    def writing(self) -> int:
        return len(self.in_flight or ())

    def submit(self, job: Job) -> None:
        if self.dead:
            job.state = _CANCELLED
            _finish(job, _failed("the store process stopped", maybe_stored=False))
            return
        self.pending.append(job)
        self._send()

    def cancel(self, job: Job) -> bool:
        """True if the writer never got the job: it will never be stored."""
        if job.state == _QUEUED:
            job.state = _CANCELLED
            return True
        return job.state == _CANCELLED

    def _send(self) -> None:
        if self.in_flight is not None or self.dead or self._stopping:
            return
        batch: list[Job] = []
        while self.pending and len(batch) < BATCH_MAX:
            job = self.pending.popleft()
            if job.state == _QUEUED:
                job.state = _SENT
                batch.append(job)
        if not batch:
            return
        try:
            message = marshal.dumps([(j.body, j.headers, j.received_at) for j in batch])
        except ValueError as exc:  # a bug: nothing was sent, nothing stored
            for job in batch:
                _finish(job, _failed(f"internal: {exc}", maybe_stored=False))
            return
        self.in_flight = batch
        assert self._loop is not None and self._sock is not None
        self._sender = self._loop.create_task(self._loop.sock_sendall(self._sock, _frame(message)))
        self._sender.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._died()

    async def _read_frames(self) -> None:
        assert self._loop is not None and self._sock is not None
        buf = bytearray()
        while True:
            try:
                data = await self._loop.sock_recv(self._sock, 1 << 16)
            except OSError:
                data = b""
            if not data:
                self._died()
                return
            buf += data
            while len(buf) >= 4:
                (n,) = struct.unpack("!i", buf[:4])
                if len(buf) < 4 + n:
                    break
                message = bytes(buf[4 : 4 + n])
                del buf[: 4 + n]
                self._answered(message)

    def _answered(self, message: bytes) -> None:
        outcomes, self.commits, self.not_recorded = marshal.loads(message)
        batch, self.in_flight = self.in_flight or [], None
        for job, outcome in zip(batch, outcomes, strict=True):
            _finish(job, outcome)
        self._send()

    def _died(self) -> None:
        """The writer process is gone (killed, crashed): what it had may or may
        not have been committed; what was still queued here was not."""
        if self.dead:
            return
        self.dead = True
        for job in self.in_flight or []:
            _finish(job, _failed("the store process stopped during the commit", maybe_stored=True))
        self.in_flight = None
        while self.pending:
            job = self.pending.popleft()
            if job.state == _QUEUED:
                job.state = _CANCELLED
                _finish(job, _failed("the store process stopped", maybe_stored=False))

    async def close(self, timeout: float) -> bool:
        """Let the writer finish its batch (at most `timeout` s), stop it.
        False: it had to be killed (SQLite then keeps whole transactions only)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._stopping = True
        while self.in_flight is not None and not self.dead and loop.time() < deadline:
            await asyncio.sleep(0.02)
        clean = self.in_flight is None
        if self._reader is not None:
            self._reader.cancel()
        if not self.dead and self._sock is not None:
            with contextlib.suppress(OSError, TimeoutError):
                # An empty frame: stop.
                await asyncio.wait_for(loop.sock_sendall(self._sock, _frame(b"")), 1.0)
        while self._proc.poll() is None and loop.time() < deadline:
            await asyncio.sleep(0.02)
        if self._proc.poll() is None:
            self.kill()
            return False
        if self._sock is not None:
            self._sock.close()
        return clean and self._proc.returncode == 0

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(5)


def _frame(data: bytes) -> bytes:
    """multiprocessing.connection's framing (what the writer reads with it)."""
    return struct.pack("!i", len(data)) + data


def _recv_frame(sock: socket.socket) -> bytes:
    (n,) = struct.unpack("!i", _recv_exactly(sock, 4))
    return _recv_exactly(sock, n)


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = sock.recv(left)
        if not chunk:
            raise EOFError("the store process closed its socket")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _finish(job: Job, outcome: Outcome) -> None:
    job.outcome = outcome
    if not job.future.done():
        job.future.set_result(None)


def _failed(error: str, *, maybe_stored: bool) -> Outcome:
    return (None, None, None, None, None, False, None, True, error, maybe_stored)
